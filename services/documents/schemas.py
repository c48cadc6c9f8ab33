"""Request and response models of the documents service (``XCreate`` in, ``XPublic`` out).

Money is in whole rupiah, hashes are SHA-256 (lowercase hex), sizes are bytes. The ``of`` constructors
turn stored records (``services.documents.store``) into answers; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from services.documents.draft import DraftDiff, DraftMeta, SkippedChange
from services.documents.intake import Row
from services.documents.store import DraftRecord
from shared.events import Event, FileRef, RequestedChange
from shared.sop import SopStep, Unit


class FilePublic(BaseModel):
    """A stored file: name as uploaded (NFC, no directories), SHA-256, size in bytes."""

    name: str
    sha256: str
    size_bytes: int
    media_type: str

    @classmethod
    def of(cls, ref: FileRef) -> FilePublic:
        return cls(name=ref.name, sha256=ref.sha256, size_bytes=ref.size_bytes, media_type=ref.media_type)


class UnitRowsPublic(BaseModel):
    """A unit's rows delivery (step 4): the file they came from, row count and pagu total (rupiah)."""

    renja_id: UUID
    unit: str
    unit_name: str
    file: FilePublic
    rows: int
    rows_sha256: str
    pagu_total: int
    levels: dict[str, int]


class UnitFilesPublic(BaseModel):
    renja_id: UUID
    unit: str
    unit_name: str
    files: list[FilePublic]


class UnitPublic(BaseModel):
    code: str
    name: str
    delivered: bool
    rows_file: FilePublic | None = None
    rows: int = 0
    rows_sha256: str | None = None
    pagu_total: int = 0
    delivered_at: datetime | None = None
    delivered_by: str | None = None
    files: list[FilePublic] = []

    @classmethod
    def of(cls, unit: Unit, rows: asyncpg.Record | None, files: Sequence[asyncpg.Record]) -> UnitPublic:
        """A configured unit with its rows delivery (``store.unit_rows``) and files (``store.unit_files``)."""
        attached = [
            FilePublic(name=f["name"], sha256=f["sha256"], size_bytes=f["size_bytes"], media_type=f["media_type"])
            for f in files
        ]
        r = rows
        return cls(
            code=unit.code,
            name=unit.name,
            delivered=r is not None or bool(attached),
            rows_file=None
            if r is None
            else FilePublic(
                name=r["file_name"], sha256=r["file_sha256"], size_bytes=r["file_size"], media_type=r["media_type"]
            ),
            rows=r["row_count"] if r else 0,
            rows_sha256=r["rows_sha256"] if r else None,
            pagu_total=r["pagu_total"] if r else 0,
            delivered_at=r["delivered_at"] if r else None,
            delivered_by=r["delivered_by"] if r else None,
            files=attached,
        )


class UnitsPublic(BaseModel):
    """Step 4 progress: which configured units delivered what, and which are still missing."""

    renja_id: UUID
    collection_complete: bool
    missing: list[str]
    units: list[UnitPublic]


class RowErrorPublic(BaseModel):
    file: str
    row: int | None
    column: str | None
    column_letter: str | None = None
    message: str


class IntakeErrorPublic(BaseModel):
    error: Literal["invalid_rows"] = "invalid_rows"
    message: str
    details: list[RowErrorPublic]


class AwalCreate(BaseModel):
    """Step 5 request: an optional note; the content is every unit's collected rows."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"note": "Rancangan Awal disusun dari data lima unit yang terkumpul per 10 Maret 2025."}]
        }
    )

    note: str = ""


class AkhirCreate(BaseModel):
    """Step 7 request: corrections beyond the meeting's notulen (after a return: the reviewers' notes)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "changes": [
                        {
                            "kode": "5.01.01.2.01.0001",
                            "field": "catatan",
                            "new_value": "Pagu nol: kegiatan didanai dari DAK tahun berjalan.",
                            "note": "menindaklanjuti pengembalian oleh Kasubag PP",
                        }
                    ],
                    "note": "Rancangan Akhir versi perbaikan setelah dikembalikan pada langkah 8.",
                },
                {"changes": [], "note": ""},
            ]
        }
    )

    changes: list[RequestedChange] = Field(
        default_factory=list,
        examples=[[{"kode": "5.01.01", "field": "pagu", "new_value": "8.646.986.715", "note": "ikut koreksi"}]],
    )
    note: str = ""


class DraftSummaryPublic(BaseModel):
    """One draft version: money in rupiah; findings counted by severity."""

    version: int
    stage: Literal["awal", "akhir"]
    content_sha256: str
    based_on_version: int | None
    meeting_id: UUID | None
    notulen_sha256: str | None
    rows: int
    pagu_total: int
    blocking_findings: int
    warning_findings: int
    pdf_sha256: str
    docx_sha256: str
    note: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, r: asyncpg.Record) -> DraftSummaryPublic:
        """A summary row of ``store.list_drafts``."""
        return cls(
            version=r["version"], stage=r["stage"], content_sha256=r["content_sha256"],
            based_on_version=r["based_on_version"], meeting_id=r["meeting_id"],
            notulen_sha256=r["notulen_sha256"], rows=r["row_count"], pagu_total=r["pagu_total"],
            blocking_findings=r["blocking"], warning_findings=r["warning"], pdf_sha256=r["pdf_sha256"],
            docx_sha256=r["docx_sha256"], note=r["note"], created_by=r["created_by"],
            created_at=r["created_at"],
        )  # fmt: skip


class DraftPublic(DraftSummaryPublic):
    meta: DraftMeta
    applied_changes: list[RequestedChange]
    content: list[Row]

    @classmethod
    def of_record(cls, r: DraftRecord) -> DraftPublic:
        return cls(
            **_draft_fields(r), created_by=r.created_by, created_at=r.created_at, meta=r.meta,
            applied_changes=list(r.applied_changes), content=list(r.rows),
        )  # fmt: skip


class DraftCreatedPublic(BaseModel):
    renja_id: UUID
    version: int
    stage: Literal["awal", "akhir"]
    content_sha256: str
    based_on_version: int | None
    meeting_id: UUID | None
    notulen_sha256: str | None
    rows: int
    pagu_total: int
    blocking_findings: int
    warning_findings: int
    pdf_sha256: str
    docx_sha256: str
    applied_changes: list[RequestedChange]
    skipped_changes: list[SkippedChange] = Field(
        default_factory=list,
        description="notulen changes that do not apply to the draft (unknown kode...), each with the reason; "
        "also listed in the note and as `notulen_change_not_applied` warning findings",
    )
    note: str = ""
    events: list[dict[str, str]]
    next_step: dict[str, Any] | None

    @classmethod
    def of(
        cls, record: DraftRecord, events: Sequence[Event], step: SopStep | None, skipped: Sequence[SkippedChange]
    ) -> DraftCreatedPublic:
        """The answer of steps 5 and 7: the new draft, the events appended and the step now due."""
        return cls(
            **_draft_fields(record),
            renja_id=record.renja_id,
            applied_changes=list(record.applied_changes),
            skipped_changes=list(skipped),
            events=[{"event_id": str(e.event_id), "type": e.event_type} for e in events],
            next_step=None if step is None else {"number": step.number, "role": step.role},
        )


class DiffPublic(BaseModel):
    """Rows added/removed and fields changed from draft ``from_version`` to ``to_version``."""

    renja_id: UUID
    from_version: int
    to_version: int
    diff: DraftDiff


def _draft_fields(r: DraftRecord) -> dict[str, Any]:
    """What every answer about a stored draft says of it (hashes, rows, pagu total, findings counts)."""
    return {
        "version": r.meta.version, "stage": r.meta.stage, "content_sha256": r.content_sha256,
        "based_on_version": r.based_on_version, "meeting_id": r.meeting_id, "notulen_sha256": r.notulen_sha256,
        "rows": len(r.rows), "pagu_total": r.pagu_total, "blocking_findings": r.blocking,
        "warning_findings": r.warning, "pdf_sha256": r.pdf_sha256, "docx_sha256": r.docx_sha256, "note": r.note,
    }  # fmt: skip
