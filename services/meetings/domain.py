"""The meetings service's own rules for SOP step 6 (*Rapat konsultasi bersama Sekretariat dan Bidang*).

Owns (pure, no I/O, no clock):
- the request shapes of the meeting, its *daftar hadir* (attendance list) and its *notulen* (minutes),
  with their validation (≥ 1 attendee present, NIP 18 digits when given, no NIP listed twice, ≥ 1 point,
  every requested change valid by ``shared.requested_changes.change_problems``);
- the canonical JSON of a notulen and its SHA-256 (``MeetingHeld.notulen_sha256``);
- when a meeting may be scheduled (step 6 due, on the current Rancangan Awal, at a plausible time) and
  the ``RecordMeeting`` command built once both records exist.

The SOP names the daftar hadir and the notulen as step 6's outputs and as records to keep; the shared
decider (``shared.sop.decide``) stays the authority on order, roles and version binding.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Attendee, RequestedChange
from shared.events.models import Sha256Hex, UtcDatetime
from shared.requested_changes import change_problems
from shared.sop import (
    DomainError,
    InvalidCommand,
    OutOfOrder,
    RecordMeeting,
    RenjaClosed,
    RenjaState,
    SopDefinition,
    StaleVersion,
    next_step,
)

MEETING_STEP = 6
NOTULEN_FORMAT = "renja-notulen/1"
"""Bump when the canonical notulen layout changes, so old hashes stay explainable."""


Text = str
"""Free text; surrounding whitespace is stripped before the length checks (``str_strip_whitespace``)."""


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class MeetingCreate(_Input):
    """Schedule the step 6 meeting on one Rancangan Awal version (``draft_version`` + ``draft_sha256``)."""

    # Merged with ``_Input.model_config`` (frozen, extra forbidden, whitespace stripped) by pydantic.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "draft_version": 1,
                    "draft_sha256": "5697974c4718a90f631db4f48645982d9bcbe00c21a47e958fe6a50610a19449",
                    "held_at": "2025-03-12T02:00:00Z",
                    "place": "Ruang Rapat Bappeda Kota Bogor, Lantai 2",
                    "agenda": "Pembahasan Rancangan Awal Renja 2026 bersama Sekretariat dan seluruh Bidang: "
                    "kesesuaian dengan Renstra dan pagu indikatif.",
                }
            ]
        }
    )

    draft_version: int = Field(ge=1)
    draft_sha256: Sha256Hex
    held_at: UtcDatetime = Field(description="date and time of the meeting (timezone-aware; stored in UTC)")
    place: Text = Field(min_length=1, max_length=300)
    agenda: Text = Field(min_length=1, max_length=5000)


class AttendeeIn(_Input):
    """One line of the daftar hadir. ``nip`` is the 18-digit NIP, or empty for a guest without one."""

    name: Text = Field(min_length=1, max_length=200)
    nip: str = Field(default="", pattern=r"^([0-9]{18})?$", description="18 digits, or empty")
    unit: Text = Field(default="", max_length=200)
    position: Text = Field(default="", max_length=200)
    present: bool = True
    signed_at: UtcDatetime | None = Field(default=None, description="when the attendee signed (UTC)")

    def to_event(self) -> Attendee:
        """The same line as the published ``shared.events.Attendee``."""
        return Attendee(
            name=self.name,
            nip=self.nip,
            unit=self.unit,
            position=self.position,
            present=self.present,
            signed_at=self.signed_at,
        )


class AttendanceIn(_Input):
    """The daftar hadir: at least one attendee present; a NIP appears at most once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "attendees": [
                        {
                            "name": "Agus Prasetyo, S.E., M.M. (fiktif)",
                            "nip": "198206202008011003",
                            "unit": "Sekretariat",
                            "position": "Kasubag Perencanaan dan Pelaporan",
                            "present": True,
                            "signed_at": "2025-03-12T02:05:00Z",
                        },
                        {
                            "name": "Siti Aminah, S.Sos. (fiktif)",
                            "nip": "198505052010012007",
                            "unit": "Bidang Sosial Budaya dan Pemerintahan",
                            "position": "Kepala Bidang",
                            "present": True,
                            "signed_at": "2025-03-12T02:07:00Z",
                        },
                        {
                            "name": "Yusuf Ramadhan, S.P. (fiktif)",
                            "nip": "198707072011011008",
                            "unit": "Bidang Perekonomian dan Sumber Daya Alam",
                            "position": "Kepala Bidang",
                            "present": False,
                        },
                    ]
                }
            ]
        }
    )

    attendees: tuple[AttendeeIn, ...] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _rules(self) -> AttendanceIn:
        if not any(a.present for a in self.attendees):
            raise ValueError("the daftar hadir needs at least one attendee marked present")
        nips = [a.nip for a in self.attendees if a.nip]
        twice = sorted({n for n in nips if nips.count(n) > 1})
        if twice:
            raise ValueError(f"NIP listed more than once: {', '.join(twice)}")
        return self


class NotulenIn(_Input):
    """The notulen: points discussed (≥ 1), decisions, and the changes to the draft the meeting asks for."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "points": [
                        "Jumlah pagu kegiatan 5.01.03.2.01 tidak sama dengan jumlah pagu sub kegiatannya.",
                        "Dua sub kegiatan masih berpagu nol.",
                    ],
                    "decisions": ["Pagu kegiatan 5.01.03.2.01 disesuaikan dengan jumlah sub kegiatannya."],
                    "requested_changes": [
                        {
                            "kode": "5.01.03.2.01",
                            "field": "pagu",
                            "new_value": "1.250.000.000",
                            "note": "mengikuti jumlah sub kegiatan",
                        }
                    ],
                }
            ]
        }
    )

    points: tuple[Annotated[Text, Field(min_length=1, max_length=5000)], ...] = Field(min_length=1, max_length=500)
    decisions: tuple[Annotated[Text, Field(min_length=1, max_length=5000)], ...] = Field(default=(), max_length=500)
    requested_changes: tuple[RequestedChange, ...] = Field(default=(), max_length=2000)

    @field_validator("requested_changes")
    @classmethod
    def _changes_apply_to_a_renja_row(cls, changes: tuple[RequestedChange, ...]) -> tuple[RequestedChange, ...]:
        # Checked here, before the notulen becomes a final fact (MeetingHeld), with the rules the documents
        # service applies at step 7 (shared.requested_changes): a kode in the nomenclature's format, an
        # editable field, a rupiah amount for pagu/pagu_n1. Whether the kode is in the draft is step 7's.
        problems = [
            f"requested_changes[{i}] (kode {c.kode!r}, field {c.field!r}): {problem}"
            for i, c in enumerate(changes)
            for problem in change_problems(c)
        ]
        if problems:
            more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise ValueError("; ".join(problems[:10]) + more)
        return changes


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


def _refuse(cls: type[DomainError], message: str, state: RenjaState, sop: SopDefinition) -> DomainError:
    step = next_step(state, sop)
    return cls(message, due_step=step.number if step else None, due_role=step.role if step else None)


def check_meeting_open(state: RenjaState, sop: SopDefinition, draft_version: int, draft_sha256: str) -> None:
    """Refuse work on a step 6 meeting unless step 6 is due on exactly this Rancangan Awal.

    Raises ``RenjaClosed`` (cancelled/distributed), ``OutOfOrder`` (step 6 not due: before step 5 or
    after a meeting was held), ``StaleVersion`` (``draft_version``/``draft_sha256`` are not the state's
    ``awal_version``/``awal_sha256``) — all HTTP 409. Design rule "versions bind": the meeting discusses
    one exact draft.
    """
    label = sop.step(MEETING_STEP).label
    if state.is_closed:
        raise _refuse(RenjaClosed, f"This Renja is {state.status}; {label} can no longer be done.", state, sop)
    if state.due_step != MEETING_STEP:
        due = next_step(state, sop)
        now_due = f"{due.label} is due, by {due.role}" if due else "no step is due"
        raise _refuse(OutOfOrder, f"{label} is not due: {now_due}.", state, sop)
    if draft_version != state.awal_version or draft_sha256 != state.awal_sha256:
        raise _refuse(
            StaleVersion,
            f"{label}: the meeting must discuss the current Rancangan Awal, version {state.awal_version} "
            f"(sha256 {(state.awal_sha256 or '')[:12]}…), not version {draft_version} "
            f"(sha256 {draft_sha256[:12]}…). Reload and retry.",
            state,
            sop,
        )


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
    label = sop.step(MEETING_STEP).label
    if state.awal_created_at is not None and held_at < state.awal_created_at:
        raise _refuse(
            InvalidCommand,
            f"{label}: held_at {held_at.isoformat()} is before Rancangan Awal version {state.awal_version} was "
            f"created ({state.awal_created_at.isoformat()}); check the date.",
            state,
            sop,
        )
    if held_at > now + SCHEDULE_HORIZON:
        raise _refuse(
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
