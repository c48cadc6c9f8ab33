"""Step 4 intake: real PPU rows, delivery quirks (BOM, ';', merged XLSX headers, Rp numbers), errors."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from services.documents.intake import (
    PAGU_MAX,
    IntakeError,
    Row,
    check_upload,
    normalise_file_name,
    parse_csv,
    parse_rows,
    parse_rupiah,
    split_rows_by_program,
)

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "data"
PPU = DATA / "renja-2024-bapelitbang-ppu.csv"


def _xlsx(build: Callable[[Any], None]) -> bytes:
    workbook = openpyxl.Workbook()
    build(workbook.active)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_real_ppu_file_gives_64_rows_with_levels_from_the_code() -> None:
    rows = parse_rows("renja-2024-bapelitbang-ppu.csv", PPU.read_bytes(), unit="Sekretariat")
    assert len(rows) == 64
    counts = {level: sum(r.level == level for r in rows) for level in ("program", "kegiatan", "sub_kegiatan")}
    assert counts == {"program": 4, "kegiatan": 15, "sub_kegiatan": 45}
    first = rows[0]
    assert (first.kode, first.pagu, first.target, first.satuan) == ("5.01.01", 8946892715, "80", "%")
    assert all(r.unit == "Sekretariat" for r in rows)
    assert next(r for r in rows if r.kode == "5.01.01.2.02.0001").sumber_dana == "Dana Transfer Umum-Dana Alokasi Umum"


@pytest.mark.parametrize(
    ("text", "rupiah"),
    [
        ("1.234.567", 1_234_567),
        ("Rp 1.234.567,00", 1_234_567),
        ("Rp. 2.100.000.000", 2_100_000_000),
        ("1,234,567", 1_234_567),
        ("1,234,567.00", 1_234_567),
        ("1234567", 1_234_567),
        ("1234567.00", 1_234_567),
        ("IDR 5 000 000", 5_000_000),
        ("", None),
        ("-", None),
        (None, None),
        (1_500_000, 1_500_000),
        (1_500_000.0, 1_500_000),
    ],
)
def test_rupiah_formats_parse_to_whole_rupiah(text: object, rupiah: int | None) -> None:
    assert parse_rupiah(text) == rupiah


@pytest.mark.parametrize("text", ["satu juta", "1.5", "Rp 1.000,50", "-1.000", "1.23.4"])
def test_rupiah_refuses_text_fractions_and_negatives(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rupiah(text)


def test_csv_with_bom_semicolons_and_column_aliases() -> None:
    text = (
        "Kode Rekening;Uraian;Indikator Kinerja;Target;Satuan;Pagu Indikatif (Rp);"
        "Sumber Dana;Lokasi;Target N+1;Pagu_N1\n"
        "5.01.02;PROGRAM PERENCANAAN;Persentase;100;%;Rp 1.234.567,00;;Kab. PPU;100;Rp 1.300.000\n"
        "5.01.02.2.01;Penyusunan Perencanaan dan Pendanaan;Tersusunnya dokumen;7;Dokumen;1.234.567;;;;\n"
    )
    data = b"\xef\xbb\xbf" + text.encode("utf-8")
    rows = parse_csv("usulan.csv", data, unit="Bidang Perencanaan")
    assert [r.kode for r in rows] == ["5.01.02", "5.01.02.2.01"]
    assert rows[0].pagu == 1_234_567
    assert rows[0].pagu_n1 == 1_300_000
    assert rows[0].target_n1 == "100"
    assert rows[0].lokasi == "Kab. PPU"
    assert rows[1].level == "kegiatan"
    assert rows[1].pagu_n1 is None


def test_sipd_style_csv_with_commas_and_target_holding_the_unit() -> None:
    text = (
        "kode,nama,indikator,target_sesudah,pagu_rkpd,pagu_apbd,sumber_dana\n"
        '5.01.01.2.01.0001,Penyusunan Dokumen,Jumlah Dokumen,14 Dokumen,"1,000,000",900000,DAU\n'
    )
    (row,) = parse_csv("sipd.csv", text.encode(), unit="Sekretariat")
    # pagu_rkpd is an exact alias of pagu, pagu_apbd only a keyword match: the planning figure wins
    assert (row.pagu, row.target, row.satuan, row.sumber_dana) == (1_000_000, "14", "Dokumen", "DAU")


def test_urusan_and_bidang_heading_lines_numbering_line_and_total_are_skipped() -> None:
    text = (
        "kode;nama;pagu\n(1);(2);(3)\n5;UNSUR PENUNJANG;\n5.01;PERENCANAAN;\n"
        "5.01.02;PROGRAM PERENCANAAN;1.000\n;Jumlah;1.000\n"
    )
    rows = parse_csv("x.csv", text.encode(), unit="U")
    assert [r.kode for r in rows] == ["5.01.02"]


def test_row_errors_name_file_spreadsheet_row_and_column() -> None:
    text = (
        "kode;nama;pagu\n"
        "5.01.02;PROGRAM PERENCANAAN;1.000\n"
        "5.01.02.2.01;Penyusunan;sejuta\n"  # spreadsheet row 3, pagu column C
        ";Tanpa kode;5\n"  # row 4, kode column A
        "5.01.02.2;Segmen salah;5\n"  # row 5
    )
    with pytest.raises(IntakeError) as caught:
        parse_csv("Usulan Bidang.csv", text.encode(), unit="U")
    errors = {(e.row, e.column, e.column_letter) for e in caught.value.errors}
    assert errors == {(3, "pagu", "C"), (4, "kode", "A"), (5, "kode", "A")}
    assert all(e.file == "Usulan Bidang.csv" for e in caught.value.errors)
    assert "baris 3, kolom C (pagu)" in str(caught.value)


def test_missing_required_column_is_reported_at_the_header_row() -> None:
    with pytest.raises(IntakeError) as caught:
        parse_csv("x.csv", b"kode;indikator\n5.01.02;Persentase\n", unit="U")
    assert [(e.row, e.message) for e in caught.value.errors] == [(1, "kolom 'nama' tidak ditemukan")]


def test_xlsx_with_merged_header_cells_maps_every_spanned_column() -> None:
    def build(ws: Any) -> None:
        sheet = ws  # T-C.33 style: two header rows, groups merged across columns, singles across rows
        sheet.append(["Kode", "Program/Kegiatan/Sub Kegiatan", "Indikator", "Rencana Tahun 2025", None, None, None,
                      "Catatan Penting", "Prakiraan Maju Rencana Tahun 2026", None])  # fmt: skip
        sheet.append([None, None, None, "Lokasi", "Target", "Pagu Indikatif", "Sumber Dana", None, "Target", "Pagu"])
        sheet.append(["(1)", "(2)", "(3)", "(4)", "(5)", "(6)", "(7)", "(8)", "(9)", "(10)"])
        sheet.append(["5.01.02", "PROGRAM PERENCANAAN", "Persentase", "Kab.", "100 %", "Rp 2.000.000", None, "ok",
                      "100 %", 2_500_000])  # fmt: skip
        sheet.append(["5.01.02.2.01.0005", "Pelaksanaan Musrenbang", "Jumlah Berita Acara", "Kab.", 1, 2_000_000.0,
                      "DAU", None, 1, "2.500.000"])  # fmt: skip
        for cells in ("A1:A2", "B1:B2", "C1:C2", "D1:G1", "H1:H2", "I1:J1"):
            sheet.merge_cells(cells)

    rows = parse_rows("Rancangan Bidang Ekonomi.xlsx", _xlsx(build), unit="Bidang Ekonomi")
    assert [r.kode for r in rows] == ["5.01.02", "5.01.02.2.01.0005"]
    program, sub = rows
    assert (program.nama, program.lokasi, program.pagu, program.catatan) == (
        "PROGRAM PERENCANAAN",
        "Kab.",
        2_000_000,
        "ok",
    )
    # the unit repeated in the n+1 target cell is dropped: printed beside the satuan it read "100 % %"
    assert (program.target_n1, program.pagu_n1) == ("100", 2_500_000)
    assert (sub.target, sub.pagu, sub.sumber_dana, sub.target_n1, sub.pagu_n1) == (
        "1",
        2_000_000,
        "DAU",
        "1",
        2_500_000,
    )


def test_xlsx_row_errors_use_the_sheet_row_number() -> None:
    def build(ws: Any) -> None:
        ws.append(["Judul: Renja 2025"])
        ws.append(["kode", "nama", "pagu"])
        ws.append(["5.01.02", "PROGRAM", "Rp 1.000.000,50"])

    with pytest.raises(IntakeError) as caught:
        parse_rows("a.xlsx", _xlsx(build), unit="U")
    (error,) = caught.value.errors
    assert (error.file, error.row, error.column, error.column_letter) == ("a.xlsx", 3, "pagu", "C")


def test_non_ascii_file_and_unit_names_are_kept_in_nfc() -> None:
    decomposed = "Bidang Perekonomian & SDA – Cafe\u0301"
    rows = parse_csv("data/../Usulan Bidang – Ekonomi ⅱ 計画.csv", b"kode,nama\n5.01.02,PROGRAM\n", unit=decomposed)
    assert rows[0].unit == "Bidang Perekonomian & SDA – Café"
    assert normalise_file_name("C:\\Users\\staf\\Usulan – Cafe\u0301.xlsx") == "Usulan – Café.xlsx"
    assert normalise_file_name("../../") == "berkas"


def test_check_upload_accepts_any_name_and_hashes_content() -> None:
    data = b"kode,nama\n"
    check = check_upload("../Laporan Seksi Pemerintahan – Ñandú.csv", data, max_bytes=1024)
    assert check.ok
    assert check.name == "Laporan Seksi Pemerintahan – Ñandú.csv"
    assert check.sha256 == hashlib.sha256(data).hexdigest()
    assert check.file_ref().size_bytes == len(data)
    assert check_upload("x.xlsx", data, 1024).media_type.endswith("spreadsheetml.sheet")


def test_check_upload_refuses_empty_file() -> None:
    check = check_upload("kosong.csv", b"", max_bytes=1024)
    assert (check.ok, check.problem) == (False, "empty")
    assert "kosong" in check.message


def test_check_upload_refuses_file_over_the_limit() -> None:
    assert check_upload("a.pdf", b"x" * 1024, max_bytes=1024).ok
    check = check_upload("a.pdf", b"x" * 1025, max_bytes=1024)
    assert (check.ok, check.problem) == (False, "too_large")
    assert "1,025" in check.message and "1,024" in check.message


def test_zero_byte_file_is_an_intake_error() -> None:
    with pytest.raises(IntakeError) as caught:
        parse_rows("kosong.csv", b"", unit="U")
    assert caught.value.errors[0].row is None


def test_split_by_program_gives_penunjang_to_the_first_unit_and_deals_the_rest() -> None:
    rows = parse_rows("r.csv", PPU.read_bytes(), unit="")
    units = ["Sekretariat", "Bidang Perencanaan", "Bidang Litbang"]
    split = split_rows_by_program(list(reversed(rows)), units)
    assert list(split) == units
    programs = {u: sorted({r.kode[:7] for r in rs}) for u, rs in split.items()}
    assert programs == {
        "Sekretariat": ["5.01.01"],
        "Bidang Perencanaan": ["5.01.02", "5.05.02"],
        "Bidang Litbang": ["5.01.03"],
    }
    assert sum(len(v) for v in split.values()) == 64
    assert all(r.unit == u for u, rs in split.items() for r in rs)
    assert split == split_rows_by_program(rows, units)


def test_split_with_more_units_than_programs_leaves_empty_lists() -> None:
    rows = [Row(kode="5.01.02", level="program", nama="P")]
    assert split_rows_by_program(rows, ["S", "A", "B"]) == {
        "S": [],
        "A": [rows[0].model_copy(update={"unit": "A"})],
        "B": [],
    }
    with pytest.raises(ValueError):
        split_rows_by_program(rows, [])


# --- limits: what the csv module and PostgreSQL (bigint) can hold are row errors, never crashes -----------


def test_rupiah_up_to_the_bigint_limit_parses_and_beyond_is_refused() -> None:
    assert PAGU_MAX == 2**63 - 1
    assert parse_rupiah(str(PAGU_MAX)) == PAGU_MAX
    assert parse_rupiah(f"Rp {PAGU_MAX:,}".replace(",", ".")) == PAGU_MAX
    for too_big in (PAGU_MAX + 1, str(PAGU_MAX + 1), "1" + "0" * 30, "9" * 5000, float(2**70)):
        with pytest.raises(ValueError, match="melebihi batas"):
            parse_rupiah(too_big)


def test_a_pagu_beyond_bigint_is_an_error_at_its_row_and_column() -> None:
    text = f"kode;nama;pagu\n5.01.02;PROGRAM PERENCANAAN;{10**20}\n"
    with pytest.raises(IntakeError) as caught:
        parse_csv("besar.csv", text.encode(), unit="U")
    (error,) = caught.value.errors
    assert (error.file, error.row, error.column, error.column_letter) == ("besar.csv", 2, "pagu", "C")
    assert "melebihi batas" in error.message


def test_pagu_totals_beyond_bigint_are_a_file_error() -> None:
    half = PAGU_MAX // 2 + 1
    text = f"kode;nama;pagu\n5.01.02;PROGRAM A;{half}\n5.01.03;PROGRAM B;{half}\n"
    with pytest.raises(IntakeError) as caught:
        parse_csv("jumlah.csv", text.encode(), unit="U")
    (error,) = caught.value.errors
    assert (error.row, error.column) == (None, "pagu") and "program" in error.message


def test_a_cell_over_the_csv_field_limit_is_an_error_naming_file_and_line() -> None:
    huge = "x" * (csv.field_size_limit() + 10)
    text = f'kode;nama;pagu\n5.01.02;PROGRAM;1.000\n5.01.03;"{huge}";2.000\n'
    with pytest.raises(IntakeError) as caught:
        parse_rows("panjang.csv", text.encode(), unit="U")
    (error,) = caught.value.errors
    assert (error.file, error.row) == ("panjang.csv", 3)
    assert "lebih panjang" in error.message


def test_an_unclosed_quote_swallowing_the_file_is_an_error_not_a_crash() -> None:
    rest = "".join(f"5.01.{i:02d};Program {i};1.000\n" for i in range(2, 30_000))
    text = 'kode;nama;pagu\n5.01.01;"Program tanpa kutip penutup;1.000\n' + rest
    with pytest.raises(IntakeError) as caught:
        parse_rows("kutip.csv", text.encode(), unit="U")
    assert caught.value.errors[0].file == "kutip.csv"


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        # neither UTF-8 nor cp1252: the five bytes Windows-1252 leaves undefined
        (b"Kode;Uraian\n5.01.02;Perencana" + b"\x81\x8d\x8f\x90\x9d\n", 29),
        (b"\xef\xbb\xbfKode;Uraian\n\xff\n", 15),  # a UTF-8 BOM, then bytes that are not UTF-8
        (b"\xff\xfeK\x00o\x00\x00\xd8", 6),  # UTF-16 with an unpaired surrogate
    ],
)
def test_bytes_in_no_known_encoding_are_a_file_error_naming_the_byte(data: bytes, offset: int) -> None:
    with pytest.raises(IntakeError) as err:
        parse_rows("usulan.csv", data, unit="Sekretariat")
    (problem,) = err.value.errors
    assert problem.file == "usulan.csv" and problem.row is None
    assert f"posisi byte {offset}" in problem.message and "UTF-8" in problem.message
