"""SOP steps 4, 5 and 7 (*diteliti*): the checks a Renja draft must pass, as findings with their legal source.

This module owns the ``Finding`` model, the nomenclature and Renstra reference loaders, and
``compute_findings``. Severities (why each one):

- **blocking** — the draft cannot go to paraf (steps 8–9) until fixed, because a reviewer or SIPD would
  refuse it outright: a malformed code or wrong government level (SIPD accepts only reference codes,
  Permendagri 90/2019); a code absent from the nomenclature in force; a duplicated code (T-C.33 would
  double-count); a roll-up mismatch (the Bab IV matrix must equal SIPD, and a kegiatan's pagu is the sum
  of its sub kegiatan); a row without its parent; a missing pagu, target or indicator (the reviewers'
  rule "no empty cells in the T-C tables", Permendagri 86/2017); a non-printing control character
  (invisible, yet it changes the signed hash and breaks matching with SIPD); a **program** absent from
  the Renstra (a whole program outside the strategy is the misalignment the SOP warns against).
- **warning** — shown to the reviewers, who acknowledge it at paraf (``Initialed.warnings_acknowledged``):
  pagu 0 (legitimate for an item planned in the RKPD but not yet funded, as in the PPU data); a
  **kegiatan** absent from the Renstra (the Renstra can lag a Kepmendagri nomenclature amendment, so it
  needs a justification, not a stop); an indicator not among the Renstra's indicators for that code
  (wording differs across agencies and years); a name differing from the nomenclature beyond
  case/punctuation; a missing satuan; a parent without children; a line break or tab inside a cell.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.documents.intake import Level, Row, level_of
from shared.events.models import RequestedChange

Severity = Literal["blocking", "warning"]

SOURCE_CODES = (
    "Permendagri 90/2019 jo. Kepmendagri 050-5889/2021 dan perubahannya "
    "(klasifikasi, kodefikasi dan nomenklatur perencanaan pembangunan dan keuangan daerah)"
)
SOURCE_RENJA = "Permendagri 86/2017 (Renja Perangkat Daerah; Tabel T-C.33 rumusan rencana program dan kegiatan)"
SOURCE_RENSTRA = "Permendagri 86/2017 (Renja PD disusun berpedoman pada Renstra PD; SOP Penyusunan Renja, peringatan)"

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
DEFAULT_NOMENCLATURE_PATH = REPO_DATA / "nomenklatur-kepmendagri-1317-2023-kabkota-semua-urusan.csv"
"""The national list, all urusan, kab/kota form (Kepmendagri 900.1.15.5-1317/2023; ``data/SOURCES.md``)."""

_FORMAT: dict[Level, re.Pattern[str]] = {
    "program": re.compile(r"\d\.\d{2}\.\d{2}"),
    "kegiatan": re.compile(r"\d\.\d{2}\.\d{2}\.\d\.\d{2}"),
    "sub_kegiatan": re.compile(r"\d\.\d{2}\.\d{2}\.\d\.\d{2}\.\d{4}"),
}
_FORMAT_TEXT: dict[Level, str] = {"program": "X.XX.XX", "kegiatan": "X.XX.XX.X.XX", "sub_kegiatan": "X.XX.XX.X.XX.XXXX"}
_LABEL: dict[Level, str] = {"program": "Program", "kegiatan": "Kegiatan", "sub_kegiatan": "Sub kegiatan"}


class Finding(BaseModel):
    """One result of the checks: ``codes`` are the Renja codes concerned (the first is the row to fix),
    ``message`` is for the staff (Indonesian), ``source`` cites the regulation behind the rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: Severity
    rule: str
    codes: tuple[str, ...]
    message: str
    source: str


class NomenclatureEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kode: str
    level: str
    nama: str
    kinerja: str = ""
    indikator: str = ""
    satuan: str = ""


class Nomenclature(BaseModel):
    """The reference list of codes, versioned by the regulation it reflects (recorded in each draft)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regulation: str
    entries: Mapping[str, NomenclatureEntry]

    def lookup(self, kode: str) -> NomenclatureEntry | None:
        """The entry for a Renja code; the penunjang program ``<bidang>.01…`` resolves through the
        reference's generic ``X.XX.01…`` block when the bidang itself is in the reference."""
        if kode in self.entries:
            return self.entries[kode]
        parts = kode.split(".")
        if len(parts) >= 3 and parts[2] == "01" and ".".join(parts[:2]) in self.entries:
            return self.entries.get(".".join(["X", "XX", *parts[2:]]))
        return None


class RenstraEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kode: str
    level: str
    uraian: str
    indikators: tuple[str, ...] = ()


class Renstra(BaseModel):
    """The agency's Renstra program/kegiatan codes with their indicators (tujuan/sasaran are not kept)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    entries: Mapping[str, RenstraEntry]


# --- loaders -----------------------------------------------------------------------------------------


def _csv_dicts(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8-sig")
    return [
        {k.strip().lower(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(io.StringIO(text))
    ]


def parse_nomenclature(data: bytes) -> Nomenclature:
    """Parse the nomenclature CSV (columns kode, level, nama, kinerja, indikator, satuan, regulasi).
    The regulation is the distinct ``regulasi`` value(s), joined by " | "; ValueError if the file is empty."""
    records = _csv_dicts(data)
    if not records:
        raise ValueError("nomenclature file has no rows")
    regulations = sorted({r.get("regulasi", "") for r in records} - {""})
    entries = {
        r["kode"]: NomenclatureEntry(
            kode=r["kode"],
            level=r.get("level", ""),
            nama=r.get("nama", ""),
            kinerja=r.get("kinerja", ""),
            indikator=r.get("indikator", ""),
            satuan=r.get("satuan", ""),
        )
        for r in records
    }
    return Nomenclature(regulation=" | ".join(regulations) or "unknown", entries=entries)


def load_nomenclature(path: Path | str = DEFAULT_NOMENCLATURE_PATH) -> Nomenclature:
    """Read ``data/nomenklatur-urusan-5.csv`` (or another list in the same shape); see ``parse_nomenclature``."""
    return parse_nomenclature(Path(path).read_bytes())


def parse_renstra(data: bytes, *, title: str = "Renstra PD") -> Renstra:
    """Parse a Renstra CSV (kode, level, uraian|nama, indikator, ...): program/kegiatan/sub kegiatan rows
    grouped by code with their indicators in file order; tujuan/sasaran rows are skipped."""
    grouped: dict[str, RenstraEntry] = {}
    for r in _csv_dicts(data):
        kode = r.get("kode", "")
        if level_of(kode) is None or r.get("level", "") in ("tujuan", "sasaran"):
            continue
        entry = grouped.get(kode) or RenstraEntry(
            kode=kode, level=r.get("level", ""), uraian=r.get("uraian") or r.get("nama", "")
        )
        indikator = r.get("indikator", "")
        if indikator and indikator not in entry.indikators:
            entry = entry.model_copy(update={"indikators": (*entry.indikators, indikator)})
        grouped[kode] = entry
    return Renstra(title=title, entries=grouped)


def load_renstra(path: Path | str) -> Renstra:
    """Read an agency's Renstra CSV; its file name becomes the title recorded with the findings."""
    p = Path(path)
    return parse_renstra(p.read_bytes(), title=p.stem)


# --- rules -------------------------------------------------------------------------------------------


def comparable(text: str) -> str:
    """Text folded for comparison: NFKC, casefold, punctuation and spacing ignored ("Hasil- Hasil" =
    "Hasil-Hasil", "(RPJPD. RPJMD" = "(RPJPD, RPJMD"): PDF artefacts must not raise findings."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", folded).split())


def rupiah(value: int) -> str:
    """Whole rupiah as printed in Indonesian documents: ``Rp 1.234.567``."""
    return f"Rp {value:,}".replace(",", ".")


def parent_code(kode: str) -> str | None:
    """The parent row's code: a sub kegiatan's kegiatan, a kegiatan's program; None for a program."""
    parts = kode.split(".")
    if len(parts) == 6:
        return ".".join(parts[:5])
    if len(parts) == 5:
        return ".".join(parts[:3])
    return None


_TEXT_FIELDS = ("nama", "indikator", "target", "satuan", "sumber_dana", "lokasi", "catatan", "target_n1")


def _control_findings(rows: Iterable[Row]) -> list[Finding]:
    out: list[Finding] = []
    for row in rows:
        for name in _TEXT_FIELDS:
            value: str = getattr(row, name)
            controls = {ch for ch in value if unicodedata.category(ch) in ("Cc", "Cf")}
            if not controls:
                continue
            shown = ", ".join(sorted(f"U+{ord(ch):04X}" for ch in controls))
            soft = controls <= {"\n", "\r", "\t"}
            out.append(
                Finding(
                    severity="warning" if soft else "blocking",
                    rule="control_characters",
                    codes=(row.kode,),
                    message=f"{row.kode} kolom {name}: karakter kontrol {shown}"
                    + (" (baris baru/tab di dalam sel)" if soft else " (tak terlihat; hapus)"),
                    source=SOURCE_RENJA,
                )
            )
    return out


def _format_findings(rows: Iterable[Row], government_level: str) -> list[Finding]:
    out: list[Finding] = []
    for row in rows:
        if not _FORMAT[row.level].fullmatch(row.kode):
            out.append(
                Finding(
                    severity="blocking",
                    rule="code_format",
                    codes=(row.kode,),
                    message=f"Kode {row.kode} tidak berformat {_FORMAT_TEXT[row.level]} ({_LABEL[row.level].lower()})",
                    source=SOURCE_CODES,
                )
            )
        elif row.level != "program" and row.kode.split(".")[3] != government_level:
            out.append(
                Finding(
                    severity="blocking",
                    rule="government_level",
                    codes=(row.kode,),
                    message=f"Kode {row.kode}: digit tingkat pemerintahan {row.kode.split('.')[3]}, "
                    f"seharusnya {government_level} (1 = provinsi, 2 = kabupaten/kota)",
                    source=SOURCE_CODES,
                )
            )
    return out


def _nomenclature_findings(rows: Iterable[Row], nomenclature: Nomenclature) -> list[Finding]:
    out: list[Finding] = []
    source = f"{SOURCE_CODES}; referensi: {nomenclature.regulation}"
    for row in rows:
        if not _FORMAT[row.level].fullmatch(row.kode):
            continue  # already blocking as code_format; a lookup would only repeat it
        entry = nomenclature.lookup(row.kode)
        if entry is None:
            out.append(
                Finding(
                    severity="blocking",
                    rule="code_not_in_nomenclature",
                    codes=(row.kode,),
                    message=f"Kode {row.kode} ({row.nama}) tidak ada dalam nomenklatur referensi",
                    source=source,
                )
            )
        elif comparable(entry.nama) != comparable(row.nama):
            out.append(
                Finding(
                    severity="warning",
                    rule="name_differs_from_nomenclature",
                    codes=(row.kode,),
                    message=f"Nama {row.kode} '{row.nama}' berbeda dari nomenklatur '{entry.nama}'",
                    source=source,
                )
            )
    return out


def _duplicate_findings(rows: Sequence[Row]) -> list[Finding]:
    counts = Counter(r.kode for r in rows)
    return [
        Finding(
            severity="blocking",
            rule="duplicate_code",
            codes=(kode,),
            message=f"Kode {kode} muncul {n} kali",
            source=SOURCE_RENJA,
        )
        for kode, n in sorted(counts.items())
        if n > 1
    ]


def _structure_findings(rows: Sequence[Row]) -> list[Finding]:
    """Orphans, childless parents and the pagu roll-ups (sub kegiatan → kegiatan → program)."""
    out: list[Finding] = []
    by_code = {r.kode: r for r in rows}
    children: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        parent = parent_code(row.kode)
        if parent is None:
            continue
        if parent in by_code:
            children[parent].append(row)
        else:
            out.append(
                Finding(
                    severity="blocking",
                    rule="orphan_row",
                    codes=(row.kode, parent),
                    message=f"{_LABEL[row.level]} {row.kode} tanpa baris induk {parent}",
                    source=SOURCE_RENJA,
                )
            )
    for parent_row in sorted(by_code.values(), key=lambda r: r.kode):
        if parent_row.level == "sub_kegiatan":
            continue
        kids = children.get(parent_row.kode, [])
        kind = "kegiatan" if parent_row.level == "program" else "sub kegiatan"
        if not kids:
            out.append(
                Finding(
                    severity="warning",
                    rule="no_children",
                    codes=(parent_row.kode,),
                    message=f"{_LABEL[parent_row.level]} {parent_row.kode} tidak memiliki {kind}",
                    source=SOURCE_RENJA,
                )
            )
            continue
        if parent_row.pagu is None or any(k.pagu is None for k in kids):
            continue  # missing pagu is its own blocking finding; a sum over gaps would mislead
        total = sum(k.pagu or 0 for k in kids)
        if total != parent_row.pagu:
            out.append(
                Finding(
                    severity="blocking",
                    rule="rollup_mismatch",
                    codes=(parent_row.kode, *sorted(k.kode for k in kids)),
                    message=f"Pagu {_LABEL[parent_row.level].lower()} {parent_row.kode} {rupiah(parent_row.pagu)} "
                    f"≠ jumlah {kind}-nya {rupiah(total)} (selisih {rupiah(abs(parent_row.pagu - total))})"
                    + _gap_hint(parent_row.pagu - total, kids),
                    source=f"{SOURCE_RENJA}; pagu Bab IV harus sama dengan SIPD",
                )
            )
    return out


def _gap_hint(gap: int, kids: Sequence[Row]) -> str:
    """When the parent holds more than its children and exactly one child is unfunded (Rp 0), the gap is
    most plausibly that child's money: say so, so the fix funds the child instead of cutting the parent."""
    unfunded = [k for k in kids if k.pagu == 0]
    if gap > 0 and len(unfunded) == 1:
        return f"; selisih ini kemungkinan pagu {unfunded[0].kode} yang masih Rp 0"
    return ""


_TARGET_UNIT = re.compile(r"([0-9][0-9.,]*)\s*([A-Za-z%].*)")


def _positive(target: str) -> bool:
    """Whether a target's leading number is above 0 ("12", "31 Unit", "1,5"); False for text or 0."""
    found = re.match(r"\s*(\d[\d.,]*)", target)
    return bool(found) and any(ch in "123456789" for ch in found.group(1)) if found else False


def _completeness_findings(rows: Iterable[Row]) -> list[Finding]:
    out: list[Finding] = []

    def add(severity: Severity, rule: str, row: Row, what: str) -> None:
        out.append(
            Finding(severity=severity, rule=rule, codes=(row.kode,), message=f"{row.kode}: {what}", source=SOURCE_RENJA)
        )

    for row in rows:
        if row.pagu is None:
            add("blocking", "pagu_missing", row, "pagu indikatif kosong")
        elif row.pagu == 0 and _positive(row.target):
            add(
                "blocking",
                "pagu_zero_with_target",
                row,
                f"pagu indikatif Rp 0 dengan target {row.target} {row.satuan}".rstrip()
                + "; Renja tidak menjanjikan keluaran tanpa dana: danai atau hapus baris ini",
            )
        elif row.pagu == 0:
            add("warning", "pagu_zero", row, "pagu indikatif Rp 0 (direncanakan tanpa dana)")
        if not row.indikator.strip():
            add("blocking", "indicator_missing", row, "indikator kinerja kosong")
        if not row.target.strip():
            add("blocking", "target_missing", row, "target kinerja kosong")
        elif re.fullmatch(r"0+([.,]0+)?", row.target.strip()):
            add("warning", "target_zero", row, "target kinerja 0")
        if row.target.strip() and not row.satuan.strip():
            carried = _TARGET_UNIT.fullmatch(row.target.strip())
            hint = ""
            if carried:
                hint = f" (satuan '{carried.group(2)}' tertulis di kolom target: pindahkan ke kolom satuan)"
            add("warning", "satuan_missing", row, "satuan target kosong" + hint)
    return out


def _renstra_findings(rows: Iterable[Row], renstra: Renstra) -> list[Finding]:
    out: list[Finding] = []
    source = f"{SOURCE_RENSTRA}; Renstra: {renstra.title}"
    for row in rows:
        if row.level == "sub_kegiatan":
            continue  # Renstra PD cascades to kegiatan; sub kegiatan are chosen yearly in the Renja
        entry = renstra.entries.get(row.kode)
        if entry is None:
            out.append(
                Finding(
                    severity="blocking" if row.level == "program" else "warning",
                    rule="not_in_renstra",
                    codes=(row.kode,),
                    message=f"{_LABEL[row.level]} {row.kode} ({row.nama}) tidak ada dalam Renstra",
                    source=source,
                )
            )
        elif row.indikator.strip() and comparable(row.indikator) not in {comparable(i) for i in entry.indikators}:
            out.append(
                Finding(
                    severity="warning",
                    rule="renstra_indicator_mismatch",
                    codes=(row.kode,),
                    message=f"Indikator {row.kode} '{row.indikator}' tidak termasuk indikator Renstra untuk kode ini",
                    source=source,
                )
            )
    return out


_SEVERITY_ORDER = {"blocking": 0, "warning": 1}


def compute_findings(
    rows: Sequence[Row],
    *,
    nomenclature: Nomenclature | None,
    renstra: Renstra | None,
    government_level: str = "2",
) -> list[Finding]:
    """Check a draft's rows; return every finding, blocking first, then by rule and codes (deterministic).

    ``nomenclature`` / ``renstra`` are required arguments; pass ``None`` explicitly only to skip that
    family of checks (e.g. a unit's partial delivery). ``government_level`` is the kegiatan code's 4th
    segment the agency must use: ``"2"`` for kab/kota, ``"1"`` for provinsi. Pure; raises nothing.
    """
    findings = [
        *_format_findings(rows, government_level),
        *_duplicate_findings(rows),
        *_structure_findings(rows),
        *_completeness_findings(rows),
        *_control_findings(rows),
    ]
    if nomenclature is not None:
        findings += _nomenclature_findings(rows, nomenclature)
    if renstra is not None:
        findings += _renstra_findings(rows, renstra)
    return ordered(findings)


RULE_NOTULEN_NOT_APPLIED = "notulen_change_not_applied"
SOURCE_NOTULEN = (
    "SOP Penyusunan Renja langkah 7 (Rancangan Awal diperbaiki berdasarkan Notulen menjadi Rancangan Akhir)"
)


def notulen_findings(skipped: Iterable[tuple[RequestedChange, str]]) -> list[Finding]:
    """One **warning** per notulen change the Rancangan Akhir could not apply (``(change, reason)`` pairs).

    Warning, not blocking: the notulen is final (step 6 is done) and the staff cannot correct it, so a
    block would stop the Renja for good; the reviewers at steps 8-10 see and acknowledge what the meeting
    asked that the draft does not hold, and may return it to step 7 with instructions.
    """
    return [
        Finding(
            severity="warning",
            rule=RULE_NOTULEN_NOT_APPLIED,
            codes=(change.kode,),
            message=f"notulen change not applied: {change.kode} {change.field} = {change.new_value!r} ({reason})",
            source=SOURCE_NOTULEN,
        )
        for change, reason in skipped
    ]


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """``findings`` in ``compute_findings``' order: blocking first, then by rule, codes and message."""
    return sorted(findings, key=lambda f: (_SEVERITY_ORDER[f.severity], f.rule, f.codes, f.message))


def counts(findings: Iterable[Finding]) -> tuple[int, int]:
    """(blocking, warning) counts, as published in ``DraftCreated``."""
    items = list(findings)
    return sum(f.severity == "blocking" for f in items), sum(f.severity == "warning" for f in items)
