"""Findings on the real PPU Renja (known faults found), on its clean copy (nothing found), and per rule."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from services.documents.findings import (
    Finding,
    Nomenclature,
    Renstra,
    compute_findings,
    counts,
    load_nomenclature,
    load_renstra,
    parse_renstra,
)
from services.documents.intake import Row, parse_rows

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PPU = ROOT / "data" / "renja-2024-bapelitbang-ppu.csv"
RENSTRA = ROOT / "data" / "renstra-2026-2030-bappeda-banyuwangi.csv"
CLEAN = ROOT / "tests" / "fixtures" / "renja-ppu-clean.csv"
CLEAN_RENSTRA = ROOT / "tests" / "fixtures" / "renstra-ppu-clean.csv"


@pytest.fixture(scope="module")
def nomenclature() -> Nomenclature:
    return load_nomenclature()


@pytest.fixture(scope="module")
def real_findings(nomenclature: Nomenclature) -> list[Finding]:
    rows = parse_rows(PPU.name, PPU.read_bytes(), unit="Sekretariat")
    return compute_findings(rows, nomenclature=nomenclature, renstra=load_renstra(RENSTRA))


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _by_rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


# --- the real PPU data: every known fault is found ----------------------------------------------------


def test_real_data_roll_up_mismatches_are_the_two_known_kegiatan(real_findings: list[Finding]) -> None:
    # independent computation straight from the CSV: kegiatan pagu vs the sum of its sub kegiatan
    raw = _csv(PPU)
    sums: dict[str, int] = defaultdict(int)
    for r in raw:
        if r["level"] == "sub_kegiatan":
            sums[r["kode"].rsplit(".", 1)[0]] += int(r["pagu_indikatif_rp"])
    expected = {r["kode"] for r in raw if r["level"] == "kegiatan" and int(r["pagu_indikatif_rp"]) != sums[r["kode"]]}
    assert expected == {"5.01.01.2.02", "5.01.01.2.09"}  # SOURCES.md: exactly these two
    rollups = _by_rule(real_findings, "rollup_mismatch")
    assert {f.codes[0] for f in rollups} == expected
    assert all(f.severity == "blocking" for f in rollups)
    message = next(f.message for f in rollups if f.codes[0] == "5.01.01.2.02")
    assert "6.616.677.800" in message and "6.361.771.800" in message and "254.906.000" in message


def test_real_data_zero_pagu_rows_are_the_two_known_sub_kegiatan(real_findings: list[Finding]) -> None:
    expected = {r["kode"] for r in _csv(PPU) if int(r["pagu_indikatif_rp"]) == 0}
    assert expected == {"5.01.01.2.02.0003", "5.01.01.2.09.0010"}  # SOURCES.md
    # both promise an output (12 Dokumen, 31 Unit) with no money: blocking, and each roll-up gap names it
    assert {f.codes[0] for f in _by_rule(real_findings, "pagu_zero_with_target")} == expected
    hints = " ".join(f.message for f in _by_rule(real_findings, "rollup_mismatch"))
    assert all(f"kemungkinan pagu {kode}" in hints for kode in expected)


def test_real_data_every_program_and_kegiatan_missing_from_renstra_is_found(real_findings: list[Finding]) -> None:
    renstra_codes = {r["kode"] for r in _csv(RENSTRA)}
    renja = {r["kode"]: r["level"] for r in _csv(PPU) if r["level"] in ("program", "kegiatan")}
    expected = {kode for kode in renja if kode not in renstra_codes}
    assert expected == {"5.01.01.2.13"}  # SOURCES.md: "Penataan Organisasi" is not in this Renstra
    missing = _by_rule(real_findings, "not_in_renstra")
    assert {f.codes[0] for f in missing} == expected
    assert all(f.severity == ("blocking" if renja[f.codes[0]] == "program" else "warning") for f in missing)


def test_real_data_indicators_absent_from_renstra_are_warned(real_findings: list[Finding]) -> None:
    indicators: dict[str, set[str]] = defaultdict(set)
    for r in _csv(RENSTRA):
        indicators[r["kode"]].add(r["indikator"].casefold())
    expected = {
        r["kode"]
        for r in _csv(PPU)
        if r["level"] in ("program", "kegiatan")
        and r["kode"] in indicators
        and r["indikator"].casefold() not in indicators[r["kode"]]
    }
    got = {f.codes[0] for f in _by_rule(real_findings, "renstra_indicator_mismatch")}
    assert got == expected
    assert "5.01.01.2.13" not in got  # absent codes are reported once, as not_in_renstra


def test_real_data_has_no_other_blocking_finding_and_all_codes_resolve(real_findings: list[Finding]) -> None:
    blocking = {f.rule for f in real_findings if f.severity == "blocking"}
    # programs equal their kegiatan; codes are all in the nomenclature
    assert blocking == {"rollup_mismatch", "pagu_zero_with_target"}
    assert counts(real_findings)[0] == 4


def test_nomenclature_records_its_regulation_version(nomenclature: Nomenclature) -> None:
    assert "900.1.15.5-1317/2023" in nomenclature.regulation  # the amendment in force, all urusan
    assert nomenclature.lookup("5.01.01.2.01.0001") is not None  # via the generic X.XX.01 block
    assert nomenclature.lookup("9.99.01.2.01.0001") is None  # bidang 9.99 is not in the reference


def test_every_finding_cites_a_regulation(real_findings: list[Finding]) -> None:
    assert real_findings
    assert all("Permendagri" in f.source for f in real_findings)


# --- the clean copy: nothing at all ------------------------------------------------------------------


def test_clean_copy_with_matching_renstra_has_no_finding(nomenclature: Nomenclature) -> None:
    rows = parse_rows(CLEAN.name, CLEAN.read_bytes(), unit="Sekretariat")
    assert len(rows) == 64
    assert compute_findings(rows, nomenclature=nomenclature, renstra=load_renstra(CLEAN_RENSTRA)) == []


# --- one rule at a time, on small hand-made drafts ---------------------------------------------------


def _row(kode: str, pagu: int | None = 100, **extra: str) -> Row:
    level = {3: "program", 5: "kegiatan", 6: "sub_kegiatan"}[len(kode.split("."))]
    fields = {"nama": f"Nama {kode}", "indikator": "Jumlah Dokumen", "target": "1", "satuan": "Dokumen", **extra}
    return Row(kode=kode, level=level, pagu=pagu, **fields)  # type: ignore[arg-type]


def _rules(rows: list[Row], renstra: Renstra | None = None) -> set[tuple[str, str, str]]:
    return {(f.rule, f.severity, f.codes[0]) for f in compute_findings(rows, nomenclature=None, renstra=renstra)}


def test_consistent_tree_has_no_finding() -> None:
    assert _rules([_row("5.01.02", 100), _row("5.01.02.2.01", 100), _row("5.01.02.2.01.0001", 100)]) == set()


def test_bad_code_format_and_provincial_level_are_blocking() -> None:
    rows = [_row("5.1.02", 100), _row("5.01.02", 100), _row("5.01.02.1.01", 100), _row("5.01.02.1.01.0001", 100)]
    found = _rules(rows)
    assert ("code_format", "blocking", "5.1.02") in found
    assert ("government_level", "blocking", "5.01.02.1.01") in found
    assert ("government_level", "blocking", "5.01.02.1.01.0001") in found


def test_code_not_in_nomenclature_is_blocking(nomenclature: Nomenclature) -> None:
    rows = [_row("5.01.02", 100), _row("5.01.02.2.01", 100), _row("5.01.02.2.01.0999", 100)]
    found = compute_findings(rows, nomenclature=nomenclature, renstra=None)
    bad = [f for f in found if f.rule == "code_not_in_nomenclature"]
    assert [(f.codes, f.severity) for f in bad] == [(("5.01.02.2.01.0999",), "blocking")]
    assert nomenclature.regulation in bad[0].source


def test_duplicate_code_is_blocking() -> None:
    found = _rules([_row("5.01.02", 100), _row("5.01.02.2.01", 50), _row("5.01.02.2.01", 50)])
    assert ("duplicate_code", "blocking", "5.01.02.2.01") in found


def test_program_roll_up_and_orphans() -> None:
    found = _rules([_row("5.01.02", 300), _row("5.01.02.2.01", 100), _row("5.01.03.2.01.0001", 1)])
    assert ("rollup_mismatch", "blocking", "5.01.02") in found
    assert ("orphan_row", "blocking", "5.01.03.2.01.0001") in found
    assert ("no_children", "warning", "5.01.02.2.01") in found


def test_missing_pagu_target_and_indicator_are_blocking_zero_pagu_with_a_target_blocks() -> None:
    rows = [_row("5.01.02", None, indikator="", target=""), _row("5.01.02.2.01", 0, satuan="")]
    rows += [_row("5.01.02.2.01.0001", 0), _row("5.01.02.2.01.0002", 0, target="0")]
    found = _rules(rows)
    assert {("pagu_missing", "blocking", "5.01.02"), ("indicator_missing", "blocking", "5.01.02")} <= found
    assert ("target_missing", "blocking", "5.01.02") in found
    # reviewer §(d) 9: "pagu 0 with a target > 0, which reviewers treat as an error, not a warning"
    assert ("pagu_zero_with_target", "blocking", "5.01.02.2.01.0001") in found
    assert ("pagu_zero", "warning", "5.01.02.2.01.0002") in found  # nothing promised, nothing funded
    assert ("satuan_missing", "warning", "5.01.02.2.01") in found
    assert not any(rule == "rollup_mismatch" for rule, _, _ in found)  # no sum over a missing pagu


def test_control_characters_block_unless_line_breaks() -> None:
    rows = [_row("5.01.02", 100, nama="PROGRAM\x00X", indikator="Persentase\nCapaian"), _row("5.01.02.2.01", 100)]
    rows.append(_row("5.01.02.2.01.0001", 100))
    found = compute_findings(rows, nomenclature=None, renstra=None)
    controls = sorted((f.severity, f.message) for f in found if f.rule == "control_characters")
    assert [s for s, _ in controls] == ["blocking", "warning"]
    assert "U+0000" in controls[0][1] and "U+000A" in controls[1][1]


def test_program_missing_from_renstra_blocks_kegiatan_warns() -> None:
    renstra = parse_renstra(b"kode,level,uraian,indikator\n5.01.03,program,P,Jumlah Dokumen\n", title="R")
    rows = [_row("5.01.02", 100), _row("5.01.02.2.01", 100), _row("5.01.02.2.01.0001", 100)]
    found = _rules(rows, renstra)
    assert ("not_in_renstra", "blocking", "5.01.02") in found
    assert ("not_in_renstra", "warning", "5.01.02.2.01") in found
    assert not any(code == "5.01.02.2.01.0001" for _, _, code in found)  # sub kegiatan are not in a Renstra
