"""The region and its OPDs as data: the registry file (``data/region/*.yaml``), its schema and ``load_registry``.

One deployment serves one pemda (a kabupaten, kota or provinsi) and all its Perangkat Daerah (OPD). The
registry names the region (level, the place name written before a signing date, the government-level form
of the nomenclature codes) and each OPD: its SIPD unit code, official and short name, letterhead lines and
address, the head's jabatan, the roles it staffs, the units it collects data from at step 4, the
recipients it distributes the signed Renja to at step 11, and the SOP file it follows (default: the shipped
``shared/sop.yaml``, whose owner — Bappeda Kota Bogor — is only that SOP's provenance).

Invariants:
- ``load_registry`` refuses a broken file with ``RegistryFileError`` naming the file, the 1-based line and
  the field (``opds.1.head: Field required``), like ``shared.sop.load_sop``; SIPD codes are unique, every
  OPD has a head, unit codes are unique within an OPD, ``government_level`` agrees with the region level;
- the registry is versioned: ``version`` (the file's own field) and ``sha256`` (of the file's bytes); a
  cycle keeps the ``OpdIdentity`` snapshot its arahan recorded (``Registry.identity``), so a later edit of
  the file never changes a started cycle's documents, mails or pages;
- pure apart from reading the one file; ``default_registry_path`` is the one place that reads the
  environment (``RENJA_REGISTRY_FILE``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.events import OpdIdentity, OpdUnit, Recipient
from shared.yamlnodes import YamlFileError, node_at

REGISTRY_FILE_ENV = "RENJA_REGISTRY_FILE"
"""Environment variable naming the deployment's registry file (read by ``default_registry_path`` only)."""

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = REPO_ROOT / "data" / "region" / "bengkulu-utara.yaml"
"""The shipped registry: Kabupaten Bengkulu Utara (Bapperida and Dinas Pendidikan), the demo's region."""

SHIPPED_SOP = "shared/sop.yaml"
"""What an OPD without an ``sop`` entry follows (repository-relative, as recorded in the snapshot)."""

RegionLevel = Literal["kabupaten", "kota", "provinsi"]
RegistryRole = Literal["kepala_badan", "sekretaris", "kasubag_pp", "staf"]
ALL_ROLES: tuple[RegistryRole, ...] = ("kepala_badan", "sekretaris", "kasubag_pp", "staf")

GOVERNMENT_LEVEL: dict[RegionLevel, str] = {"kabupaten": "2", "kota": "2", "provinsi": "1"}
"""The kegiatan code's 4th segment each level of government uses (Kepmendagri 050-5889/2021 and changes:
``x.xx.xx.2.xx`` kab/kota, ``x.xx.xx.1.xx`` provinsi)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Region(_Model):
    """The pemda the deployment serves."""

    name: str = Field(min_length=1, description="e.g. Kabupaten Bengkulu Utara")
    level: RegionLevel
    signing_place: str = Field(min_length=1, description="the place before the signing date, e.g. Arga Makmur")
    government_level: str | None = Field(default=None, pattern=r"^[12]$", description="default: from level")
    province: str = ""

    @property
    def code_level(self) -> str:
        """The nomenclature's kegiatan-code level digit for this region (``2`` kab/kota, ``1`` provinsi)."""
        return self.government_level or GOVERNMENT_LEVEL[self.level]


class Head(_Model):
    """The head of an OPD, by jabatan (the person comes from the token claims)."""

    title: str = Field(min_length=1, description="jabatan, e.g. Kepala Dinas Pendidikan")


class RegistryUnit(_Model):
    """A unit that delivers data at step 4; ``programs`` are the program/kegiatan code prefixes it
    delivers (used to split an OPD's rows among its units; optional)."""

    code: str = Field(min_length=1, pattern=r"^[A-Z0-9_]+$")
    name: str = Field(min_length=1)
    programs: tuple[str, ...] = ()


class RegistryRecipient(_Model):
    """A recipient of the signed Renja at step 11."""

    name: str = Field(min_length=1)
    unit: str = ""
    email: str = ""
    copies: int = Field(default=1, ge=1)


class Opd(_Model):
    """One Perangkat Daerah of the region."""

    code: str = Field(pattern=r"^[0-9]+(\.[0-9]+)+$", description="SIPD unit code (kode SKPD)")
    name: str = Field(min_length=1, description="official name")
    short_name: str = Field(min_length=1)
    address: str = ""
    letterhead: tuple[str, ...] = ()
    head: Head
    planning_agency: bool = Field(default=False, description="Bappeda/Bapperida: reads every OPD's cycles")
    roles: tuple[RegistryRole, ...] = ALL_ROLES
    units: tuple[RegistryUnit, ...] = Field(min_length=1)
    distribution: tuple[RegistryRecipient, ...] = Field(min_length=1)
    sop: str | None = Field(default=None, description=f"the SOP file it follows; default {SHIPPED_SOP}")

    @property
    def unit_codes(self) -> tuple[str, ...]:
        return tuple(u.code for u in self.units)


class RegistryFile(_Model):
    """The whole registry file; see ``data/region/bengkulu-utara.yaml`` for every field."""

    version: str = Field(min_length=1, description="the registry's own version, raised on every edit")
    region: Region
    opds: tuple[Opd, ...] = Field(min_length=1)


class UnknownOpd(KeyError):
    """No OPD with this SIPD code in the registry (the message says which codes exist)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown OPD"


@dataclass(frozen=True)
class Registry:
    """A loaded registry: the validated file, where it came from, and the SHA-256 of its bytes."""

    data: RegistryFile
    path: Path
    sha256: str

    @property
    def version(self) -> str:
        return self.data.version

    @property
    def region(self) -> Region:
        return self.data.region

    @property
    def opds(self) -> tuple[Opd, ...]:
        return self.data.opds

    def find(self, code: str | None) -> Opd | None:
        """The OPD with SIPD code ``code``, or None."""
        return next((o for o in self.data.opds if o.code == code), None) if code else None

    def opd(self, code: str) -> Opd:
        """The OPD with SIPD code ``code``; ``UnknownOpd`` naming the known codes if there is none."""
        found = self.find(code)
        if found is None:
            known = ", ".join(f"{o.code} ({o.short_name})" for o in self.data.opds)
            raise UnknownOpd(f"OPD {code!r} is not in the registry of {self.region.name}; known: {known}")
        return found

    def reads_across(self, code: str | None) -> bool:
        """True if people of OPD ``code`` may read every OPD's cycles (the planning agency)."""
        found = self.find(code)
        return found is not None and found.planning_agency

    def identity(self, code: str) -> OpdIdentity:
        """The snapshot a cycle of OPD ``code`` records when it opens (``DirectiveIssued.opd_identity``).

        Raises ``UnknownOpd``.
        """
        opd = self.opd(code)
        region = self.region
        return OpdIdentity(
            code=opd.code,
            name=opd.name,
            short_name=opd.short_name,
            region=region.name,
            region_level=region.level,
            signing_place=region.signing_place,
            government_level=region.code_level,
            letterhead=opd.letterhead,
            address=opd.address,
            head_title=opd.head.title,
            units=tuple(OpdUnit(code=u.code, name=u.name) for u in opd.units),
            distribution=tuple(
                Recipient(name=r.name, unit=r.unit, email=r.email, copies=r.copies) for r in opd.distribution
            ),
            sop_file=opd.sop or SHIPPED_SOP,
            registry_version=self.version,
            registry_sha256=self.sha256,
        )


class RegistryFileError(YamlFileError):
    """The registry file cannot be used; the message names the file, the line (1-based) and the field."""


def default_registry_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$RENJA_REGISTRY_FILE`` if set, else the shipped ``data/region/bengkulu-utara.yaml``."""
    env = os.environ if environ is None else environ
    override = env.get(REGISTRY_FILE_ENV, "").strip()
    return Path(override) if override else DEFAULT_REGISTRY


def _problems(data: RegistryFile) -> list[tuple[tuple[int | str, ...], str]]:
    """Rules the schema alone cannot state, each with the location of the offending value."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    seen: dict[str, int] = {}
    for index, opd in enumerate(data.opds):
        if opd.code in seen:
            problems.append((("opds", index, "code"), f"duplicate SIPD code {opd.code!r} (also opds.{seen[opd.code]})"))
        seen.setdefault(opd.code, index)
        codes = [u.code for u in opd.units]
        for unit_index, code in enumerate(codes):
            if code in codes[:unit_index]:
                problems.append((("opds", index, "units", unit_index, "code"), f"duplicate unit code {code!r}"))
        names = [r.name for r in opd.distribution]
        for r_index, name in enumerate(names):
            if name in names[:r_index]:
                problems.append((("opds", index, "distribution", r_index, "name"), f"duplicate recipient {name!r}"))
    region = data.region
    if region.government_level is not None and region.government_level != GOVERNMENT_LEVEL[region.level]:
        problems.append(
            (
                ("region", "government_level"),
                f"a {region.level} uses kegiatan codes of level {GOVERNMENT_LEVEL[region.level]}, "
                f"not {region.government_level}",
            )
        )
    return problems


def load_registry(path: Path | None = None) -> Registry:
    """Read and validate the registry file (default: ``default_registry_path()``).

    Raises ``RegistryFileError`` (file, 1-based line and field in the message) for an unreadable file,
    invalid YAML, a schema error (e.g. an OPD without ``head``), a duplicate SIPD code, unit code or
    recipient, or a ``government_level`` that contradicts the region's level.
    """
    path = default_registry_path() if path is None else path
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryFileError(path, None, f"cannot read the registry file: {exc}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise RegistryFileError(path, mark.line + 1 if mark else None, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML parse error is marked
        raise RegistryFileError(path, None, f"invalid YAML: {exc}") from exc
    if root is None or not isinstance(loaded, dict):
        raise RegistryFileError(path, 1, "the registry file must be a YAML mapping")
    try:
        data = RegistryFile.model_validate(loaded)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = node_at(root, loc).start_mark.line + 1
        raise RegistryFileError(path, line, f"{'.'.join(map(str, loc))}: {first['msg']}") from exc
    problems = _problems(data)
    if problems:
        loc, message = problems[0]
        line = node_at(root, loc).start_mark.line + 1
        raise RegistryFileError(path, line, f"{'.'.join(map(str, loc))}: {message}")
    return Registry(data=data, path=path, sha256=hashlib.sha256(raw).hexdigest())
