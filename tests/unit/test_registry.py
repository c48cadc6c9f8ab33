"""The region/OPD registry: the shipped files load, a broken copy is refused with file, line and field,
and the identity snapshot a cycle records is the registry's, versioned by the file's hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shared.registry import (
    DEFAULT_REGISTRY,
    REGISTRY_FILE_ENV,
    RegistryFileError,
    UnknownOpd,
    default_registry_path,
    load_registry,
)

pytestmark = pytest.mark.unit

REGIONS = DEFAULT_REGISTRY.parent
BAPPERIDA = "5.01.5.05.0.00.01.0000"
DISDIK = "1.01.2.22.0.00.01.0000"


def _lines() -> list[str]:
    return DEFAULT_REGISTRY.read_text(encoding="utf-8").splitlines(keepends=True)


def _line_of(lines: list[str], needle: str, start: int = 0) -> int:
    for index in range(start, len(lines)):
        if needle in lines[index]:
            return index + 1
    raise AssertionError(f"{needle!r} not in the registry file")


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_shipped_registry_is_bengkulu_utara_with_bapperida_and_disdik() -> None:
    registry = load_registry(DEFAULT_REGISTRY)
    assert registry.region.name == "Kabupaten Bengkulu Utara"
    assert registry.region.level == "kabupaten"
    assert registry.region.code_level == "2"
    assert [o.code for o in registry.opds] == [BAPPERIDA, DISDIK]
    assert registry.reads_across(BAPPERIDA) and not registry.reads_across(DISDIK)
    assert registry.sha256 == hashlib.sha256(DEFAULT_REGISTRY.read_bytes()).hexdigest()


def test_every_shipped_region_file_loads() -> None:
    files = sorted(REGIONS.glob("*.yaml"))
    assert {f.name for f in files} >= {"bengkulu-utara.yaml", "penajam-paser-utara.yaml"}
    for path in files:
        assert load_registry(path).opds


def test_identity_snapshot_names_the_opd_region_and_registry_version() -> None:
    registry = load_registry(DEFAULT_REGISTRY)
    identity = registry.identity(DISDIK)
    assert identity.name == "Dinas Pendidikan Kabupaten Bengkulu Utara"
    assert identity.head_title == "Kepala Dinas Pendidikan"
    assert identity.signing_place == "Arga Makmur"
    assert identity.region == "Kabupaten Bengkulu Utara"
    assert identity.sop_file == "shared/sop.yaml"
    assert identity.registry_version == registry.version
    assert identity.registry_sha256 == registry.sha256
    assert [u.code for u in identity.units] == ["SET", "SD", "SMP", "PAUDNF", "GTK", "BUD"]
    assert identity.distribution and all("Bogor" not in r.name for r in identity.distribution)


def test_unknown_opd_is_refused_naming_the_known_codes() -> None:
    registry = load_registry(DEFAULT_REGISTRY)
    with pytest.raises(UnknownOpd, match=r"not in the registry of Kabupaten Bengkulu Utara.*Bapperida"):
        registry.opd("9.99.0.00.0.00.01.0000")


def test_duplicate_sipd_code_names_its_line(tmp_path: Path) -> None:
    lines = _lines()
    at = _line_of(lines, f"code: {DISDIK}")
    lines[at - 1] = lines[at - 1].replace(DISDIK, BAPPERIDA)
    with pytest.raises(RegistryFileError) as caught:
        load_registry(_write(tmp_path, lines))
    assert caught.value.line == at
    assert f"opds.1.code: duplicate SIPD code '{BAPPERIDA}'" in str(caught.value)


def test_missing_head_names_the_opd_and_field(tmp_path: Path) -> None:
    lines = _lines()
    start = _line_of(lines, f"code: {DISDIK}")
    head = _line_of(lines, "    head:", start)
    del lines[head - 1 : head + 1]  # "head:" and its "title:" line
    with pytest.raises(RegistryFileError) as caught:
        load_registry(_write(tmp_path, lines))
    assert "opds.1.head: Field required" in str(caught.value)
    assert caught.value.line == start  # the OPD's mapping starts on its code line


def test_unknown_region_level_names_its_line(tmp_path: Path) -> None:
    lines = _lines()
    at = _line_of(lines, "level: kabupaten")
    lines[at - 1] = lines[at - 1].replace("kabupaten ", "kecamatan ")
    with pytest.raises(RegistryFileError) as caught:
        load_registry(_write(tmp_path, lines))
    assert caught.value.line == at
    assert "region.level" in str(caught.value)


def test_government_level_contradicting_the_region_level_is_refused(tmp_path: Path) -> None:
    lines = _lines()
    at = _line_of(lines, 'government_level: "2"')
    lines[at - 1] = lines[at - 1].replace('"2"', '"1"')
    with pytest.raises(
        RegistryFileError, match=r"region\.government_level: a kabupaten uses kegiatan codes of level 2"
    ):
        load_registry(_write(tmp_path, lines))


def test_invalid_yaml_and_missing_file_are_registry_errors(tmp_path: Path) -> None:
    with pytest.raises(RegistryFileError, match="cannot read"):
        load_registry(tmp_path / "absent.yaml")
    with pytest.raises(RegistryFileError, match="invalid YAML"):
        load_registry(_write(tmp_path, ["region: [unclosed\n"]))


def test_default_path_reads_the_environment_variable() -> None:
    assert default_registry_path({}) == DEFAULT_REGISTRY
    assert default_registry_path({REGISTRY_FILE_ENV: "/x/r.yaml"}) == Path("/x/r.yaml")
