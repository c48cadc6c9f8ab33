"""The meetings table (the service's own records of step 6): SQL in one place.

Invariants:
- a meeting row is written only inside a command transaction (``shared.command.CommandUnit``), together with
  the process-state update and, when it completes the pair, the ``MeetingHeld`` event and outbox row;
- ``rev`` counts the row's changes: every update names the ``rev`` it read, so two concurrent PUTs
  cannot both win (the loser gets ``MeetingChanged`` and decides again on the fresh row), and a held
  meeting is never changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict

from services.meetings.schemas import AttendanceIn, NotulenIn


class MeetingChanged(Exception):
    """The row moved since it was read (a concurrent PUT, or the meeting was held meanwhile)."""


class MeetingRecord(BaseModel):
    """One stored meeting, as read from the table (times UTC)."""

    model_config = ConfigDict(frozen=True)

    meeting_id: UUID
    renja_id: UUID
    draft_version: int
    draft_sha256: str
    held_at: datetime
    place: str
    agenda: str
    scheduled_by: str
    scheduled_at: datetime
    attendance: AttendanceIn | None = None
    attendance_by: str | None = None
    attendance_at: datetime | None = None
    notulen: NotulenIn | None = None
    notulen_sha256: str | None = None
    notulen_by: str | None = None
    notulen_at: datetime | None = None
    rev: int = 0
    held_event_id: UUID | None = None
    held_recorded_at: datetime | None = None

    @property
    def is_held(self) -> bool:
        return self.held_event_id is not None


_SELECT = (
    "SELECT meeting_id, renja_id, draft_version, draft_sha256, held_at, place, agenda, scheduled_by,"
    " scheduled_at, attendance::text AS attendance, attendance_by, attendance_at, notulen::text AS notulen,"
    " notulen_sha256, notulen_by, notulen_at, rev, held_event_id, held_recorded_at FROM meetings"
)


def _record(row: Any) -> MeetingRecord:
    data = dict(row)
    data["attendance"] = AttendanceIn.model_validate_json(data["attendance"]) if data["attendance"] else None
    data["notulen"] = NotulenIn.model_validate_json(data["notulen"]) if data["notulen"] else None
    return MeetingRecord.model_validate(data)


async def get_meeting(conn: asyncpg.Connection, renja_id: UUID, meeting_id: UUID) -> MeetingRecord | None:
    """The meeting ``meeting_id`` of Renja ``renja_id``, or None."""
    row = await conn.fetchrow(_SELECT + " WHERE meeting_id = $1 AND renja_id = $2", meeting_id, renja_id)
    return None if row is None else _record(row)


async def list_meetings(conn: asyncpg.Connection, renja_id: UUID) -> list[MeetingRecord]:
    """Every meeting of a Renja, oldest scheduled first."""
    rows = await conn.fetch(_SELECT + " WHERE renja_id = $1 ORDER BY scheduled_at, meeting_id", renja_id)
    return [_record(r) for r in rows]


async def insert_meeting(conn: asyncpg.Connection, record: MeetingRecord) -> None:
    """Store a newly scheduled meeting (no attendance or notulen yet)."""
    await conn.execute(
        "INSERT INTO meetings (meeting_id, renja_id, draft_version, draft_sha256, held_at, place, agenda,"
        " scheduled_by, scheduled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        record.meeting_id,
        record.renja_id,
        record.draft_version,
        record.draft_sha256,
        record.held_at,
        record.place,
        record.agenda,
        record.scheduled_by,
        record.scheduled_at,
    )


async def save_records(conn: asyncpg.Connection, updated: MeetingRecord, *, read_rev: int) -> None:
    """Write the attendance, notulen and held marks of ``updated`` if the row is still at ``read_rev`` and
    not held. Raises ``MeetingChanged`` otherwise (the caller's transaction then rolls back)."""
    done = await conn.fetchval(
        "UPDATE meetings SET attendance = $3::jsonb, attendance_by = $4, attendance_at = $5,"
        " notulen = $6::jsonb, notulen_sha256 = $7, notulen_by = $8, notulen_at = $9,"
        " held_event_id = $10, held_recorded_at = $11, rev = rev + 1"
        " WHERE meeting_id = $1 AND rev = $2 AND held_event_id IS NULL RETURNING 1",
        updated.meeting_id,
        read_rev,
        updated.attendance.model_dump_json() if updated.attendance else None,
        updated.attendance_by,
        updated.attendance_at,
        updated.notulen.model_dump_json() if updated.notulen else None,
        updated.notulen_sha256,
        updated.notulen_by,
        updated.notulen_at,
        updated.held_event_id,
        updated.held_recorded_at,
    )
    if done is None:
        raise MeetingChanged(str(updated.meeting_id))
