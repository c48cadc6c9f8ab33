"""Sample rows: the real Renja 2024 of Bapelitbang Kabupaten Penajam Paser Utara (``data/``), by unit.

The SOP file's units deliver them at step 4. The split is by program, by longest code prefix
(``UNIT_OF_PREFIX``): the two secretariat programs 5.01.01 and 5.01.02 to the Sekretariat, program
5.01.03 (koordinasi dan sinkronisasi, whose three kegiatan are one per Bidang) by kegiatan to the three
Bidang, and program 5.05.02 to the Bidang Penelitian dan Pengembangan. Money is whole rupiah.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from services.documents.intake import Row, parse_rows
from shared.registry import Opd
from shared.sop import SopDefinition

REPO = Path(__file__).resolve().parents[2]
DATA_FILE = REPO / "data" / "renja-2024-bapelitbang-ppu.csv"
N1_FILE = REPO / "data" / "renja-2024-bapelitbang-ppu-pagu.csv"
"""The same 64 rows' prakiraan maju 2025 (``pagu_n1``, ``target_n1_raw``), joined on ``kode``."""
OPD = "Badan Perencanaan Pembangunan, Penelitian dan Pengembangan Daerah (Bapelitbang) Kabupaten Penajam Paser Utara"
DATA_YEAR = 2024  # the year of the source rows (tahun_anggaran 2024 in the SIPD export)

BENGKULU_UTARA: dict[str, Path] = {
    "5.01.5.05.0.00.01.0000": REPO / "data" / "renja-2026-bapperida-bengkulu-utara.csv",
    "1.01.2.22.0.00.01.0000": REPO / "data" / "renja-2026-disdik-bengkulu-utara.csv",
}
"""The SIPD-RI Renja 2026 rows (prakiraan maju 2027) of the shipped registry's two OPDs, by SIPD code."""
BENGKULU_UTARA_YEAR = 2026


def load_opd_rows(code: str) -> list[Row]:
    """The Renja 2026 rows of the Bengkulu Utara OPD ``code`` (``BENGKULU_UTARA``), parsed by the intake."""
    path = BENGKULU_UTARA[code]
    return parse_rows(path.name, path.read_bytes(), unit="-")


UNIT_OF_PREFIX: dict[str, str] = {
    "5.01.01": "SET",
    "5.01.02": "SET",
    "5.01.03": "SOSBUDPEM",
    "5.01.03.2.01": "SOSBUDPEM",
    "5.01.03.2.02": "PEREKSDA",
    "5.01.03.2.03": "INFRAWIL",
    "5.05.02": "LITBANG",
}


def load_rows() -> list[Row]:
    """Every row of ``DATA_FILE``, parsed by the documents service's own intake, with its prakiraan maju
    n+1 from ``N1_FILE`` (pagu as delivered; the target is 0 on every row there, a kept fault)."""
    rows = parse_rows(DATA_FILE.name, DATA_FILE.read_bytes(), unit="-")
    n1 = {r["kode"]: r for r in csv.DictReader(io.StringIO(N1_FILE.read_text(encoding="utf-8")))}
    return [
        row.model_copy(update={"pagu_n1": int(n1[row.kode]["pagu_n1"]), "target_n1": n1[row.kode]["target_n1_raw"]})
        for row in rows
    ]


def unit_of(kode: str, prefixes: dict[str, str] | None = None) -> str:
    """The unit delivering row ``kode``: the longest matching prefix in ``prefixes`` (default
    ``UNIT_OF_PREFIX``). Raises ``ValueError`` for a code no prefix covers."""
    table = UNIT_OF_PREFIX if prefixes is None else prefixes
    matches = [p for p in table if kode == p or kode.startswith(p + ".")]
    if not matches:
        raise ValueError(f"no unit for row {kode}")
    return table[max(matches, key=len)]


def rows_by_unit(rows: list[Row], sop: SopDefinition, opd: Opd | None = None) -> dict[str, list[Row]]:
    """``rows`` split by delivering unit, one (possibly empty) list per unit, in order: the registry
    OPD's units by their ``programs`` prefixes, else the SOP file's units by ``UNIT_OF_PREFIX``."""
    if opd is not None:
        prefixes = {p: u.code for u in opd.units for p in u.programs}
        by_unit: dict[str, list[Row]] = {u.code: [] for u in opd.units}
    else:
        prefixes, by_unit = dict(UNIT_OF_PREFIX), {u.code: [] for u in sop.units}
    for row in rows:
        by_unit[unit_of(row.kode, prefixes)].append(row)
    return by_unit


DEFAULT_LOKASI = "Kabupaten Penajam Paser Utara"
"""The lokasi of a PPU row without one (the 2024 dump keeps none); Bengkulu Utara rows carry their own."""


def rows_csv(rows: list[Row]) -> bytes:
    """A unit's delivery as a SIPD-like CSV (the intake tolerates these column names), UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "kode",
            "nama",
            "indikator",
            "target",
            "satuan",
            "pagu_indikatif",
            "sumber_dana",
            "lokasi",
            "target_n1",
            "pagu_n1",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.kode,
                r.nama,
                r.indikator,
                r.target,
                r.satuan,
                "" if r.pagu is None else r.pagu,
                r.sumber_dana,
                r.lokasi or DEFAULT_LOKASI,
                r.target_n1,
                "" if r.pagu_n1 is None else r.pagu_n1,
            ]
        )
    return out.getvalue().encode("utf-8")


def rollup_corrections(rows: list[Row]) -> list[dict[str, str]]:
    """The notulen's changes, as a Bappeda reviewer asks for them: a kegiatan whose pagu exceeds its sub
    kegiatan by exactly what one unfunded (Rp 0) sub kegiatan lacks funds that sub kegiatan with the gap
    (the RKPD figure stays); any other kegiatan, then each program, is set to the sum of its children —
    the Permendagri 86/2017 roll-up the findings check.

    Each change is a requested-change body (``kode``, ``field``, ``new_value``, ``note``).
    """
    pagu = {r.kode: r.pagu for r in rows}
    changes: list[dict[str, str]] = []
    for kegiatan in (r for r in rows if r.level == "kegiatan"):
        kids = [r for r in rows if r.level == "sub_kegiatan" and r.kode.rsplit(".", 1)[0] == kegiatan.kode]
        unfunded = [k for k in kids if k.pagu == 0]
        gap = (kegiatan.pagu or 0) - sum(k.pagu or 0 for k in kids)
        if gap > 0 and len(unfunded) == 1:
            pagu[unfunded[0].kode] = gap
            changes.append(
                {
                    "kode": unfunded[0].kode,
                    "field": "pagu",
                    "new_value": str(gap),
                    "note": f"Sub kegiatan didanai sebesar selisih pagu kegiatan {kegiatan.kode} "
                    f"(Rp {gap:,}); pagu kegiatan tetap sesuai RKPD".replace(",", "."),
                }
            )
    for level, child in (("kegiatan", "sub_kegiatan"), ("program", "kegiatan")):
        sums: dict[str, int] = {}
        for r in rows:
            value = pagu[r.kode]
            if r.level == child and value is not None:
                parent = r.kode.rsplit(".", 2 if child == "kegiatan" else 1)[0]
                sums[parent] = sums.get(parent, 0) + value
        for r in rows:
            if r.level == level and r.kode in sums and pagu[r.kode] != sums[r.kode]:
                old = pagu[r.kode]
                pagu[r.kode] = sums[r.kode]
                changes.append(
                    {
                        "kode": r.kode,
                        "field": "pagu",
                        "new_value": str(sums[r.kode]),
                        "note": f"Pagu {level} disesuaikan dengan jumlah {child.replace('_', ' ')} "
                        f"(semula Rp {old or 0:,})".replace(",", "."),
                    }
                )
    return changes


PLACEHOLDER_PAGU = 2_000_000
"""At or below this (rupiah) a sub kegiatan's pagu reads as a placeholder (the documents' ``pagu_placeholder``)."""


def placeholder_pagu(rows: list[Row]) -> list[str]:
    """The codes of the sub kegiatan with a placeholder pagu (Rp 1–2 juta for a real output: 14 Dokumen for
    Rp 1.000.000 in the PPU data); the kasubag asks for a note on each before initialing."""
    return [
        row.kode
        for row in rows
        if row.level == "sub_kegiatan" and row.pagu is not None and 0 < row.pagu <= PLACEHOLDER_PAGU
    ]
