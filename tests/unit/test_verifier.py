"""The verifier's checks against the Bappeda reviewer's hand-made variants (``reviewer-findings.md`` §(c)).

Every variant is a small edit of the clean PPU rows (``tests/fixtures/renja-ppu-clean.csv`` with the real
prakiraan maju 2025 of ``data/renja-2024-bapelitbang-ppu-pagu.csv``); each test compares the variant's
findings with the baseline's, so a variant must raise exactly what the reviewer expects and nothing else.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from services.documents.findings import Finding, load_nomenclature, load_renstra
from services.documents.intake import IntakeError, Row, parse_csv, parse_rows
from services.documents.verifier import (
    RenstraScope,
    ReviewContext,
    bidang_of_unit,
    load_sumber_dana,
    renstra_period,
    review,
    target_number,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CLEAN = REPO / "tests" / "fixtures" / "renja-ppu-clean.csv"
N1 = REPO / "data" / "renja-2024-bapelitbang-ppu-pagu.csv"
BANYUWANGI = REPO / "data" / "renstra-2026-2030-bappeda-banyuwangi.csv"
BAPELITBANG_PPU_BIDANG = ("5.01", "5.05")  # a Bappeda-type unit: perencanaan + penelitian dan pengembangan

Key = tuple[str, str, str]


@cache
def _nomenclature():  # type: ignore[no-untyped-def]
    return load_nomenclature()


@cache
def _clean() -> tuple[Row, ...]:
    rows = parse_rows(CLEAN.name, CLEAN.read_bytes(), unit="-")
    n1 = {r["kode"]: r for r in csv.DictReader(io.StringIO(N1.read_text(encoding="utf-8")))}
    # the real n+1 targets are 0 everywhere (a kept fault): give them the year-n target for the baseline
    return tuple(r.model_copy(update={"pagu_n1": int(n1[r.kode]["pagu_n1"]), "target_n1": r.target}) for r in rows)


def _review(rows: list[Row] | tuple[Row, ...], **context: object) -> list[Finding]:
    ctx = ReviewContext(plan_year=2024, **context)  # type: ignore[arg-type]
    return review(list(rows), nomenclature=_nomenclature(), renstra=None, sumber_dana=load_sumber_dana(), context=ctx)


def _keys(findings: list[Finding]) -> set[Key]:
    return {(f.rule, f.severity, f.codes[0]) for f in findings}


def _variant(edit: Callable[[dict[str, Row]], None], **context: object) -> set[Key]:
    """The findings a variant adds to the baseline (same context)."""
    rows = {r.kode: r for r in _clean()}
    edit(rows)
    return _keys(_review(list(rows.values()), **context)) - _keys(_review(_clean(), **context))


def _set(rows: dict[str, Row], kode: str, **update: object) -> None:
    rows[kode] = rows[kode].model_copy(update=update)


# --- baseline ----------------------------------------------------------------------------------------


def test_clean_rows_have_no_blocking_finding_and_only_the_reviewers_warnings() -> None:
    found = _keys(_review(_clean(), bidang_urusan=BAPELITBANG_PPU_BIDANG))
    assert {k for k in found if k[1] == "blocking"} == set()
    # the reviewer's A7 "implausible unit costs", the empty lokasi column, and no Renstra given
    assert {k[0] for k in found} == {"pagu_placeholder", "lokasi_missing", "renstra_absent"}
    assert {k[2] for k in found if k[0] == "pagu_placeholder"} == {
        "5.01.01.2.01.0001",
        "5.01.01.2.06.0001",
        "5.01.01.2.06.0002",
    }


def test_aggregated_findings_are_one_per_column_not_one_per_row() -> None:
    lokasi = [f for f in _review(_clean()) if f.rule == "lokasi_missing"]
    assert len(lokasi) == 1 and len(lokasi[0].codes) == 45 and "45 baris" in lokasi[0].message


# --- V1: names and codes -----------------------------------------------------------------------------


def test_v1b_a_name_that_belongs_to_another_code_blocks_and_names_that_code() -> None:
    def recode(rows: dict[str, Row]) -> None:
        row = rows.pop("5.01.01.2.01.0001")
        rows["5.01.01.2.06.0003"] = row.model_copy(update={"kode": "5.01.01.2.06.0003"})
        _set(rows, "5.01.01.2.01", pagu=rows["5.01.01.2.01"].pagu - row.pagu, pagu_n1=0)  # type: ignore[operator]
        _set(rows, "5.01.01.2.06", pagu=rows["5.01.01.2.06"].pagu + row.pagu)  # type: ignore[operator]
        _set(rows, "5.01.01.2.06", pagu_n1=rows["5.01.01.2.06"].pagu_n1 + row.pagu_n1)  # type: ignore[operator]

    added = _variant(recode)
    assert ("name_of_other_code", "blocking", "5.01.01.2.06.0003") in added
    assert ("satuan_differs_from_nomenclature", "blocking", "5.01.01.2.06.0003") in added  # Dokumen, not Paket
    assert ("indicator_differs_from_nomenclature", "blocking", "5.01.01.2.06.0003") in added
    assert not any(rule == "name_differs_from_nomenclature" for rule, _, _ in added)  # said once, as blocking
    message = next(f.message for f in _review([*_apply(recode)]) if f.rule == "name_of_other_code")
    assert "5.01.01.2.01.0001" in message


def _apply(edit: Callable[[dict[str, Row]], None]) -> list[Row]:
    rows = {r.kode: r for r in _clean()}
    edit(rows)
    return list(rows.values())


def test_v1c_two_kegiatan_with_swapped_names_both_block() -> None:
    def swap(rows: dict[str, Row]) -> None:
        a, b = rows["5.01.02.2.01"], rows["5.01.02.2.02"]
        _set(rows, "5.01.02.2.01", nama=b.nama, indikator=b.indikator)
        _set(rows, "5.01.02.2.02", nama=a.nama, indikator=a.indikator)

    added = _variant(swap)
    assert {k for k in added if k[0] == "name_of_other_code"} == {
        ("name_of_other_code", "blocking", "5.01.02.2.01"),
        ("name_of_other_code", "blocking", "5.01.02.2.02"),
    }


# --- V3: the OPD's mandate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "nama"),
    [
        ("1.02.02", "PROGRAM PEMENUHAN UPAYA KESEHATAN PERORANGAN DAN UPAYA KESEHATAN MASYARAKAT"),  # V3a
        ("5.06.02", "PROGRAM PENGELOLAAN PERBATASAN"),  # V3b: in the nomenclature, not this PD's
        ("5.02.02", "PROGRAM PENGELOLAAN KEUANGAN DAERAH"),  # V3c: the BPKAD's program
    ],
)
def test_v3_a_program_outside_the_opds_bidang_urusan_blocks(program: str, nama: str) -> None:
    def add(rows: dict[str, Row]) -> None:
        rows[program] = Row(kode=program, level="program", nama=nama, indikator="Persentase", target="100",
                            satuan="%", pagu=0, pagu_n1=0, target_n1="100")  # fmt: skip

    added = _variant(add, bidang_urusan=BAPELITBANG_PPU_BIDANG)
    assert ("outside_mandate", "blocking", program) in added
    message = next(f.message for f in _review(_apply(add), bidang_urusan=BAPELITBANG_PPU_BIDANG)
                   if f.rule == "outside_mandate")  # fmt: skip
    assert "di luar kewenangan PD (5.01, 5.05)" in message


def test_the_mandate_comes_from_the_sipd_unit_code() -> None:
    assert bidang_of_unit("5.01.5.05.0.00.01.0000") == ("5.01", "5.05")  # Bapperida Bengkulu Utara
    assert bidang_of_unit("1.01.2.22.0.00.01.0000") == ("1.01", "2.22")  # Dinas Pendidikan Bengkulu Utara
    with pytest.raises(ValueError, match="tidak berformat"):
        bidang_of_unit("5.01")


# --- V4: targets and satuan --------------------------------------------------------------------------

SUB = "5.01.02.2.01.0001"


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ({"target": "14 Dokumen", "satuan": ""}, {("satuan_missing", "warning", SUB)}),  # V4b
        ({"target": "Tersedia"}, {("target_not_numeric", "warning", SUB)}),  # V4c
        ({"satuan": "Bulan"}, {("satuan_differs_from_nomenclature", "blocking", SUB)}),  # V4d
        (
            {"indikator": "Jumlah Sekolah Baru yang Dibangun"},
            {("indicator_differs_from_nomenclature", "blocking", SUB)},
        ),
        ({"target": "−5"}, {("target_negative", "blocking", SUB)}),  # V4g, with a Unicode minus
        ({"target": "-5"}, {("target_negative", "blocking", SUB)}),
        ({"target": "0"}, {("target_zero", "warning", SUB)}),  # V4f: already caught, unchanged
    ],
)
def test_v4_targets_and_satuan(update: dict[str, str], expected: set[Key]) -> None:
    assert _variant(lambda rows: _set(rows, SUB, **update)) == expected


def test_v4b_the_satuan_warning_says_the_unit_is_in_the_target_column() -> None:
    rows = _apply(lambda rows: _set(rows, SUB, target="14 Dokumen", satuan=""))
    (finding,) = [f for f in _review(rows) if f.rule == "satuan_missing"]
    assert "'Dokumen' tertulis di kolom target" in finding.message


def test_v4h_a_percentage_above_100_is_flagged() -> None:
    assert _variant(lambda rows: _set(rows, "5.01.02", target="180")) == {
        ("target_percent_out_of_range", "warning", "5.01.02")
    }


def test_several_outputs_packed_in_one_cell_are_flagged() -> None:
    # Bapperida Bengkulu Utara's program capaian: "100, 100, 100 %, %, %" (SOURCES-batch2 A2)
    added = _variant(lambda rows: _set(rows, "5.01.02", target="100, 100 %", satuan="%, %"))
    assert ("several_outputs_in_cell", "warning", "5.01.02") in added


def test_target_numbers_read_indonesian_notation() -> None:
    assert target_number("1.234,5 Dokumen") == (1234.5, "Dokumen")
    assert target_number("−5") == (-5.0, "")
    assert target_number("100 %") == (100.0, "%")
    assert target_number("Tersedia") is None


# --- V5: money and mandatory cells -------------------------------------------------------------------


def test_v5d_missing_sumber_dana_is_one_warning() -> None:
    assert _variant(lambda rows: _set(rows, SUB, sumber_dana="")) == {("sumber_dana_missing", "warning", SUB)}


def test_v5e_a_source_that_is_not_an_apbd_source_blocks() -> None:
    assert _variant(lambda rows: _set(rows, SUB, sumber_dana="APBN")) == {("sumber_dana_not_apbd", "blocking", SUB)}


@pytest.mark.parametrize(
    "source",
    ["Dana Alokasi Umum (DAU)", "DAK Non Fisik-Dana BOSP-BOS Reguler", "PENDAPATAN ASLI DAERAH (PAD)",
     "Dana Alokasi Umum (DAU), DAU yang Ditentukan Penggunaannya Bidang Pendidikan"],
)  # fmt: skip
def test_real_sources_of_the_shipped_data_are_apbd_sources(source: str) -> None:
    assert _variant(lambda rows: _set(rows, SUB, sumber_dana=source)) == set()


def test_v5f_one_sub_kegiatan_at_a_trillion_is_an_outlier_and_breaks_the_ceiling() -> None:
    trillion = 1_000_000_000_000

    def inflate(rows: dict[str, Row]) -> None:
        extra = trillion - (rows[SUB].pagu or 0)
        for kode in (SUB, "5.01.02.2.01", "5.01.02"):
            _set(rows, kode, pagu=(rows[kode].pagu or 0) + extra)

    assert _variant(inflate) == {("pagu_outlier", "warning", SUB)}
    total = sum(r.pagu or 0 for r in _clean() if r.level == "program")
    added = _variant(inflate, pagu_ceiling=total)
    assert ("pagu_above_ceiling", "blocking", "5.01.01") in added


def test_a_total_below_the_ceiling_with_an_unfunded_sub_kegiatan_names_both() -> None:
    total = sum(r.pagu or 0 for r in _clean() if r.level == "program")

    def unfund(rows: dict[str, Row]) -> None:
        gap = rows["5.01.01.2.09.0010"].pagu or 0
        _set(rows, "5.01.01.2.09.0010", pagu=0)
        for kode in ("5.01.01.2.09", "5.01.01"):
            _set(rows, kode, pagu=(rows[kode].pagu or 0) - gap)

    added = _variant(unfund, pagu_ceiling=total)
    assert ("pagu_below_ceiling_unfunded", "warning", "5.01.01.2.09.0010") in added
    assert ("pagu_zero_with_target", "blocking", "5.01.01.2.09.0010") in added


def test_v5h_trailing_space_and_nbsp_raise_nothing() -> None:
    assert _variant(lambda rows: _set(rows, SUB, nama=rows[SUB].nama + " \u00a0")) == set()


# --- n+1 ---------------------------------------------------------------------------------------------


def test_n1_absent_everywhere_is_one_blocking_finding() -> None:
    rows = [r.model_copy(update={"pagu_n1": None, "target_n1": ""}) for r in _clean()]
    assert {k for k in _keys(_review(rows)) if k[1] == "blocking"} == {("n1_absent", "blocking", "5.01.01")}


def test_n1_roll_up_and_missing_rows_block() -> None:
    # variants2: the program's n+1 against its kegiatan's, and a sub kegiatan without n+1
    added = _variant(lambda rows: _set(rows, "5.01.02", pagu_n1=(rows["5.01.02"].pagu_n1 or 0) + 1))
    assert added == {("rollup_mismatch_n1", "blocking", "5.01.02")}
    added = _variant(lambda rows: _set(rows, SUB, pagu_n1=None))
    assert ("pagu_n1_missing", "blocking", SUB) in added


def test_the_real_n1_targets_all_zero_are_one_warning() -> None:
    n1 = {r["kode"]: r for r in csv.DictReader(io.StringIO(N1.read_text(encoding="utf-8")))}
    rows = [r.model_copy(update={"target_n1": n1[r.kode]["target_n1_raw"]}) for r in _clean()]
    (zero,) = [f for f in _review(rows) if f.rule == "target_n1_zero"]
    assert zero.severity == "warning" and len(zero.codes) == 64


# --- Renstra -----------------------------------------------------------------------------------------


def test_another_opds_renstra_is_one_blocking_finding_not_a_row_of_warnings() -> None:
    renstra = load_renstra(BANYUWANGI)
    assert renstra_period(renstra.title) == (2026, 2030)
    for context in (
        ReviewContext(plan_year=2025),  # the period does not cover the plan year
        ReviewContext(plan_year=2026, opd="5.01.5.05.0.00.01.0000",
                      renstra_scope=RenstraScope(owner="Bappeda Kabupaten Banyuwangi", first_year=2026,
                                                 last_year=2030)),  # another OPD's
    ):  # fmt: skip
        found = review(list(_clean()), nomenclature=_nomenclature(), renstra=renstra, context=context)
        rules = [f.rule for f in found]
        assert rules.count("renstra_not_applicable") == 1
        assert "renstra_indicator_mismatch" not in rules and "not_in_renstra" not in rules


def test_a_renstra_that_applies_is_checked_row_by_row() -> None:
    renstra = load_renstra(BANYUWANGI)
    found = review(list(_clean()), nomenclature=_nomenclature(), renstra=renstra,
                   context=ReviewContext(plan_year=2027))  # fmt: skip
    assert "renstra_not_applicable" not in {f.rule for f in found}
    assert any(f.rule == "renstra_indicator_mismatch" for f in found)


# --- intake: the SIPD export shape -------------------------------------------------------------------

SIPD_SHAPE = (
    "Kode,Urusan/Bidang Urusan Pemerintahan Daerah dan Program/Kegiatan/Sub Kegiatan,Indikator,Target,Satuan,"
    "Pagu Indikatif,Sumber Dana,Lokasi,Target n+1,Pagu n+1\n"
    "5,UNSUR PENUNJANG URUSAN PEMERINTAHAN,,,,,,,,\n"
    "5.01,PERENCANAAN,,,,,,,,\n"
    '5.01.02,"PROGRAM PERENCANAAN, PENGENDALIAN DAN EVALUASI PEMBANGUNAN DAERAH",Persentase,100 %,%,,,,100 %,\n'
    "5.01.02.2.01,Penyusunan Perencanaan dan Pendanaan,Jumlah Dokumen,7 Dokumen,Dokumen,,,,7,\n"
    "5.01.02.2.01.0001,Penyusunan Dokumen,Jumlah Dokumen,4 Dokumen,Dokumen,600.000.000,DAU,Kab,4,650.000.000\n"
    "5.01.02.2.01.0002,Koordinasi Penyusunan,Jumlah Laporan,3 Laporan,Laporan,400.000.000,DAU,Kab,3,350.000.000\n"
    "JUMLAH,,,,,{total},,,,{total_n1}\n"
)


def test_pagu_only_on_sub_kegiatan_rolls_up_and_the_jumlah_line_is_checked() -> None:
    data = SIPD_SHAPE.format(total="1.000.000.000", total_n1="1.000.000.000").encode()
    rows = {r.kode: r for r in parse_csv("sipd.csv", data, unit="SET")}
    assert (rows["5.01.02"].pagu, rows["5.01.02.2.01"].pagu) == (1_000_000_000, 1_000_000_000)
    assert rows["5.01.02"].pagu_n1 == 1_000_000_000
    # the unit repeated in the target cell is dropped ("4 Dokumen" beside satuan Dokumen → "4")
    assert (rows["5.01.02.2.01.0001"].target, rows["5.01.02"].target, rows["5.01.02"].target_n1) == ("4", "100", "100")


def test_a_jumlah_line_that_differs_from_the_rows_is_refused_naming_both_sums() -> None:
    data = SIPD_SHAPE.format(total="999.999", total_n1="1.000.000.000").encode()
    with pytest.raises(IntakeError) as caught:
        parse_csv("sipd.csv", data, unit="SET")
    (error,) = caught.value.errors
    assert error.row == 8 and "999.999" in error.message and "1.000.000.000" in error.message
