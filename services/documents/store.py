"""Persistence of the documents service: its tables (unit deliveries, drafts, consumed meetings and
signatures) and the content-addressed file store.

Invariants:
- a stored file is named by the SHA-256 of its bytes and written atomically (temp file in the same
  directory, fsync, rename), so a crash leaves either the whole file or nothing under that name, and
  writing the same bytes twice is harmless; a file written for a transaction that then rolls back is an
  unreferenced blob, never a half-stored delivery;
- every table change of a command commits in the command's transaction (``shared.process.execute``) or
  in the upload's own single transaction; the consumed facts are kept in the consumer's transaction
  (``services.documents.consumers``);
- rows are stored as the canonical JSON of ``services.documents.intake.Row`` (money in whole rupiah).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

import asyncpg

from services.documents.draft import DraftMeta
from services.documents.findings import Finding
from services.documents.intake import Row
from shared.events import FileRef, MeetingHeld, RequestedChange, Signed, UnitDelivery
from shared.sop import RenjaState

# ======================================================================================================
# Files
# ======================================================================================================


class FileStore:
    """Content-addressed files under ``root``: ``root/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the file with this SHA-256 (lowercase hex) lives; ``ValueError`` for a malformed hash."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256: {sha256!r}")
        return self.root / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (temp file + fsync + rename); returns its SHA-256. Idempotent for equal bytes."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if target.exists() and target.stat().st_size == len(data):
            return sha
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def read(self, sha256: str) -> bytes:
        """The stored bytes; ``FileNotFoundError`` if missing."""
        return self.path(sha256).read_bytes()


def rows_json(rows: Sequence[Row]) -> str:
    """Rows as canonical JSON text (sorted keys, no insignificant whitespace, UTF-8 kept)."""
    return json.dumps([r.model_dump(mode="json") for r in rows], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)  # fmt: skip


def rows_sha256(rows: Sequence[Row]) -> str:
    """SHA-256 of ``rows_json(rows)``: what ``UnitDelivery.rows_sha256`` names (format-independent)."""
    return hashlib.sha256(rows_json(rows).encode("utf-8")).hexdigest()


def parse_rows_json(text: str) -> list[Row]:
    return [Row.model_validate(r) for r in json.loads(text)]


# ======================================================================================================
# Step 4: unit deliveries
# ======================================================================================================


async def replace_unit_rows(
    conn: asyncpg.Connection,
    *,
    renja_id: UUID,
    unit: str,
    file: FileRef,
    rows: Sequence[Row],
    pagu_total: int,
    actor: str,
    now: datetime,
) -> None:
    """Store a unit's parsed rows, replacing its earlier delivery (one row per Renja and unit)."""
    await conn.execute(
        """
        INSERT INTO unit_rows (renja_id, unit, file_name, file_sha256, file_size, media_type, rows, row_count,
                               rows_sha256, pagu_total, delivered_by, delivered_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12)
        ON CONFLICT (renja_id, unit) DO UPDATE SET
            file_name = EXCLUDED.file_name, file_sha256 = EXCLUDED.file_sha256, file_size = EXCLUDED.file_size,
            media_type = EXCLUDED.media_type, rows = EXCLUDED.rows, row_count = EXCLUDED.row_count,
            rows_sha256 = EXCLUDED.rows_sha256, pagu_total = EXCLUDED.pagu_total,
            delivered_by = EXCLUDED.delivered_by, delivered_at = EXCLUDED.delivered_at
        """,
        renja_id, unit, file.name, file.sha256, file.size_bytes, file.media_type, rows_json(rows), len(rows),
        rows_sha256(rows), pagu_total, actor, now,
    )  # fmt: skip


async def add_unit_file(
    conn: asyncpg.Connection, *, renja_id: UUID, unit: str, file: FileRef, actor: str, now: datetime
) -> bool:
    """Record an attached file of a unit; False if the same name and content were already recorded."""
    done = await conn.fetchval(
        "INSERT INTO unit_files (renja_id, unit, name, sha256, size_bytes, media_type, uploaded_by, uploaded_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING 1",
        renja_id, unit, file.name, file.sha256, file.size_bytes, file.media_type, actor, now,
    )  # fmt: skip
    return done is not None


async def unit_rows(conn: asyncpg.Connection, renja_id: UUID) -> dict[str, asyncpg.Record]:
    """Each unit's rows delivery (without the rows themselves), by unit code."""
    records = await conn.fetch(
        "SELECT unit, file_name, file_sha256, file_size, media_type, row_count, rows_sha256, pagu_total,"
        " delivered_by, delivered_at FROM unit_rows WHERE renja_id = $1",
        renja_id,
    )
    return {r["unit"]: r for r in records}


async def unit_files(conn: asyncpg.Connection, renja_id: UUID) -> dict[str, list[asyncpg.Record]]:
    """Each unit's attached files in upload order, by unit code."""
    records = await conn.fetch("SELECT * FROM unit_files WHERE renja_id = $1 ORDER BY uploaded_at, name", renja_id)
    out: dict[str, list[asyncpg.Record]] = {}
    for r in records:
        out.setdefault(r["unit"], []).append(r)
    return out


async def unit_file(conn: asyncpg.Connection, renja_id: UUID, unit: str, sha256: str) -> asyncpg.Record | None:
    """Name and media type of a file the unit delivered (attachment or rows file) with this SHA-256."""
    return await conn.fetchrow(
        "SELECT name, media_type FROM unit_files WHERE renja_id = $1 AND unit = $2 AND sha256 = $3"
        " UNION ALL SELECT file_name, media_type FROM unit_rows"
        " WHERE renja_id = $1 AND unit = $2 AND file_sha256 = $3 LIMIT 1",
        renja_id,
        unit,
        sha256,
    )


async def deliveries(conn: asyncpg.Connection, renja_id: UUID, unit_order: Sequence[str]) -> list[UnitDelivery]:
    """What each unit delivered, as the published ``UnitDelivery`` (rows file and attached files as
    ``FileRef``s), in the SOP file's unit order; units with neither rows nor files are left out."""
    rows = await unit_rows(conn, renja_id)
    files = await unit_files(conn, renja_id)
    empty = rows_sha256([])
    out: list[UnitDelivery] = []
    for unit in unit_order:
        r = rows.get(unit)
        refs: list[FileRef] = []
        if r is not None:
            refs.append(FileRef(name=r["file_name"], sha256=r["file_sha256"], size_bytes=r["file_size"],
                                media_type=r["media_type"]))  # fmt: skip
        refs += [
            FileRef(name=f["name"], sha256=f["sha256"], size_bytes=f["size_bytes"], media_type=f["media_type"])
            for f in files.get(unit, [])
        ]
        if not refs:
            continue
        out.append(
            UnitDelivery(
                unit=unit,
                rows=r["row_count"] if r else 0,
                rows_sha256=r["rows_sha256"] if r else empty,
                pagu_total=r["pagu_total"] if r else 0,
                files=tuple(refs),
            )
        )
    return out


async def collected_rows(conn: asyncpg.Connection, renja_id: UUID, unit_order: Sequence[str]) -> list[Row]:
    """All units' rows, in the SOP file's unit order (step 5 builds the Rancangan Awal from them)."""
    records = await conn.fetch("SELECT unit, rows::text AS rows FROM unit_rows WHERE renja_id = $1", renja_id)
    by_unit = {r["unit"]: parse_rows_json(r["rows"]) for r in records}
    return [row for unit in unit_order for row in by_unit.get(unit, [])]


# ======================================================================================================
# Steps 5 and 7: drafts
# ======================================================================================================


@dataclass(frozen=True, slots=True)
class DraftRecord:
    """One draft version as stored: content, findings and rendered files (hashes and sizes in bytes)."""

    renja_id: UUID
    meta: DraftMeta
    content_sha256: str
    rows: tuple[Row, ...]
    pagu_total: int
    findings: tuple[Finding, ...]
    pdf_sha256: str
    pdf_size: int
    docx_sha256: str
    docx_size: int
    created_by: str
    created_at: datetime
    based_on_version: int | None = None
    meeting_id: UUID | None = None
    notulen_sha256: str | None = None
    applied_changes: tuple[RequestedChange, ...] = ()
    note: str = ""

    @property
    def blocking(self) -> int:
        return sum(f.severity == "blocking" for f in self.findings)

    @property
    def warning(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)


async def insert_draft(conn: asyncpg.Connection, d: DraftRecord) -> None:
    """Insert a new draft version (the primary key refuses a second draft with the same version)."""
    await conn.execute(
        """
        INSERT INTO drafts (renja_id, version, stage, content_sha256, based_on_version, meeting_id, notulen_sha256,
                            meta, rows, row_count, pagu_total, findings, blocking, warning, applied_changes, note,
                            pdf_sha256, pdf_size, docx_sha256, docx_size, created_by, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11, $12::jsonb, $13, $14, $15::jsonb, $16,
                $17, $18, $19, $20, $21, $22)
        """,
        d.renja_id, d.meta.version, d.meta.stage, d.content_sha256, d.based_on_version, d.meeting_id,
        d.notulen_sha256, d.meta.model_dump_json(), rows_json(d.rows), len(d.rows), d.pagu_total,
        json.dumps([f.model_dump(mode="json") for f in d.findings], ensure_ascii=False), d.blocking, d.warning,
        json.dumps([c.model_dump(mode="json") for c in d.applied_changes], ensure_ascii=False), d.note,
        d.pdf_sha256, d.pdf_size, d.docx_sha256, d.docx_size, d.created_by, d.created_at,
    )  # fmt: skip


def _draft_from(r: asyncpg.Record) -> DraftRecord:
    return DraftRecord(
        renja_id=r["renja_id"],
        meta=DraftMeta.model_validate_json(r["meta"]),
        content_sha256=r["content_sha256"],
        rows=tuple(parse_rows_json(r["rows"])),
        pagu_total=r["pagu_total"],
        findings=tuple(Finding.model_validate(f) for f in json.loads(r["findings"])),
        pdf_sha256=r["pdf_sha256"],
        pdf_size=r["pdf_size"],
        docx_sha256=r["docx_sha256"],
        docx_size=r["docx_size"],
        created_by=r["created_by"],
        created_at=r["created_at"],
        based_on_version=r["based_on_version"],
        meeting_id=r["meeting_id"],
        notulen_sha256=r["notulen_sha256"],
        applied_changes=tuple(RequestedChange.model_validate(c) for c in json.loads(r["applied_changes"])),
        note=r["note"],
    )


_DRAFT_COLUMNS = (
    "renja_id, version, content_sha256, based_on_version, meeting_id, notulen_sha256, meta::text AS meta,"
    " rows::text AS rows, pagu_total, findings::text AS findings, applied_changes::text AS applied_changes, note,"
    " pdf_sha256, pdf_size, docx_sha256, docx_size, created_by, created_at"
)


async def get_draft(conn: asyncpg.Connection, renja_id: UUID, version: int) -> DraftRecord | None:
    """Draft ``version`` of the Renja, or None."""
    r = await conn.fetchrow(f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE renja_id = $1 AND version = $2",
                            renja_id, version)  # fmt: skip
    return None if r is None else _draft_from(r)


async def latest_draft(conn: asyncpg.Connection, renja_id: UUID) -> DraftRecord | None:
    """The highest draft version of the Renja, or None before step 5."""
    r = await conn.fetchrow(
        f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE renja_id = $1 ORDER BY version DESC LIMIT 1", renja_id
    )
    return None if r is None else _draft_from(r)


async def list_drafts(conn: asyncpg.Connection, renja_id: UUID) -> list[asyncpg.Record]:
    """Summary rows of every draft version, oldest first (no rows/findings payload)."""
    return list(
        await conn.fetch(
            "SELECT version, stage, content_sha256, based_on_version, meeting_id, notulen_sha256, row_count,"
            " pagu_total, blocking, warning, pdf_sha256, docx_sha256, note, created_by, created_at"
            " FROM drafts WHERE renja_id = $1 ORDER BY version",
            renja_id,
        )
    )


# ======================================================================================================
# Consumed facts: MeetingHeld (step 6) and Signed (step 10)
# ======================================================================================================


async def save_meeting(conn: asyncpg.Connection, event: MeetingHeld, state: RenjaState) -> None:
    """Keep a consumed ``MeetingHeld``: its requested changes (what step 7 applies) and what the daftar
    hadir and notulen print. Idempotent by (Renja, meeting)."""
    await conn.execute(
        "INSERT INTO meetings (renja_id, meeting_id, event, opd, fiscal_year, requested_changes, notulen_sha256)"
        " VALUES ($1, $2, $3::jsonb, $4, $5, $6::jsonb, $7) ON CONFLICT (renja_id, meeting_id) DO NOTHING",
        event.renja_id, event.meeting_id, event.model_dump_json(), state.opd or "-", state.fiscal_year or 2000,
        json.dumps([c.model_dump(mode="json") for c in event.requested_changes], ensure_ascii=False),
        event.notulen_sha256,
    )  # fmt: skip


async def get_meeting(conn: asyncpg.Connection, renja_id: UUID, meeting_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT meeting_id, event::text AS event, opd, fiscal_year, notulen_sha256, daftar_hadir_pdf, notulen_pdf"
        " FROM meetings WHERE renja_id = $1 AND meeting_id = $2",
        renja_id,
        meeting_id,
    )


def meeting_event(record: asyncpg.Record) -> MeetingHeld:
    return MeetingHeld.model_validate_json(record["event"])


_MEETING_PDF_COLUMNS = {"daftar_hadir": "daftar_hadir_pdf", "notulen": "notulen_pdf"}


async def set_meeting_pdf(conn: asyncpg.Connection, renja_id: UUID, meeting_id: UUID, kind: str, sha: str) -> str:
    """Record the rendered ``kind`` PDF (``daftar_hadir``/``notulen``) unless one was recorded meanwhile;
    returns the hash that is now recorded (the first renderer wins)."""
    column = _MEETING_PDF_COLUMNS[kind]
    stored: str = await conn.fetchval(
        f"UPDATE meetings SET {column} = COALESCE({column}, $3) WHERE renja_id = $1 AND meeting_id = $2"
        f" RETURNING {column}",
        renja_id,
        meeting_id,
        sha,
    )
    return stored


async def save_signature(conn: asyncpg.Connection, event: Signed) -> None:
    """Keep a consumed ``Signed`` (the latest signature of the Renja wins; its PDF is rendered lazily)."""
    await conn.execute(
        "INSERT INTO signatures (renja_id, version, event) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (renja_id) DO UPDATE SET version = EXCLUDED.version, event = EXCLUDED.event, pdf_sha256 = NULL",
        event.renja_id,
        event.version,
        event.model_dump_json(),
    )


async def get_signature(conn: asyncpg.Connection, renja_id: UUID) -> tuple[Signed, str | None] | None:
    """The consumed signature of the Renja and its rendered PDF's hash (None until first rendered)."""
    r = await conn.fetchrow("SELECT event::text AS event, pdf_sha256 FROM signatures WHERE renja_id = $1", renja_id)
    if r is None:
        return None
    return Signed.model_validate_json(r["event"]), r["pdf_sha256"]


async def set_signature_pdf(conn: asyncpg.Connection, renja_id: UUID, sha: str) -> str:
    """Record the signed PDF's hash unless one was recorded meanwhile; returns the recorded hash."""
    stored: str = await conn.fetchval(
        "UPDATE signatures SET pdf_sha256 = COALESCE(pdf_sha256, $2) WHERE renja_id = $1 RETURNING pdf_sha256",
        renja_id,
        sha,
    )
    return stored
