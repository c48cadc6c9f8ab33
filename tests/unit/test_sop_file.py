"""The shipped SOP file loads, and a broken copy is refused with the file and the exact line."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.sop import SOP_FILE_ENV, SopFileError, default_sop_path, load_sop

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parents[2] / "shared" / "sop.yaml"


def _lines() -> list[str]:
    return SHIPPED.read_text(encoding="utf-8").splitlines(keepends=True)


def _line_of(lines: list[str], needle: str, start: int = 0) -> int:
    """1-based number of the first line at or after ``start`` (0-based) containing ``needle``."""
    for index in range(start, len(lines)):
        if needle in lines[index]:
            return index + 1
    raise AssertionError(f"{needle!r} not in the SOP file")


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "sop.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_shipped_file_has_eleven_steps_totalling_1365_working_minutes() -> None:
    sop = load_sop(SHIPPED)
    assert [s.number for s in sop.steps] == list(range(1, 12))
    assert [s.standard_minutes for s in sop.steps] == [15, 15, 30, 300, 300, 300, 300, 30, 30, 15, 30]
    assert sop.total_standard_minutes == 1365
    assert [s.role for s in sop.steps] == [
        "kepala_badan",
        "sekretaris",
        "kasubag_pp",
        "staf",
        "staf",
        "staf",
        "staf",
        "kasubag_pp",
        "sekretaris",
        "kepala_badan",
        "staf",
    ]


def test_shipped_file_carries_agency_units_distribution_and_calendar() -> None:
    sop = load_sop(SHIPPED)
    assert sop.agency.short_name == "Bappeda"
    assert len(sop.legal_basis) == 4
    assert "SET" in sop.unit_codes and "SOSBUDPEM" in sop.unit_codes
    assert any(r.name == "Bidang Sosial Budaya dan Pemerintahan" for r in sop.distribution)
    assert sop.office_hours.timezone == "Asia/Jakarta"
    assert str(sop.office_hours.days["friday"].end) == "16:30:00"
    assert "saturday" not in sop.office_hours.days
    assert {r.code for r in sop.records} == {"daftar_hadir", "notulen", "renja"}


def test_default_path_is_beside_the_module_unless_the_env_overrides(tmp_path: Path) -> None:
    assert default_sop_path({}) == SHIPPED
    assert default_sop_path({SOP_FILE_ENV: str(tmp_path / "x.yaml")}) == tmp_path / "x.yaml"


def test_wrong_role_is_refused_at_its_line(tmp_path: Path) -> None:
    lines = _lines()
    step2 = _line_of(lines, "- number: 2")
    role_line = _line_of(lines, "role: sekretaris", start=step2)
    lines[role_line - 1] = lines[role_line - 1].replace("sekretaris", "bendahara")
    path = _write(tmp_path, lines)
    with pytest.raises(SopFileError) as info:
        load_sop(path)
    assert info.value.line == role_line
    assert f"{path}:{role_line}:" in str(info.value)
    assert "steps.1.role" in str(info.value)


def test_missing_step_is_refused_at_the_step_that_took_its_place(tmp_path: Path) -> None:
    lines = _lines()
    start = _line_of(lines, "- number: 5") - 1
    end = _line_of(lines, "- number: 6") - 1
    del lines[start:end]
    six = _line_of(lines, "- number: 6")
    with pytest.raises(SopFileError) as info:
        load_sop(_write(tmp_path, lines))
    assert info.value.line == six
    assert "step number 6 found where step 5 belongs" in str(info.value)


def test_bad_yaml_is_refused_at_the_broken_line(tmp_path: Path) -> None:
    lines = _lines()
    broken = _line_of(lines, "name: Sekretariat")
    lines[broken - 1] = lines[broken - 1].replace("name: Sekretariat", "name: Sekretariat: bad")
    with pytest.raises(SopFileError) as info:
        load_sop(_write(tmp_path, lines))
    assert info.value.line == broken
    assert "invalid YAML" in str(info.value)


def test_non_positive_standard_is_refused_at_its_line(tmp_path: Path) -> None:
    lines = _lines()
    step10 = _line_of(lines, "- number: 10")
    std = _line_of(lines, "standard_minutes: 15", start=step10)
    lines[std - 1] = lines[std - 1].replace("15", "0")
    with pytest.raises(SopFileError) as info:
        load_sop(_write(tmp_path, lines))
    assert info.value.line == std


def test_unregistered_event_type_is_refused_at_its_line(tmp_path: Path) -> None:
    lines = _lines()
    line = _line_of(lines, "renja.Signed.v1")
    lines[line - 1] = lines[line - 1].replace("renja.Signed.v1", "renja.Signed.v9")
    with pytest.raises(SopFileError) as info:
        load_sop(_write(tmp_path, lines))
    assert info.value.line == line
    assert "renja.Signed.v9" in str(info.value)


def test_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SopFileError) as info:
        load_sop(tmp_path / "absent.yaml")
    assert "absent.yaml" in str(info.value)


def test_a_twelfth_step_is_refused_at_its_line(tmp_path: Path) -> None:
    lines = _lines()
    start = _line_of(lines, "- number: 11") - 1
    extra = [line.replace("number: 11", "number: 12") for line in lines[start:]]
    lines.extend(extra)
    twelve = _line_of(lines, "- number: 12")
    with pytest.raises(SopFileError) as info:
        load_sop(_write(tmp_path, lines))
    assert info.value.line == twelve
    assert "one too many" in str(info.value)


def test_unknown_key_is_refused_at_its_line(tmp_path: Path) -> None:
    lines = _lines()
    line = _line_of(lines, "short_name: Bappeda")
    lines.insert(line, "  acronym: BPPD\n")
    with pytest.raises(SopFileError) as info:
        load_sop(_write(tmp_path, lines))
    assert info.value.line == line + 1
    assert "agency.acronym" in str(info.value)
