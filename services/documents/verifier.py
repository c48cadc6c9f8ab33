"""The checks a Bappeda verifier makes beyond arithmetic: n+1, plausibility, nomenclature semantics, sumber
dana and lokasi, the OPD's mandate, the pagu indikatif ceiling and whether the Renstra applies at all.

This module owns ``ReviewContext`` (what the checks know of the cycle: plan year, the OPD's bidang urusan,
its pagu ceiling, its Renstra's owner and period), the APBD sumber dana reference list, and ``review``,
the one entry point the documents service calls for a draft: the structural checks of
``services.documents.findings.compute_findings`` plus the rules here, de-duplicated and ordered.

Ranked by the reviewer (``../shared/research/reviewer-findings.md`` §(d)); severities:

- **blocking**: n+1 (prakiraan maju) absent, missing on a row, or not rolling up (Permendagri 86/2017
  T-C.33 "Rencana Tahun n dan Prakiraan Maju Tahun n+1": an empty n+1 is returned); a **negative** target;
  pagu 0 with a target above 0 (findings ``pagu_zero_with_target``: reviewers treat it as an error); a
  name that is another code's nomenclature name (the row is coded as something it is not); a sub kegiatan
  satuan or indicator other than the nomenclature's (SIPD locks both per sub kegiatan); a sumber dana
  that is not an APBD source; a code outside the OPD's bidang urusan; a total above the OPD's pagu
  indikatif ceiling; a Renstra that is another OPD's or does not cover the plan year (one finding,
  instead of one warning per row measured against the wrong Renstra).
- **warning**: a non-numeric target, a percentage above 100, several outputs in one cell, a placeholder
  or outlying pagu, n+1 targets missing or 0, sumber dana or lokasi empty, a total below the ceiling
  while a sub kegiatan is unfunded, and an absent optional reference (said once).

Pure: no I/O; references are passed in. Messages are Indonesian and say what to fix.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from services.documents.findings import (
    REPO_DATA,
    SOURCE_CODES,
    SOURCE_RENJA,
    SOURCE_RENSTRA,
    Finding,
    Nomenclature,
    Renstra,
    Severity,
    comparable,
    compute_findings,
    ordered,
    parent_code,
    rupiah,
)
from services.documents.intake import Row

SOURCE_N1 = "Permendagri 86/2017, Tabel T-C.33 (Rencana Tahun n dan Prakiraan Maju Tahun n+1)"
SOURCE_PLAUSIBILITY = "Permendagri 86/2017 (verifikasi Rancangan Renja PD oleh Bappeda: kewajaran target dan pagu)"
SOURCE_SIPD_LOCK = f"{SOURCE_CODES}; SIPD mengunci indikator dan satuan setiap sub kegiatan"
SOURCE_SUMBER_DANA = (
    "Permendagri 77/2020 dan 90/2019 (sumber dana APBD: PAD, pendapatan transfer, lain-lain, pembiayaan)"
)
SOURCE_MANDATE = "Perda/Perkada SOTK (tugas dan fungsi PD) dan Permendagri 90/2019 (kode unit: bidang urusan PD)"
SOURCE_CEILING = "Permendagri 86/2017 (pagu indikatif PD dari Rancangan Awal RKPD / surat edaran kepala daerah)"

DEFAULT_SUMBER_DANA_PATH = REPO_DATA / "sumber-dana-apbd.csv"

PLACEHOLDER_PAGU = 2_000_000
"""A sub kegiatan pagu at or below this (rupiah) reads as a placeholder, not a costed output."""
OUTLIER_FACTOR = 100
"""A sub kegiatan pagu above this multiple of the draft's median sub kegiatan pagu is an outlier."""
_MIN_FOR_MEDIAN = 5
_AGGREGATE_SHOWN = 8


class SumberDana(BaseModel):
    """The APBD sources of funds a Renja row may name (``data/sumber-dana-apbd.csv``): each entry a code,
    a name and the comparable keywords that identify it in free text ("Dana Alokasi Umum (DAU)")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regulation: str
    entries: tuple[tuple[str, str, tuple[str, ...]], ...]

    def match(self, text: str) -> str | None:
        """The code of the source ``text`` names, or None."""
        folded = f" {comparable(text)} "
        for kode, _, keywords in self.entries:
            if any(f" {k} " in folded for k in keywords):
                return kode
        return None


def parse_sumber_dana(data: bytes) -> SumberDana:
    """Parse ``kode,nama,kata_kunci,regulasi`` (keywords ``|``-separated); ValueError when empty."""
    records = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    if not records:
        raise ValueError("sumber dana file has no rows")
    entries = tuple(
        (
            r["kode"].strip(),
            r["nama"].strip(),
            tuple(comparable(k) for k in r["kata_kunci"].split("|") if comparable(k)),
        )
        for r in records
    )
    regulations = sorted({(r.get("regulasi") or "").strip() for r in records} - {""})
    return SumberDana(regulation=" | ".join(regulations), entries=entries)


def load_sumber_dana(path: Path | str = DEFAULT_SUMBER_DANA_PATH) -> SumberDana:
    """Read the APBD sumber dana list; see ``parse_sumber_dana``."""
    return parse_sumber_dana(Path(path).read_bytes())


@dataclass(frozen=True)
class RenstraScope:
    """Whose Renstra it is and which years it covers (from the registry or the file's metadata)."""

    owner: str
    """The OPD (SIPD unit code or name) the Renstra belongs to; empty when unknown."""
    first_year: int
    last_year: int


_PERIOD = re.compile(r"(20\d{2})\D{1,3}(20\d{2})")


def renstra_period(title: str) -> tuple[int, int] | None:
    """The period a Renstra's title or file name states ("renstra-2026-2030-…" → (2026, 2030)), or None."""
    found = _PERIOD.search(title)
    return (int(found.group(1)), int(found.group(2))) if found else None


@dataclass(frozen=True)
class ReviewContext:
    """What the checks know of the cycle; every ``None`` is an absent optional reference.

    - ``plan_year``: the Renja's tahun rencana (n);
    - ``opd``: the OPD's SIPD unit code or name, compared with ``renstra_scope.owner``;
    - ``bidang_urusan``: the bidang urusan the OPD may plan in ("5.01", "5.05"); see ``bidang_of_unit``;
    - ``pagu_ceiling``: the OPD's pagu indikatif for the plan year, whole rupiah;
    - ``renstra_scope``: owner and period of the Renstra passed to ``review``.
    """

    plan_year: int | None = None
    opd: str = ""
    bidang_urusan: tuple[str, ...] | None = None
    pagu_ceiling: int | None = None
    renstra_scope: RenstraScope | None = None
    government_level: str = "2"
    notes: tuple[str, ...] = field(default=())


_UNIT_CODE = re.compile(r"\d\.\d{2}\.\d\.\d{2}\.\d\.\d{2}\.\d{2}\.\d{4}")


def bidang_of_unit(unit_code: str) -> tuple[str, ...]:
    """The bidang urusan a SIPD unit code carries ("1.01.2.22.0.00.01.0000" → ("1.01", "2.22")): the first
    three pairs are the unit's bidang, ``0.00`` meaning none. ValueError for another shape."""
    if not _UNIT_CODE.fullmatch(unit_code):
        raise ValueError(f"kode unit SIPD '{unit_code}' tidak berformat X.XX.X.XX.X.XX.XX.XXXX")
    parts = unit_code.split(".")
    pairs = [f"{parts[i]}.{parts[i + 1]}" for i in (0, 2, 4)]
    return tuple(p for p in pairs if p != "0.00")


# --- helpers -----------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\s*([-−–]?)\s*(\d[\d.]*(?:,\d+)?|\d*,\d+)\s*(%?)\s*(.*)", re.S)


def target_number(text: str) -> tuple[float, str] | None:
    """A target's leading number (Indonesian "1.234,5" or plain) and the text after it; None if none."""
    found = _NUMBER.fullmatch(text)
    if not found:
        return None
    sign, digits, percent, rest = found.groups()
    normalised = digits.replace(".", "").replace(",", ".") if "," in digits or digits.count(".") > 1 else digits
    try:
        value = float(normalised)
    except ValueError:
        return None
    return (-value if sign else value), (percent + " " + rest).strip()


def _one(severity: Severity, rule: str, codes: Sequence[str], message: str, source: str) -> Finding:
    return Finding(severity=severity, rule=rule, codes=tuple(codes), message=message, source=source)


def _aggregate(severity: Severity, rule: str, rows: Sequence[Row], what: str, fix: str, source: str) -> list[Finding]:
    """One finding for ``rows`` sharing a gap, listing the first codes (a 60-row annex helps no one)."""
    if not rows:
        return []
    codes = [r.kode for r in rows]
    more = len(codes) - _AGGREGATE_SHOWN
    shown = ", ".join(codes[:_AGGREGATE_SHOWN]) + (f", dan {more} lainnya" if more > 0 else "")
    return [_one(severity, rule, codes, f"{what} pada {len(codes)} baris ({shown}); {fix}", source)]


# --- n+1 ---------------------------------------------------------------------------------------------


def n1_findings(rows: Sequence[Row]) -> list[Finding]:
    """Prakiraan maju n+1: present (blocking when the whole draft has none, or a row lacks it), rolled up
    like the year-n pagu (blocking), and with targets (warning when missing or 0)."""
    if not rows:
        return []
    if all(r.pagu_n1 is None for r in rows):
        first = sorted(r.kode for r in rows)[0]
        return [
            _one(
                "blocking",
                "n1_absent",
                [first],
                "Prakiraan maju tahun n+1 (target dan pagu) kosong di seluruh rancangan; lengkapi kolom pagu n+1 "
                "dan target n+1 setiap baris",
                SOURCE_N1,
            )
        ]
    out = _aggregate(
        "blocking",
        "pagu_n1_missing",
        [r for r in rows if r.pagu_n1 is None],
        "Pagu prakiraan maju n+1 kosong",
        "isi pagu n+1",
        SOURCE_N1,
    )
    by_code = {r.kode: r for r in rows}
    children: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        parent = parent_code(row.kode)
        if parent in by_code:
            children[parent].append(row)
    for kode, kids in sorted(children.items()):
        parent_row = by_code[kode]
        if parent_row.pagu_n1 is None or any(k.pagu_n1 is None for k in kids):
            continue
        total = sum(k.pagu_n1 or 0 for k in kids)
        if total != parent_row.pagu_n1:
            out.append(
                _one(
                    "blocking",
                    "rollup_mismatch_n1",
                    [kode, *sorted(k.kode for k in kids)],
                    f"Pagu n+1 {kode} {rupiah(parent_row.pagu_n1)} ≠ jumlah turunannya {rupiah(total)} "
                    f"(selisih {rupiah(abs(parent_row.pagu_n1 - total))})",
                    SOURCE_N1,
                )
            )
    funded = [r for r in rows if r.pagu_n1]
    out += _aggregate(
        "warning",
        "target_n1_missing",
        [r for r in funded if not r.target_n1.strip()],
        "Target n+1 kosong padahal pagu n+1 terisi",
        "isi target n+1 (tolok ukur tahun berikutnya)",
        SOURCE_N1,
    )
    zero = [r for r in funded if (n := target_number(r.target_n1)) is not None and n[0] == 0]
    out += _aggregate(
        "warning", "target_n1_zero", zero, "Target n+1 bernilai 0 padahal pagu n+1 terisi", "isi target n+1", SOURCE_N1
    )
    return out


# --- targets and pagu plausibility -------------------------------------------------------------------

_SEVERAL = re.compile(r"\d\s*%?\s*[;,]\s+\S|;|\n")
_PERCENT_UNITS = {"%", "persen"}


def target_findings(rows: Iterable[Row]) -> list[Finding]:
    """Negative (blocking), non-numeric, above 100 % and several outputs in one cell (warnings)."""
    out: list[Finding] = []
    for row in rows:
        target = row.target.strip()
        if not target:
            continue  # target_missing is the structural check's
        parsed = target_number(target)
        if parsed is None:
            out.append(
                _one(
                    "warning",
                    "target_not_numeric",
                    [row.kode],
                    f"{row.kode}: target '{target}' bukan angka; tuliskan target terukur (angka) dengan satuannya",
                    SOURCE_PLAUSIBILITY,
                )
            )
            continue
        value, rest = parsed
        if value < 0:
            out.append(
                _one(
                    "blocking",
                    "target_negative",
                    [row.kode],
                    f"{row.kode}: target {target} negatif; target kinerja tidak boleh kurang dari 0",
                    SOURCE_PLAUSIBILITY,
                )
            )
        unit = comparable(row.satuan) or comparable(rest)
        if (row.satuan.strip() == "%" or unit in _PERCENT_UNITS or rest.startswith("%")) and value > 100:
            out.append(
                _one(
                    "warning",
                    "target_percent_out_of_range",
                    [row.kode],
                    f"{row.kode}: target {target} melebihi 100 %; periksa angka atau satuannya",
                    SOURCE_PLAUSIBILITY,
                )
            )
        several_indicators = ";" in row.indikator or "\n" in row.indikator.strip()
        if _SEVERAL.search(target) or _SEVERAL.search(row.satuan) or several_indicators:
            out.append(
                _one(
                    "warning",
                    "several_outputs_in_cell",
                    [row.kode],
                    f"{row.kode}: beberapa indikator/target dalam satu sel ('{target}'); "
                    "tulis satu indikator per baris",
                    SOURCE_PLAUSIBILITY,
                )
            )
    return out


def pagu_findings(rows: Sequence[Row]) -> list[Finding]:
    """Placeholder pagu (≤ ``PLACEHOLDER_PAGU`` with a target) and outliers (> ``OUTLIER_FACTOR`` × the
    median sub kegiatan pagu) on sub kegiatan rows: warnings with the unit cost."""
    subs = [r for r in rows if r.level == "sub_kegiatan" and r.pagu]
    out: list[Finding] = []
    for row in subs:
        assert row.pagu is not None
        parsed = target_number(row.target)
        if row.pagu <= PLACEHOLDER_PAGU and parsed is not None and parsed[0] > 0:
            per = f"; {rupiah(int(row.pagu / parsed[0]))} per {row.satuan or 'satuan'}" if parsed[0] > 1 else ""
            out.append(
                _one(
                    "warning",
                    "pagu_placeholder",
                    [row.kode],
                    f"{row.kode}: pagu {rupiah(row.pagu)} untuk {row.target} {row.satuan}".rstrip()
                    + f"{per} — tampak seperti angka sementara; hitung kebutuhan biaya",
                    SOURCE_PLAUSIBILITY,
                )
            )
    if len(subs) >= _MIN_FOR_MEDIAN:
        median = statistics.median(r.pagu or 0 for r in subs)
        for row in subs:
            if median and (row.pagu or 0) > OUTLIER_FACTOR * median:
                out.append(
                    _one(
                        "warning",
                        "pagu_outlier",
                        [row.kode],
                        f"{row.kode}: pagu {rupiah(row.pagu or 0)} lebih dari {OUTLIER_FACTOR}× median sub kegiatan "
                        f"({rupiah(int(median))}); periksa angka nol yang berlebih",
                        SOURCE_PLAUSIBILITY,
                    )
                )
    return out


# --- nomenclature semantics --------------------------------------------------------------------------


def _concrete(kode: str, generic: str) -> str:
    """The generic penunjang block's code made concrete for ``kode``'s bidang ("X.XX.01…" → "5.01.01…")."""
    if generic.startswith("X.XX"):
        return ".".join(kode.split(".")[:2]) + generic[4:]
    return generic


def nomenclature_findings(rows: Iterable[Row], nomenclature: Nomenclature) -> list[Finding]:
    """A name that is another code's name (blocking, naming that code); a sub kegiatan satuan or indicator
    other than the nomenclature's (blocking: SIPD locks them). Codes absent from the list are the
    structural check's ``code_not_in_nomenclature``."""
    by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    for known in nomenclature.entries.values():
        by_name[(known.level, comparable(known.nama))].append(known.kode)
    source = f"{SOURCE_CODES}; referensi: {nomenclature.regulation}"
    locked = f"{SOURCE_SIPD_LOCK}; referensi: {nomenclature.regulation}"
    out: list[Finding] = []
    for row in rows:
        entry = nomenclature.lookup(row.kode)
        name = comparable(row.nama)
        if entry is None or comparable(entry.nama) != name:
            bidang = ".".join(row.kode.split(".")[:2])
            owners = [
                _concrete(row.kode, k)
                for k in by_name.get((row.level, name), [])
                if k.startswith(bidang) or k.startswith("X.XX")
            ]
            owners = [k for k in owners if k != row.kode]
            if owners:
                out.append(
                    _one(
                        "blocking",
                        "name_of_other_code",
                        [row.kode, *owners],
                        f"{row.kode}: nama '{row.nama}' adalah nomenklatur kode {', '.join(owners)}"
                        + (f", bukan '{entry.nama}'" if entry else "")
                        + "; perbaiki kode atau nama",
                        source,
                    )
                )
        if entry is None or row.level != "sub_kegiatan":
            continue
        if entry.satuan and row.satuan.strip() and comparable(entry.satuan) != comparable(row.satuan):
            out.append(
                _one(
                    "blocking",
                    "satuan_differs_from_nomenclature",
                    [row.kode],
                    f"{row.kode}: satuan '{row.satuan}' berbeda dari nomenklatur '{entry.satuan}'",
                    locked,
                )
            )
        if entry.indikator and row.indikator.strip() and comparable(entry.indikator) != comparable(row.indikator):
            out.append(
                _one(
                    "blocking",
                    "indicator_differs_from_nomenclature",
                    [row.kode],
                    f"{row.kode}: indikator '{row.indikator}' berbeda dari nomenklatur '{entry.indikator}'",
                    locked,
                )
            )
    return out


# --- mandatory cells: sumber dana and lokasi ---------------------------------------------------------


def cell_findings(rows: Sequence[Row], sumber_dana: SumberDana | None) -> list[Finding]:
    """Sumber dana and lokasi on every sub kegiatan: empty (warning, once per column); a source that is not
    an APBD source of funds (blocking, per row)."""
    subs = [r for r in rows if r.level == "sub_kegiatan"]
    out = _aggregate(
        "warning",
        "sumber_dana_missing",
        [r for r in subs if not r.sumber_dana.strip()],
        "Sumber dana kosong",
        "isi sumber dana APBD (mis. DAU, PAD, DAK)",
        SOURCE_SUMBER_DANA,
    )
    out += _aggregate(
        "warning",
        "lokasi_missing",
        [r for r in subs if not r.lokasi.strip()],
        "Lokasi kosong",
        "isi lokasi (kabupaten/kota, kecamatan, desa)",
        SOURCE_RENJA,
    )
    if sumber_dana is None:
        return out
    for row in subs:
        parts = [p for p in re.split(r",\s+(?=[A-Z])", row.sumber_dana) if p.strip()]
        unknown = [p.strip() for p in parts if sumber_dana.match(p) is None]
        if unknown:
            out.append(
                _one(
                    "blocking",
                    "sumber_dana_not_apbd",
                    [row.kode],
                    f"{row.kode}: sumber dana '{', '.join(unknown)}' bukan sumber dana APBD; gunakan daftar sumber "
                    "dana (PAD, DAU, DAK, DBH, bantuan keuangan, SiLPA, …)",
                    f"{SOURCE_SUMBER_DANA}; referensi: {sumber_dana.regulation}",
                )
            )
    return out


# --- the OPD: mandate, ceiling, Renstra --------------------------------------------------------------


def mandate_findings(rows: Sequence[Row], bidang_urusan: Sequence[str]) -> list[Finding]:
    """Codes outside the OPD's bidang urusan: blocking, once per program (a kegiatan or sub kegiatan only
    when its program row is absent, so one misplaced program is one finding)."""
    allowed = set(bidang_urusan)
    present = {r.kode for r in rows}
    out: list[Finding] = []
    for row in rows:
        bidang = ".".join(row.kode.split(".")[:2])
        program = ".".join(row.kode.split(".")[:3])
        if bidang in allowed or (row.level != "program" and program in present):
            continue
        out.append(
            _one(
                "blocking",
                "outside_mandate",
                [row.kode],
                f"{row.kode} ({row.nama}) berada di bidang urusan {bidang}, di luar kewenangan PD "
                f"({', '.join(sorted(allowed))})",
                SOURCE_MANDATE,
            )
        )
    return out


def ceiling_findings(rows: Sequence[Row], ceiling: int) -> list[Finding]:
    """The draft's total against the OPD's pagu indikatif: above blocks; below while a sub kegiatan with a
    target is unfunded (Rp 0) is a warning that names the gap and the unfunded rows."""
    programs = [r for r in rows if r.level == "program"]
    total = sum(r.pagu or 0 for r in programs)
    codes = [r.kode for r in programs] or [r.kode for r in rows[:1]]
    if not codes:
        return []
    if total > ceiling:
        return [
            _one(
                "blocking",
                "pagu_above_ceiling",
                codes,
                f"Jumlah pagu {rupiah(total)} melebihi pagu indikatif PD {rupiah(ceiling)} "
                f"(kelebihan {rupiah(total - ceiling)}); sesuaikan dengan pagu indikatif",
                SOURCE_CEILING,
            )
        ]
    unfunded = [
        r
        for r in rows
        if r.level == "sub_kegiatan" and r.pagu == 0 and (n := target_number(r.target)) is not None and n[0] > 0
    ]
    if total < ceiling and unfunded:
        return [
            _one(
                "warning",
                "pagu_below_ceiling_unfunded",
                [r.kode for r in unfunded],
                f"Jumlah pagu {rupiah(total)} di bawah pagu indikatif {rupiah(ceiling)} "
                f"(sisa {rupiah(ceiling - total)}) sementara {len(unfunded)} sub kegiatan bertarget belum didanai "
                f"({', '.join(r.kode for r in unfunded)}): alokasikan sisa ke sana",
                SOURCE_CEILING,
            )
        ]
    return []


def renstra_applies(renstra: Renstra, context: ReviewContext) -> Finding | None:
    """One blocking finding when the Renstra is another OPD's or its period does not cover the plan year;
    None when it applies (or nothing is known to say otherwise)."""
    scope = context.renstra_scope
    period = (scope.first_year, scope.last_year) if scope else renstra_period(renstra.title)
    problems: list[str] = []
    if scope and scope.owner and context.opd and comparable(scope.owner) != comparable(context.opd):
        problems.append(f"milik {scope.owner}, bukan PD ini ({context.opd})")
    if period and context.plan_year is not None and not period[0] <= context.plan_year <= period[1]:
        problems.append(f"periode {period[0]}–{period[1]} tidak mencakup tahun rencana {context.plan_year}")
    if not problems:
        return None
    return _one(
        "blocking",
        "renstra_not_applicable",
        [renstra.title],
        f"Renstra '{renstra.title}' {' dan '.join(problems)}; lampirkan Renstra PD sendiri yang berlaku, "
        "keselarasan per baris tidak diperiksa",
        f"{SOURCE_RENSTRA}; Renstra: {renstra.title}",
    )


def _without_renstra_rows(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.rule not in ("not_in_renstra", "renstra_indicator_mismatch")]


def review(
    rows: Sequence[Row],
    *,
    nomenclature: Nomenclature | None,
    renstra: Renstra | None,
    sumber_dana: SumberDana | None = None,
    context: ReviewContext | None = None,
) -> list[Finding]:
    """Every finding on a draft's rows, blocking first (``findings.ordered``): the structural checks of
    ``compute_findings`` and the verifier's checks above. A Renstra that does not apply gives one blocking
    finding and no per-row Renstra findings; an absent Renstra, one warning. Pure; raises nothing."""
    ctx = context or ReviewContext()
    applies = renstra_applies(renstra, ctx) if renstra is not None else None
    structural = compute_findings(
        rows,
        nomenclature=nomenclature,
        renstra=renstra if applies is None else None,
        government_level=ctx.government_level,
    )
    out = [*structural, *n1_findings(rows), *target_findings(rows), *pagu_findings(rows)]
    out += cell_findings(rows, sumber_dana)
    if nomenclature is not None:
        semantic = nomenclature_findings(rows, nomenclature)
        renamed = {f.codes[0] for f in semantic if f.rule == "name_of_other_code"}
        out = [f for f in out if not (f.rule == "name_differs_from_nomenclature" and f.codes[0] in renamed)]
        out += semantic
    if applies is not None:
        out = [*_without_renstra_rows(out), applies]
    elif renstra is None and rows:
        out.append(
            _one(
                "warning",
                "renstra_absent",
                [sorted(r.kode for r in rows)[0]],
                "Renstra PD belum tersedia; keselarasan dengan Renstra tidak diperiksa",
                SOURCE_RENSTRA,
            )
        )
    if ctx.bidang_urusan is not None:
        out += mandate_findings(rows, ctx.bidang_urusan)
    if ctx.pagu_ceiling is not None:
        out += ceiling_findings(rows, ctx.pagu_ceiling)
    return ordered(out)
