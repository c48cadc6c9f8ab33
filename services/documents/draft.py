"""SOP steps 5 and 7: a Renja draft's canonical content and hash, the notulen's changes, and draft diffs.

The canonical content is what the content hash (``DraftCreated.content_sha256``), the paraf (steps 8–9)
and the signature (step 10) bind: change one rupiah or one character and the hash changes. It is a pure
function of the rows and the draft metadata, independent of row order and of formatting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.documents.intake import Row
from shared.events.models import RequestedChange
from shared.requested_changes import EDITABLE_FIELDS, MONEY_FIELDS, parse_rupiah
from shared.requested_changes import resolve_field as resolve_editable

CANONICAL_FORMAT = "renja-draft/1"
"""Bump when the canonical layout changes, so old hashes stay explainable."""


class DraftMeta(BaseModel):
    """What a draft is, besides its rows: the agency, the plan year, the stage and version, and the
    reference data versions the rows were checked against (nomenclature regulation, Renstra document)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opd: str = Field(min_length=1, description="the Perangkat Daerah preparing the Renja")
    fiscal_year: int = Field(ge=2000, le=2100, description="the plan year (n)")
    stage: Literal["awal", "akhir"]
    version: int = Field(ge=1)
    region: str = ""
    nomenclature: str = ""
    renstra: str = ""
    # The OPD identity the cycle was opened with (registry snapshot); absent when empty, so the canonical
    # content, and every hash, of a draft made before the registry is unchanged.
    signing_place: str = Field(default="", exclude_if=lambda v: not v)
    head_title: str = Field(default="", exclude_if=lambda v: not v)
    letterhead: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)


class FieldChange(BaseModel):
    """One field of one row that differs between two drafts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kode: str
    field: str
    old: str | int | None
    new: str | int | None


class DraftDiff(BaseModel):
    """Rows added, removed and changed (field by field) from one draft to the next, each sorted by kode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    added: tuple[Row, ...] = ()
    removed: tuple[Row, ...] = ()
    changed: tuple[FieldChange, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


class ChangeError(ValueError):
    """A requested change (from the notulen) cannot be applied; the message says which and why."""


def _row_sort_key(row: Row) -> tuple[str, str]:
    # Duplicated codes (a finding, but possible in a draft) are ordered by their full content.
    return row.kode, json.dumps(row.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)


def canonical_content(rows: Sequence[Row], meta: DraftMeta) -> bytes:
    """The draft's canonical bytes: UTF-8 JSON, keys sorted, no insignificant whitespace, rows sorted by
    kode (ties by content), every row field present (empty text as ``""``, missing pagu as ``null``).

    Shape: ``{"format": "renja-draft/1", "meta": {...}, "rows": [{...}, ...]}``; money in whole rupiah.
    """
    document: dict[str, Any] = {
        "format": CANONICAL_FORMAT,
        "meta": meta.model_dump(mode="json"),
        "rows": [r.model_dump(mode="json") for r in sorted(rows, key=_row_sort_key)],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_sha256(rows: Sequence[Row], meta: DraftMeta) -> str:
    """SHA-256 (lowercase hex) of ``canonical_content(rows, meta)``: the hash paraf and signature bind."""
    return hashlib.sha256(canonical_content(rows, meta)).hexdigest()


def pagu_total(rows: Sequence[Row]) -> int:
    """Total pagu in rupiah: the sum of the program rows (the T-C.33 "Jumlah" line). Missing pagu counts 0;
    a mismatch with the kegiatan/sub kegiatan below is reported by the roll-up findings, not hidden here."""
    return sum(r.pagu or 0 for r in rows if r.level == "program")


def resolve_field(name: str) -> str:
    """Map a notulen's field name (``"Pagu Indikatif"``, ``"sumber dana"``, ``"pagu_n1"``) to a ``Row``
    field (one of ``shared.requested_changes.EDITABLE_FIELDS``, the list the meetings service validates
    against); raises ``ChangeError`` for ``kode``/``level``/``unit`` (identity, not content) or unknown names."""
    resolved = resolve_editable(name)
    if resolved is None:
        raise ChangeError(f"kolom '{name}' tidak dapat diubah lewat notulen (bisa: {', '.join(EDITABLE_FIELDS)})")
    return resolved


def apply_change(rows: Sequence[Row], change: RequestedChange) -> list[Row]:
    """Step 7: ``rows`` with one requested change applied (a new list; inputs are not mutated).

    ``new_value`` is text; for ``pagu``/``pagu_n1`` it is parsed as rupiah (``"Rp 1.500.000"``, empty =
    None). Raises ``ChangeError`` for an unknown kode, a kode that occurs more than once (ambiguous), a
    non-editable field, a bad amount or an empty nama.
    """
    positions = [i for i, r in enumerate(rows) if r.kode == change.kode]
    if not positions:
        raise ChangeError(f"kode '{change.kode}' tidak ada di rancangan")
    if len(positions) > 1:
        raise ChangeError(f"kode '{change.kode}' muncul {len(positions)} kali; perubahan ambigu")
    name = resolve_field(change.field)
    value: str | int | None
    if name in MONEY_FIELDS:
        try:
            value = parse_rupiah(change.new_value)
        except ValueError as exc:
            raise ChangeError(f"{change.kode} {change.field}: {exc}") from exc
    else:
        value = change.new_value.strip()
        if name == "nama" and not value:
            raise ChangeError(f"{change.kode}: nama tidak boleh kosong")
    (i,) = positions
    result = list(rows)
    result[i] = result[i].model_copy(update={name: value})
    return result


def apply_changes(rows: Sequence[Row], requested_changes: Sequence[RequestedChange]) -> list[Row]:
    """Step 7: apply the staff's changes, in order, all or nothing (``apply_change`` for each).

    Returns new rows in the input order. Raises ``ChangeError`` at the first change that cannot apply;
    nothing is applied then.
    """
    result = list(rows)
    for change in requested_changes:
        result = apply_change(result, change)
    return result


class SkippedChange(BaseModel):
    """A notulen change that could not be applied to the draft, and why (Indonesian, for the staff)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    change: RequestedChange
    reason: str


def apply_notulen_changes(
    rows: Sequence[Row], requested_changes: Sequence[RequestedChange]
) -> tuple[list[Row], list[RequestedChange], list[SkippedChange]]:
    """Step 7: apply the notulen's changes one by one, skipping each that does not apply to these rows.

    Returns (rows, applied changes, skipped changes with the reason), all in notulen order. Why lenient:
    the notulen is a fact already on the log (``MeetingHeld``); a change in it that names a kode missing
    from the draft, say, cannot be corrected any more, and refusing the whole Rancangan Akhir for it would
    block the Renja at step 7 forever. The skipped ones are reported (response, note, warning findings) so
    the staff and the reviewers (steps 8-10) see what the meeting asked and the draft does not hold.
    """
    result = list(rows)
    applied: list[RequestedChange] = []
    skipped: list[SkippedChange] = []
    for change in requested_changes:
        try:
            result = apply_change(result, change)
        except ChangeError as exc:
            skipped.append(SkippedChange(change=change, reason=str(exc)))
        else:
            applied.append(change)
    return result, applied, skipped


_COMPARED = ("nama", "indikator", "target", "satuan", "pagu", "sumber_dana", "lokasi", "catatan", "target_n1",
             "pagu_n1", "unit", "level")  # fmt: skip


def _keyed(rows: Sequence[Row]) -> dict[tuple[str, int], Row]:
    """Rows keyed by (kode, occurrence): a duplicated code still diffs occurrence by occurrence."""
    seen: dict[str, int] = {}
    keyed: dict[tuple[str, int], Row] = {}
    for row in sorted(rows, key=_row_sort_key):
        n = seen.get(row.kode, 0)
        seen[row.kode] = n + 1
        keyed[(row.kode, n)] = row
    return keyed


def diff(old_rows: Sequence[Row], new_rows: Sequence[Row]) -> DraftDiff:
    """What changed from ``old_rows`` to ``new_rows``, matched by kode: rows added, rows removed, and for
    rows in both every differing field (``level`` and ``unit`` included) with old and new values."""
    old, new = _keyed(old_rows), _keyed(new_rows)
    changed: list[FieldChange] = []
    for key in sorted(old.keys() & new.keys()):
        before, after = old[key], new[key]
        for name in _COMPARED:
            a, b = getattr(before, name), getattr(after, name)
            if a != b:
                changed.append(FieldChange(kode=key[0], field=name, old=a, new=b))
    return DraftDiff(
        added=tuple(new[k] for k in sorted(new.keys() - old.keys())),
        removed=tuple(old[k] for k in sorted(old.keys() - new.keys())),
        changed=tuple(changed),
    )
