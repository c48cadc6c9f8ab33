"""The meetings service's own rules for SOP step 6 (*Rapat konsultasi bersama Sekretariat dan Bidang*).

Owns (pure, no I/O, no clock):
- the canonical JSON of a notulen and its SHA-256 (``MeetingHeld.notulen_sha256``);
- when a meeting may be scheduled (step 6 due, on the current Rancangan Awal, at a plausible time) and
  the ``RecordMeeting`` command built once both records exist;
- the service's own refusals (``MeetingNotFound``, ``MeetingAlreadyHeld``, ``MeetingBusy``).

The request shapes (meeting, *daftar hadir*, *notulen*) and their validation are in ``schemas``. The SOP
names the daftar hadir and the notulen as step 6's outputs and as records to keep; the shared decider
(``shared.sop.decide``) stays the authority on order, roles and version binding.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from uuid import UUID

from services.meetings.schemas import AttendanceIn, NotulenIn
from shared.sop import (
    DomainError,
    InvalidCommand,
    RecordMeeting,
    RenjaState,
    SopDefinition,
    ensure_current_version,
    ensure_due,
    refusal,
)

NOTULEN_FORMAT = "renja-notulen/1"
"""Bump when the canonical notulen layout changes, so old hashes stay explainable."""


class MeetingNotFound(DomainError):
    """The Renja has no meeting with this id (HTTP 404)."""

    code = "not_found"
    http_status = 404


class MeetingAlreadyHeld(DomainError):
    """The meeting's records are final: ``MeetingHeld`` was emitted for it (HTTP 409)."""

    code = "conflict"
    http_status = 409


class MeetingBusy(DomainError):
    """A PUT lost ``PUT_ATTEMPTS`` races with concurrent PUTs on the same meeting (HTTP 409)."""

    code = "conflict"
    http_status = 409


def canonical_notulen(meeting_id: UUID, draft_version: int, draft_sha256: str, notulen: NotulenIn) -> bytes:
    """The notulen's canonical bytes: UTF-8 JSON, keys sorted, no insignificant whitespace.

    Shape: ``{"format": "renja-notulen/1", "meeting_id", "draft_version", "draft_sha256", "points",
    "decisions", "requested_changes": [{"kode", "field", "new_value", "note"}]}`` — every field is also in
    the ``MeetingHeld`` event, so anyone can recompute the hash from the event alone. Order of points,
    decisions and changes is kept: it is the order the meeting agreed them.
    """
    document = {
        "format": NOTULEN_FORMAT,
        "meeting_id": str(meeting_id),
        "draft_version": draft_version,
        "draft_sha256": draft_sha256,
        "points": list(notulen.points),
        "decisions": list(notulen.decisions),
        "requested_changes": [c.model_dump(mode="json") for c in notulen.requested_changes],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def notulen_sha256(meeting_id: UUID, draft_version: int, draft_sha256: str, notulen: NotulenIn) -> str:
    """SHA-256 (lowercase hex) of ``canonical_notulen(...)``: what the Rancangan Akhir (step 7) binds."""
    return hashlib.sha256(canonical_notulen(meeting_id, draft_version, draft_sha256, notulen)).hexdigest()


def check_meeting_open(state: RenjaState, sop: SopDefinition, role: str, draft_version: int, draft_sha256: str) -> None:
    """Refuse work on the meeting step unless it is due for ``role`` on exactly this Rancangan Awal:
    the decider's own guards (``shared.sop.ensure_due``, ``ensure_current_version``), run while no
    ``RecordMeeting`` is decided yet. Design rule "versions bind": the meeting discusses one exact draft.

    Raises ``RenjaClosed``/``OutOfOrder``/``StaleVersion`` (409) or ``WrongRole`` (403).
    """
    step = ensure_due(state, sop.plan.number("meeting"), role, sop)
    ensure_current_version(state, step.number, draft_version, draft_sha256, sop, draft="awal")


SCHEDULE_HORIZON = timedelta(days=365)
"""How far ahead a meeting may be scheduled: the Renja is prepared for the next fiscal year, so a
consultation meeting more than a year away is a mistyped year, not a plan."""


def check_schedule_time(state: RenjaState, sop: SopDefinition, held_at: datetime, now: datetime) -> None:
    """Refuse a meeting time that cannot be right (``held_at``, ``now`` UTC).

    Raises ``InvalidCommand`` (HTTP 422) when ``held_at`` is before the Rancangan Awal it discusses was
    created (SOP step 6 needs step 5's output; ``state.awal_created_at``) or more than
    ``SCHEDULE_HORIZON`` after ``now``. The shared decider repeats the first check when the meeting is
    recorded as held, and also refuses a meeting held in the future.
    """
    label = sop.step(sop.plan.number("meeting")).label
    if state.awal_created_at is not None and held_at < state.awal_created_at:
        raise refusal(
            InvalidCommand,
            f"{label}: held_at {held_at.isoformat()} is before Rancangan Awal version {state.awal_version} was "
            f"created ({state.awal_created_at.isoformat()}); check the date.",
            state,
            sop,
        )
    if held_at > now + SCHEDULE_HORIZON:
        raise refusal(
            InvalidCommand,
            f"{label}: held_at {held_at.isoformat()} is more than a year ahead; check the year.",
            state,
            sop,
        )


def record_meeting_command(
    *,
    meeting_id: UUID,
    draft_version: int,
    draft_sha256: str,
    held_at: datetime,
    place: str,
    attendance: AttendanceIn,
    notulen: NotulenIn,
) -> RecordMeeting:
    """The step 6 command once both the daftar hadir and the notulen exist (``held_at`` UTC)."""
    return RecordMeeting(
        meeting_id=meeting_id,
        draft_version=draft_version,
        draft_sha256=draft_sha256,
        held_at=held_at,
        place=place,
        attendees=tuple(a.to_event() for a in attendance.attendees),
        points=notulen.points,
        decisions=notulen.decisions,
        requested_changes=notulen.requested_changes,
        notulen_sha256=notulen_sha256(meeting_id, draft_version, draft_sha256, notulen),
    )
