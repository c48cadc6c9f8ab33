"""SOP step 4 intake: the units' Renja rows, parsed from the CSV/XLSX bytes they deliver.

This module owns the ``Row`` model (one program, kegiatan or sub kegiatan line of a Renja), the
tolerant readers for what units and SIPD exports actually send (column-name variants, Indonesian and
English number formats, BOM, ``;`` or ``,`` delimiters, merged XLSX headers), the file-level checks of
an attached file, and the demo split of one Renja among the configured units.

Everything here is pure: bytes in, models out. Errors name the file, the row as the user sees it in a
spreadsheet (1-based, header included) and the column as written in the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import mimetypes
import re
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.events.models import FileRef
from shared.requested_changes import PAGU_MAX, parse_rupiah, thousands
from shared.requested_changes import normalise_label as normalise_header

__all__ = [
    "PAGU_MAX",
    "FieldName",
    "FileCheck",
    "IntakeError",
    "Level",
    "Row",
    "RowError",
    "check_upload",
    "level_of",
    "normalise_file_name",
    "normalise_header",
    "parse_csv",
    "parse_rows",
    "parse_rupiah",
    "parse_xlsx",
    "program_of",
    "split_rows_by_program",
]

Level = Literal["program", "kegiatan", "sub_kegiatan"]
FieldName = Literal[
    "kode",
    "level",
    "nama",
    "indikator",
    "target",
    "satuan",
    "pagu",
    "sumber_dana",
    "lokasi",
    "catatan",
    "target_n1",
    "pagu_n1",
]

_SEGMENTS_TO_LEVEL: dict[int, Level] = {3: "program", 5: "kegiatan", 6: "sub_kegiatan"}
_HEADER_SCAN_ROWS = 30


class Row(BaseModel):
    """One Renja line (Permendagri 86/2017 Tabel T-C.33 columns), as delivered by one unit.

    ``pagu`` and ``pagu_n1`` are whole rupiah (``None`` when the cell was empty); ``target`` and
    ``target_n1`` are kept as text because targets mix numbers and words ("14", "100", "Tersedia").
    ``level`` is derived from the number of code segments (3 program, 5 kegiatan, 6 sub kegiatan).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kode: str
    level: Level
    nama: str
    indikator: str = ""
    target: str = ""
    satuan: str = ""
    pagu: int | None = None
    sumber_dana: str = ""
    lokasi: str = ""
    catatan: str = ""
    target_n1: str = ""
    pagu_n1: int | None = None
    unit: str = ""


class RowError(BaseModel):
    """One problem in a delivered file: ``row`` is 1-based as shown by a spreadsheet (None = whole file);
    ``column`` is the header as written in the file (None = whole row), ``column_letter`` its A, B, ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    row: int | None
    column: str | None
    message: str
    column_letter: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"baris {self.row}")
        if self.column is not None:
            letter = f"{self.column_letter} " if self.column_letter else ""
            where.append(f"kolom {letter}({self.column})")
        return f"{', '.join(where)}: {self.message}"


class IntakeError(ValueError):
    """A delivered file could not be read into rows; ``errors`` lists every problem found (not just the first)."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors: tuple[RowError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "intake failed")


class FileCheck(BaseModel):
    """The result of ``check_upload``: the normalised name, size, SHA-256 and whether it is accepted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    size_bytes: int
    sha256: str
    media_type: str
    ok: bool
    problem: Literal["empty", "too_large"] | None = None
    message: str = ""

    def file_ref(self) -> FileRef:
        """The published ``FileRef`` for this file (only meaningful when ``ok``)."""
        return FileRef(name=self.name, sha256=self.sha256, size_bytes=self.size_bytes, media_type=self.media_type)


# --- file-level checks -------------------------------------------------------------------------------

_XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def normalise_file_name(name: str) -> str:
    """Return ``name`` as NFC, without any directory part or control characters.

    Any script is accepted ("Usulan Bidang Ekonomi – 2025.xlsx", "計画.csv"); only what could escape a
    directory or corrupt a header is removed. An empty result becomes ``"berkas"``.
    """
    text = unicodedata.normalize("NFC", name)
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    if text.strip(".") == "":
        return "berkas"
    return text


def check_upload(name: str, data: bytes, max_bytes: int) -> FileCheck:
    """Check one attached file (step 4 *berkas*): refuse a 0-byte file and one over ``max_bytes`` bytes.

    Returns a ``FileCheck`` with ``ok`` False and a user-facing Indonesian ``message`` when refused; the
    SHA-256 (lowercase hex) is computed in every case so the refusal can be logged against the content.
    """
    clean = normalise_file_name(name)
    media_type = _XLSX_MEDIA if clean.lower().endswith(".xlsx") else mimetypes.guess_type(clean)[0]
    ok = FileCheck(
        name=clean,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        media_type=media_type or "application/octet-stream",
        ok=True,
    )
    if len(data) == 0:
        return ok.model_copy(
            update={"ok": False, "problem": "empty", "message": f"Berkas '{clean}' kosong (0 byte); unggah ulang."}
        )
    if len(data) > max_bytes:
        message = f"Berkas '{clean}' berukuran {len(data):,} byte, melebihi batas {max_bytes:,} byte."
        return ok.model_copy(update={"ok": False, "problem": "too_large", "message": message})
    return ok


# --- values ------------------------------------------------------------------------------------------
# Rupiah amounts are parsed by ``shared.requested_changes.parse_rupiah`` (bounded by ``PAGU_MAX``), the
# same parser the notulen's requested changes go through at steps 6 and 7.


def _text(value: object) -> str:
    """A cell as trimmed NFC text; XLSX numbers without a spurious ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.10g}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return unicodedata.normalize("NFC", str(value)).strip()


def level_of(kode: str) -> Level | None:
    """The level a code's segment count implies (3 program, 5 kegiatan, 6 sub kegiatan), else None."""
    return _SEGMENTS_TO_LEVEL.get(len(kode.split(".")))


# --- headers -----------------------------------------------------------------------------------------


_ALIASES: dict[FieldName, tuple[str, ...]] = {
    "kode": ("kode", "kode rekening", "kode rek", "kd", "kode program kegiatan sub kegiatan", "kode sub kegiatan"),
    "level": ("level", "jenis", "tingkat"),
    "nama": (
        "nama",
        "uraian",
        "nomenklatur",
        "program kegiatan sub kegiatan",
        "program kegiatan",
        "nama program kegiatan sub kegiatan",
        "uraian program kegiatan sub kegiatan",
    ),
    "indikator": ("indikator", "indikator kinerja", "tolok ukur", "tolak ukur"),
    "target": ("target", "target kinerja", "target capaian kinerja", "target sesudah", "target n"),
    "satuan": ("satuan",),
    "pagu": (
        "pagu",
        "pagu indikatif",
        "pagu rkpd",
        "pagu indikatif rp",
        "pagu rp",
        "kebutuhan dana",
        "kebutuhan dana pagu indikatif",
        "pagu n",
    ),
    "sumber_dana": ("sumber dana", "sumber"),
    "lokasi": ("lokasi",),
    "catatan": ("catatan", "catatan penting", "keterangan"),
    "target_n1": ("target n1", "target n 1", "target tahun n 1", "prakiraan maju target"),
    "pagu_n1": ("pagu n1", "pagu n 1", "pagu tahun n 1", "prakiraan maju pagu", "pagu indikatif n 1"),
}
_EXACT: dict[str, FieldName] = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
# Keyword fallback, in priority order: "indikator kinerja program" must become indikator, not nama.
_KEYWORDS: tuple[tuple[str, FieldName], ...] = (
    (r"\bkode\b", "kode"),
    (r"\bindikator\b|\btol[oa]k ukur\b", "indikator"),
    (r"\bsumber\b", "sumber_dana"),
    (r"\blokasi\b", "lokasi"),
    (r"\bcatatan\b|\bketerangan\b", "catatan"),
    (r"\bsatuan\b", "satuan"),
    (r"\bpagu\b|\bdana\b|\banggaran\b", "pagu"),
    (r"\btarget\b", "target"),
    (r"\bnama\b|\buraian\b|\bprogram\b|\bkegiatan\b|\bnomenklatur\b", "nama"),
)
_NEXT_YEAR = re.compile(r"\bn 1\b|\bn1\b|\bmaju\b|\bprakiraan\b")


def _field_for(labels: Sequence[str]) -> tuple[FieldName, int] | None:
    """Map a column's header labels (top to bottom, normalised) to a field and a match priority.

    The lowest label is tried first (the leaf of a merged group); a parent like "Prakiraan Maju n+1"
    turns ``target``/``pagu`` into ``target_n1``/``pagu_n1``. Priority 2 = exact alias, 1 = keyword.
    """
    context = " ".join(labels)
    candidates = [labels[-1], context, *reversed(labels[:-1])] if labels else []
    for label in candidates:
        found: tuple[FieldName, int] | None = None
        if label in _EXACT:
            found = (_EXACT[label], 2)
        else:
            for pattern, name in _KEYWORDS:
                if re.search(pattern, label):
                    found = (name, 1)
                    break
        if found is None:
            continue
        name, priority = found
        if name in ("target", "pagu") and _NEXT_YEAR.search(context):
            return ("target_n1" if name == "target" else "pagu_n1"), priority
        return found
    return None


# --- grids (CSV and XLSX reduce to the same shape) ---------------------------------------------------

Cell = object


@dataclass
class _Grid:
    """A sheet as rows of cells plus merged ranges ((min_row, min_col, max_row, max_col), 1-based)."""

    cells: list[list[Cell]]
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)

    def value(self, row: int, col: int) -> Cell:
        if row - 1 < len(self.cells) and col - 1 < len(self.cells[row - 1]):
            return self.cells[row - 1][col - 1]
        return None


def _column_letter(col: int) -> str:
    letters = ""
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _decode_csv(name: str, data: bytes) -> str:
    """The CSV's text: UTF-8 (with or without BOM), UTF-16 with a BOM, or else cp1252 (Excel's "CSV" on
    Windows). Raises ``IntakeError`` naming the encoding and the first bad byte's offset when the bytes
    are none of these (cp1252 leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D undefined)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return _decoded(name, data[3:], "utf-8", offset=3)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _decoded(name, data, "utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _decoded(name, data, "cp1252")


def _decoded(name: str, data: bytes, encoding: str, *, offset: int = 0) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        at = offset + exc.start
        tried = "UTF-8 maupun cp1252 (Windows-1252)" if encoding == "cp1252" else encoding.upper()
        message = (
            f"berkas bukan teks {tried}: byte 0x{data[exc.start]:02X} pada posisi byte {at} tidak dapat "
            "dibaca; simpan ulang sebagai CSV UTF-8"
        )
        raise IntakeError([RowError(file=name, row=None, column=None, message=message)]) from exc


def _csv_grid(name: str, data: bytes) -> _Grid:
    """The CSV as a grid; raises ``IntakeError`` naming the file and line where the csv module gives up
    (a cell over its field limit, ``csv.field_size_limit()`` characters; a stray NUL byte...)."""
    text = _decode_csv(name, data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        # Sniff by parsing the header line with each candidate: the delimiter that yields most fields wins.
        best = max(";,\t", key=lambda d: (len(next(csv.reader([first], delimiter=d), [])), d == ";"))
    except csv.Error as exc:
        raise IntakeError([RowError(file=name, row=1, column=None, message=_csv_problem(exc))]) from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=best)
    cells: list[list[Cell]] = []
    try:
        for record in reader:
            cells.append(list(record))
    except csv.Error as exc:
        # line_num counts physical lines read so far: the line on which the bad record ends.
        raise IntakeError([RowError(file=name, row=reader.line_num, column=None, message=_csv_problem(exc))]) from exc
    return _Grid(cells=cells)


def _csv_problem(exc: csv.Error) -> str:
    if "field limit" in str(exc):
        limit = thousands(csv.field_size_limit())
        return f"sebuah sel lebih panjang dari {limit} karakter; periksa tanda kutip yang tidak ditutup"
    return f"baris CSV tidak dapat dibaca ({exc})"


def _xlsx_grids(name: str, data: bytes) -> list[_Grid]:
    import openpyxl  # local import: only XLSX deliveries pay for it

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise IntakeError(
            [RowError(file=name, row=None, column=None, message=f"bukan berkas XLSX yang sah ({exc})")]
        ) from exc
    grids = []
    for sheet in workbook.worksheets:
        cells = [list(r) for r in sheet.iter_rows(values_only=True)]
        merges = [(m.min_row, m.min_col, m.max_row, m.max_col) for m in sheet.merged_cells.ranges]
        grids.append(_Grid(cells=cells, merges=merges))
    return grids


@dataclass
class _Column:
    index: int  # 1-based
    label: str  # as written in the file (merged parents joined with " / ")
    field: FieldName


def _find_header(grid: _Grid) -> tuple[int, int] | None:
    """(first header row, header depth) of the first row naming a ``kode`` column, 1-based."""
    for r in range(1, min(len(grid.cells), _HEADER_SCAN_ROWS) + 1):
        for c in range(1, len(grid.cells[r - 1]) + 1):
            found = _field_for([normalise_header(_text(grid.value(r, c)))])
            if found is not None and found[0] == "kode":
                starting_here = [m for m in grid.merges if m[0] == r]
                depth = 1 + max((m[2] - r for m in starting_here), default=0)
                if any(m[3] > m[1] for m in starting_here):
                    # a group label spanning columns ("Prakiraan Maju") has its leaves on the next row
                    depth = max(depth, 2)
                return r, depth
    return None


def _header_labels(grid: _Grid, top: int, depth: int) -> dict[int, list[str]]:
    """Raw header labels per column, with each merged range's value spread over the cells it covers."""
    filled: dict[tuple[int, int], str] = {}
    for min_row, min_col, max_row, max_col in grid.merges:
        text = _text(grid.value(min_row, min_col))
        for r in range(min_row, max_row + 1):
            for c in range(min_col, max_col + 1):
                filled[(r, c)] = text
    width = max((len(grid.cells[r - 1]) for r in range(top, top + depth) if r - 1 < len(grid.cells)), default=0)
    width = max([width, *(m[3] for m in grid.merges if m[0] <= top + depth - 1 and m[2] >= top)])
    labels: dict[int, list[str]] = {}
    for c in range(1, width + 1):
        seen: list[str] = []
        for r in range(top, top + depth):
            text = filled.get((r, c), _text(grid.value(r, c)))
            if text and text not in seen:
                seen.append(text)
        labels[c] = seen
    return labels


def _map_columns(file: str, grid: _Grid, top: int, depth: int) -> list[_Column]:
    raw = _header_labels(grid, top, depth)
    best: dict[FieldName, list[tuple[int, _Column]]] = {}
    for c, labels in raw.items():
        found = _field_for([normalise_header(t) for t in labels]) if labels else None
        if found is None:
            continue
        name, priority = found
        best.setdefault(name, []).append((priority, _Column(c, " / ".join(labels), name)))
    columns: list[_Column] = []
    errors: list[RowError] = []
    for name, options in best.items():
        top_priority = max(p for p, _ in options)
        winners = [col for p, col in options if p == top_priority]
        if len(winners) > 1:
            errors.append(
                RowError(
                    file=file,
                    row=top,
                    column=winners[1].label,
                    column_letter=_column_letter(winners[1].index),
                    message=f"kolom ganda untuk '{name}': "
                    + ", ".join(f"{_column_letter(w.index)} ({w.label})" for w in winners),
                )
            )
        columns.append(winners[0])
    present = {col.field for col in columns}
    for required in ("kode", "nama"):
        if required not in present:
            errors.append(RowError(file=file, row=top, column=None, message=f"kolom '{required}' tidak ditemukan"))
    if errors:
        raise IntakeError(errors)
    return sorted(columns, key=lambda col: col.index)


_NUMBERING = re.compile(r"\(?\d{1,2}\)?")
_TOTAL_LABELS = {"jumlah", "total", "jumlah total", "grand total"}
_CODE_CHARS = re.compile(r"[0-9]+(\.[0-9]+)*")
_TARGET_WITH_UNIT = re.compile(r"([0-9][0-9.,]*)\s+(\S.*)")


class _BadRow(Exception):
    """A grid line that is not a valid row: each problem is (column or None, Indonesian message)."""

    def __init__(self, *problems: tuple[_Column | None, str]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def _rows_from_grid(file: str, grid: _Grid, unit: str) -> list[Row]:
    header = _find_header(grid)
    if header is None:
        raise IntakeError(
            [RowError(file=file, row=None, column=None, message="baris judul dengan kolom 'kode' tidak ditemukan")]
        )
    top, depth = header
    columns = _map_columns(file, grid, top, depth)
    by_field = {col.field: col for col in columns}
    rows: list[Row] = []
    errors: list[RowError] = []
    totals: list[_DeclaredTotal] = []
    for r in range(top + depth, len(grid.cells) + 1):
        values = {col.field: grid.value(r, col.index) for col in columns}
        try:
            total = _declared_total(r, values, by_field)
            if total is not None:
                totals.append(total)
                continue
            row = _grid_row(values, by_field, unit)
        except _BadRow as bad:
            errors += [_row_error(file, r, col, message) for col, message in bad.problems]
            continue
        if row is not None:
            rows.append(row)
    if errors:
        raise IntakeError(errors)
    if not rows:
        raise IntakeError(
            [RowError(file=file, row=None, column=None, message="tidak ada baris program/kegiatan/sub kegiatan")]
        )
    rows = roll_up_missing_pagu(rows)
    errors = _total_errors(file, rows, by_field) + _declared_total_errors(file, rows, totals, by_field)
    if errors:
        raise IntakeError(errors)
    return rows


@dataclass(frozen=True)
class _DeclaredTotal:
    """A ``JUMLAH``/``TOTAL`` line of the file (T-C.33 puts it in the Kode column): its amounts, to check."""

    row: int
    money: dict[str, int | None]


def _declared_total(r: int, values: dict[FieldName, Cell], by_field: dict[FieldName, _Column]) -> _DeclaredTotal | None:
    """The line's declared totals when it is a total line (``JUMLAH`` in the Kode or the name column)."""
    kode = normalise_header(_text(values.get("kode")))
    nama = normalise_header(_text(values.get("nama")))
    if kode in _TOTAL_LABELS or (not kode and nama in _TOTAL_LABELS):
        return _DeclaredTotal(row=r, money=_money(values, by_field))
    return None


def _declared_total_errors(
    file: str, rows: Sequence[Row], totals: Sequence[_DeclaredTotal], by_field: dict[FieldName, _Column]
) -> list[RowError]:
    """A total line whose amount differs from the sum of the top-level rows (programs, else kegiatan, else
    sub kegiatan) is refused: the file contradicts itself, and the T-C.33 total must equal SIPD's."""
    errors: list[RowError] = []
    top_level = next(lvl for lvl in ("program", "kegiatan", "sub_kegiatan") if any(r.level == lvl for r in rows))
    for total in totals:
        for name, declared in total.money.items():
            if declared is None:
                continue
            computed = sum(getattr(r, name) or 0 for r in rows if r.level == top_level)
            if declared != computed:
                label = "pagu n+1" if name == "pagu_n1" else "pagu"
                errors.append(
                    _row_error(
                        file,
                        total.row,
                        by_field.get(name),  # type: ignore[call-overload]
                        f"baris JUMLAH {label} {thousands(declared)} ≠ jumlah baris {top_level.replace('_', ' ')} "
                        f"{thousands(computed)} (selisih {thousands(abs(declared - computed))}); perbaiki angka atau "
                        "baris yang hilang",
                    )
                )
    return errors


def roll_up_missing_pagu(rows: Sequence[Row]) -> list[Row]:
    """Fill an empty pagu / pagu n+1 of a kegiatan or program with the sum of its children when every child
    has one (SIPD exports often carry pagu on sub kegiatan rows only). A filled parent is left as it is: a
    difference there is the roll-up finding's to report, never silently overwritten."""
    by_code = {r.kode: r for r in rows}
    filled: dict[str, Row] = {}
    for level, child_level, width in (("kegiatan", "sub_kegiatan", 5), ("program", "kegiatan", 3)):
        children: dict[str, list[Row]] = {}
        for row in rows:
            if row.level == child_level:
                children.setdefault(".".join(row.kode.split(".")[:width]), []).append(filled.get(row.kode, row))
        for kode, kids in children.items():
            parent = by_code.get(kode)
            if parent is None or parent.level != level:
                continue
            update = {
                name: sum(getattr(k, name) for k in kids)
                for name in ("pagu", "pagu_n1")
                if getattr(parent, name) is None and all(getattr(k, name) is not None for k in kids)
            }
            if update:
                filled[kode] = parent.model_copy(update=update)
    return [filled.get(r.kode, r) for r in rows]


def _row_error(file: str, row: int | None, col: _Column | None, message: str) -> RowError:
    return RowError(
        file=file,
        row=row,
        column=col.label if col else None,
        column_letter=_column_letter(col.index) if col else None,
        message=message,
    )


def _grid_row(values: dict[FieldName, Cell], by_field: dict[FieldName, _Column], unit: str) -> Row | None:
    """The ``Row`` of one grid line; None for a line that holds no plan data (blank, column numbers,
    totals, urusan headings); ``_BadRow`` naming every problem otherwise."""
    texts = {name: _text(v) for name, v in values.items()}
    filled = [t for t in texts.values() if t]
    if not filled or all(_NUMBERING.fullmatch(t) for t in filled):
        return None  # blank line, or the "(1) (2) (3)" column-number line under T-C headers
    kode = re.sub(r"\s+", "", texts.get("kode", "")).rstrip(".")
    if not kode:
        if normalise_header(texts.get("nama", "")) in _TOTAL_LABELS:
            return None
        raise _BadRow((by_field["kode"], "kode kosong"))
    if not _CODE_CHARS.fullmatch(kode):
        raise _BadRow((by_field["kode"], f"kode '{kode}' hanya boleh berisi angka dan titik"))
    if len(kode.split(".")) in (1, 2):
        return None  # urusan / bidang urusan heading lines of SIPD exports carry no plan data
    level = level_of(kode)
    if level is None:
        raise _BadRow((by_field["kode"], f"kode '{kode}' bukan program (3 segmen), kegiatan (5) atau sub kegiatan (6)"))
    declared = normalise_header(texts.get("level", "")).replace(" ", "_")
    if declared and declared != level:
        raise _BadRow((by_field["level"], f"level '{texts['level']}' tidak sesuai kode '{kode}' ({level})"))
    nama = texts.get("nama", "")
    if not nama:
        raise _BadRow((by_field["nama"], f"nama kosong untuk kode '{kode}'"))
    money = _money(values, by_field)
    target, satuan = texts.get("target", ""), texts.get("satuan", "")
    split = _TARGET_WITH_UNIT.fullmatch(target)
    if "satuan" not in by_field and split:
        # SIPD's target_sesudah holds "14 Dokumen": split it when the file has no satuan column.
        target, satuan = split.group(1), split.group(2)
    target = _without_unit(target, satuan)
    target_n1 = _without_unit(texts.get("target_n1", ""), satuan)
    return Row(
        kode=kode,
        level=level,
        nama=nama,
        indikator=texts.get("indikator", ""),
        target=target,
        satuan=satuan,
        pagu=money.get("pagu"),
        sumber_dana=texts.get("sumber_dana", ""),
        lokasi=texts.get("lokasi", ""),
        catatan=texts.get("catatan", ""),
        target_n1=target_n1,
        pagu_n1=money.get("pagu_n1"),
        unit=unit,
    )


def _without_unit(target: str, satuan: str) -> str:
    """``"14 Dokumen"`` with satuan ``Dokumen`` → ``"14"`` (SIPD repeats the unit in target cells; printed
    beside the satuan it read "14 Dokumen Dokumen"). A different trailing text is kept for the checks."""
    split = _TARGET_WITH_UNIT.fullmatch(target)
    if split and satuan and normalise_header(split.group(2)) == normalise_header(satuan):
        return split.group(1)
    return target


def _money(values: dict[FieldName, Cell], by_field: dict[FieldName, _Column]) -> dict[str, int | None]:
    """The line's pagu and pagu n+1 in rupiah (present columns only); ``_BadRow`` for each unreadable one."""
    money: dict[str, int | None] = {}
    problems: list[tuple[_Column | None, str]] = []
    money_fields: tuple[FieldName, ...] = ("pagu", "pagu_n1")
    for name in money_fields:
        if name in values:
            try:
                money[name] = parse_rupiah(values[name])
            except ValueError as exc:
                problems.append((by_field[name], str(exc)))
    if problems:
        raise _BadRow(*problems)
    return money


def _total_errors(file: str, rows: Sequence[Row], by_field: dict[FieldName, _Column]) -> list[RowError]:
    """Totals are stored as bigint too (the unit's pagu total is the sum of its program rows): one error
    per money column and level whose sum exceeds ``PAGU_MAX`` rupiah."""
    errors: list[RowError] = []
    money_fields: tuple[FieldName, ...] = ("pagu", "pagu_n1")
    for name in money_fields:
        for level in ("program", "kegiatan", "sub_kegiatan"):
            total = sum(getattr(r, name) or 0 for r in rows if r.level == level)
            if total > PAGU_MAX:
                col = by_field.get(name)
                errors.append(
                    RowError(
                        file=file,
                        row=None,
                        column=col.label if col else name,
                        column_letter=_column_letter(col.index) if col else None,
                        message=f"jumlah {name} tingkat {level} melebihi batas {thousands(PAGU_MAX)} rupiah",
                    )
                )
    return errors


# --- public parsers ----------------------------------------------------------------------------------


def parse_csv(name: str, data: bytes, *, unit: str) -> list[Row]:
    """Parse CSV bytes (UTF-8 with or without BOM, or cp1252; ``;``, ``,`` or tab) into rows of ``unit``.

    Raises ``IntakeError`` listing every row error (file, spreadsheet row, column).
    """
    file = normalise_file_name(name)
    if not data:
        raise IntakeError([RowError(file=file, row=None, column=None, message="berkas kosong (0 byte)")])
    return _rows_from_grid(file, _csv_grid(file, data), unicodedata.normalize("NFC", unit))


def parse_xlsx(name: str, data: bytes, *, unit: str) -> list[Row]:
    """Parse XLSX bytes: the first sheet with a ``kode`` header; merged header cells map to every column
    they span (a "Prakiraan Maju" parent over "Target"/"Pagu" gives ``target_n1``/``pagu_n1``).

    Formula cells are read from their cached values. Raises ``IntakeError``.
    """
    file = normalise_file_name(name)
    if not data:
        raise IntakeError([RowError(file=file, row=None, column=None, message="berkas kosong (0 byte)")])
    grids = _xlsx_grids(file, data)
    for grid in grids:
        if _find_header(grid) is not None:
            return _rows_from_grid(file, grid, unicodedata.normalize("NFC", unit))
    raise IntakeError([RowError(file=file, row=None, column=None, message="tidak ada lembar dengan kolom 'kode'")])


def parse_rows(name: str, data: bytes, *, unit: str) -> list[Row]:
    """Parse a delivered file by content: XLSX (zip magic ``PK``) or else CSV. Raises ``IntakeError``."""
    if data.startswith(b"PK\x03\x04"):
        return parse_xlsx(name, data, unit=unit)
    return parse_csv(name, data, unit=unit)


# --- demo split --------------------------------------------------------------------------------------


def program_of(kode: str) -> str:
    """The program code (first three segments) a row belongs to."""
    return ".".join(kode.split(".")[:3])


def split_rows_by_program(rows: Sequence[Row], units: Sequence[str]) -> dict[str, list[Row]]:
    """Split one Renja among the configured units (step 4 demo: each unit delivers its programs).

    Rule (deterministic, order of ``rows`` irrelevant): programs are sorted by code; the generic
    penunjang program ``X.XX.01`` (secretariat business by nature) goes to ``units[0]`` (the
    Sekretariat by convention); the others are dealt round-robin over ``units[1:]`` (over all units if
    there is only one). A program's kegiatan and sub kegiatan go with it (by code prefix, even if the
    program row itself is absent). Each row's ``unit`` is set to its unit; rows inside a unit are sorted
    by code. Every unit is a key, possibly with an empty list. Raises ``ValueError`` for no units or
    duplicate unit names.
    """
    if not units:
        raise ValueError("at least one unit is needed")
    if len(set(units)) != len(units):
        raise ValueError("unit names must be unique")
    programs = sorted({program_of(r.kode) for r in rows})
    others = list(units[1:]) or [units[0]]
    owner: dict[str, str] = {}
    dealt = 0
    for program in programs:
        if program.split(".")[-1] == "01":
            owner[program] = units[0]
        else:
            owner[program] = others[dealt % len(others)]
            dealt += 1
    result: dict[str, list[Row]] = {u: [] for u in units}
    for row in sorted(rows, key=lambda r: r.kode):
        unit = owner[program_of(row.kode)]
        result[unit].append(row.model_copy(update={"unit": unit}))
    return result
