"""HTTP API of the meetings service: SOP step 6, the consultation meeting on the Rancangan Awal.

Flow (all by ``staf``, the step's role): schedule a meeting on the current Rancangan Awal → PUT its
*daftar hadir* → PUT its *notulen* (either order; a re-PUT replaces). ``MeetingHeld`` is emitted
automatically by whichever PUT completes the pair — there is no separate "held" call. After that the
meeting's records are final (409).

Every write goes through ``shared.process.execute`` (one transaction: state check, own table, event +
outbox, Idempotency-Key record). The completing PUT decides with the ``RecordMeeting`` command through the
shared decider, exactly like ``shared.app.run_command`` does; this module keeps its own thin shell (instead
of calling ``run_command``) because the Idempotency-Key must hash the request body for every PUT — whether
or not it completes the pair — so a retried PUT replays its first answer even after the meeting was held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.meetings.domain import (
    AttendanceIn,
    AttendeeIn,
    MeetingCreate,
    NotulenIn,
    check_meeting_open,
    check_schedule_time,
    notulen_sha256,
    record_meeting_command,
)
from services.meetings.store import (
    MeetingChanged,
    MeetingRecord,
    get_meeting,
    insert_meeting,
    list_meetings,
    save_records,
)
from shared.auth import ANY_ROLE, require_roles
from shared.command import Decision, Effect
from shared.events import Actor, Event, RequestedChange
from shared.sop import CommandContext, RenjaState, decide
from shared.web.commands import command_call, command_response
from shared.web.deps import command_unit, runtime
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter(tags=["meetings"])

STAF = require_roles("staf")


class NotulenPublic(BaseModel):
    points: list[str]
    decisions: list[str]
    requested_changes: list[RequestedChange]


class MeetingPublic(BaseModel):
    """A step 6 meeting: what was scheduled, the records so far, and whether ``MeetingHeld`` was emitted."""

    meeting_id: UUID
    renja_id: UUID
    draft_version: int
    draft_sha256: str
    held_at: datetime
    place: str
    agenda: str
    scheduled_by: str
    scheduled_at: datetime
    status: Literal["scheduled", "held"]
    missing: list[Literal["daftar_hadir", "notulen"]]
    attendees: list[AttendeeIn] | None
    attendance_by: str | None
    notulen: NotulenPublic | None
    notulen_sha256: str | None
    notulen_by: str | None
    held_event_id: UUID | None


def _public(m: MeetingRecord) -> dict[str, Any]:
    missing: list[Literal["daftar_hadir", "notulen"]] = []
    if m.attendance is None:
        missing.append("daftar_hadir")
    if m.notulen is None:
        missing.append("notulen")
    public = MeetingPublic(
        meeting_id=m.meeting_id,
        renja_id=m.renja_id,
        draft_version=m.draft_version,
        draft_sha256=m.draft_sha256,
        held_at=m.held_at,
        place=m.place,
        agenda=m.agenda,
        scheduled_by=m.scheduled_by,
        scheduled_at=m.scheduled_at,
        status="held" if m.is_held else "scheduled",
        missing=missing,
        attendees=list(m.attendance.attendees) if m.attendance else None,
        attendance_by=m.attendance_by,
        notulen=None
        if m.notulen is None
        else NotulenPublic(
            points=list(m.notulen.points),
            decisions=list(m.notulen.decisions),
            requested_changes=list(m.notulen.requested_changes),
        ),
        notulen_sha256=m.notulen_sha256,
        notulen_by=m.notulen_by,
        held_event_id=m.held_event_id,
    )
    return public.model_dump(mode="json")


def _who(actor: Actor) -> str:
    return f"{actor.name} ({actor.nip})"


async def _run(
    request: Request,
    actor: Actor,
    renja_id: UUID,
    *,
    now: datetime,
    decision: Decision,
    effect: Effect,
    respond: Callable[[Sequence[Event], RenjaState], Any],
    status_code: int,
) -> JSONResponse:
    """The service's command unit with this request's ``CommandCall`` and clock ``now``."""
    result = await command_unit(request).run(
        await command_call(request, actor, renja_id),
        decision,
        respond=respond,
        effect=effect,
        status_code=status_code,
        now=now,
    )
    return command_response(result)


@router.post(
    "/renja/{renja_id}/meetings",
    status_code=201,
    response_model=MeetingPublic,
    summary="Step 6 — schedule the consultation meeting on the current Rancangan Awal (staf)",
    responses={
        **COMMAND_ERRORS,
        409: {"model": ErrorBody, "description": "step 6 not due, or the draft version/hash is not the current one"},
        422: {
            "model": ErrorBody,
            "description": "an invalid request, or `held_at` before the Rancangan Awal was created or more than a "
            "year ahead (`invalid_command`)",
        },
    },
)
async def schedule_meeting(
    renja_id: UUID, body: MeetingCreate, request: Request, actor: Annotated[Actor, Depends(STAF)]
) -> JSONResponse:
    """Schedule a meeting (date/time UTC, place, agenda) on Rancangan Awal ``draft_version``/``draft_sha256``.

    No event: scheduling is the service's own business; ``MeetingHeld`` follows once the daftar hadir and
    the notulen are recorded. Several meetings may be scheduled while step 6 is due (e.g. a postponement).
    """
    rt = runtime(request)
    now = datetime.now(UTC)
    record = MeetingRecord(
        meeting_id=uuid4(),
        renja_id=renja_id,
        draft_version=body.draft_version,
        draft_sha256=body.draft_sha256,
        held_at=body.held_at,
        place=body.place,
        agenda=body.agenda,
        scheduled_by=_who(actor),
        scheduled_at=now,
    )

    def decision(state: RenjaState, _: CommandContext) -> list[Event]:
        check_meeting_open(state, rt.sop, body.draft_version, body.draft_sha256)
        check_schedule_time(state, rt.sop, body.held_at, now)
        return []

    async def effect(conn: asyncpg.Connection, _: Sequence[Event], __: RenjaState) -> None:
        await insert_meeting(conn, record)

    return await _run(
        request,
        actor,
        renja_id,
        now=now,
        decision=decision,
        effect=effect,
        respond=lambda _e, _s: _public(record),
        status_code=201,
    )


PUT_ATTEMPTS = 3
"""How often a PUT re-reads the meeting after losing a race with a concurrent PUT on the same meeting."""


async def _put_record(
    request: Request,
    actor: Actor,
    renja_id: UUID,
    meeting_id: UUID,
    *,
    attendance: AttendanceIn | None = None,
    notulen: NotulenIn | None = None,
) -> JSONResponse:
    """Replace the daftar hadir or the notulen; emit ``MeetingHeld`` when both now exist (SOP step 6).

    A PUT that raced another PUT on the same meeting (e.g. attendance and minutes sent at once) re-reads
    the meeting and decides again, so the pair completes by whichever commits second; after
    ``PUT_ATTEMPTS`` lost races the answer is 409.
    """
    for _ in range(PUT_ATTEMPTS):
        try:
            return await _put_once(request, actor, renja_id, meeting_id, attendance=attendance, notulen=notulen)
        except MeetingChanged:
            continue
    raise HTTPException(
        409, f"Meeting {meeting_id} is being changed by someone else at the same moment; reload and retry."
    )


async def _put_once(
    request: Request,
    actor: Actor,
    renja_id: UUID,
    meeting_id: UUID,
    *,
    attendance: AttendanceIn | None,
    notulen: NotulenIn | None,
) -> JSONResponse:
    """One attempt of ``_put_record``; raises ``MeetingChanged`` (nothing committed) if it lost a race."""
    rt = runtime(request)
    now = datetime.now(UTC)
    async with rt.require_pool().acquire() as conn:
        current = await get_meeting(conn, renja_id, meeting_id)
    if current is None:
        raise HTTPException(404, f"Renja {renja_id} has no meeting {meeting_id}; schedule one first.")
    update: dict[str, Any] = {}
    if attendance is not None:
        update.update(attendance=attendance, attendance_by=_who(actor), attendance_at=now)
    if notulen is not None:
        digest = notulen_sha256(meeting_id, current.draft_version, current.draft_sha256, notulen)
        update.update(notulen=notulen, notulen_sha256=digest, notulen_by=_who(actor), notulen_at=now)
    updated = current.model_copy(update=update)

    def decision(state: RenjaState, ctx: CommandContext) -> list[Event]:
        # Checked after the Idempotency-Key claim, so a retried PUT replays instead of hitting this 409.
        if current.is_held or state.meeting_id == meeting_id:
            raise HTTPException(
                409,
                f"Meeting {meeting_id} was already held (SOP step 6 is done): its daftar hadir and notulen are "
                "final. Changes to the draft belong in the Rancangan Akhir (step 7).",
            )
        if updated.attendance is None or updated.notulen is None:
            check_meeting_open(state, rt.sop, current.draft_version, current.draft_sha256)
            return []
        command = record_meeting_command(
            meeting_id=meeting_id,
            draft_version=current.draft_version,
            draft_sha256=current.draft_sha256,
            held_at=current.held_at,
            place=current.place,
            attendance=updated.attendance,
            notulen=updated.notulen,
        )
        return decide(state, command, ctx, rt.sop)

    final: list[MeetingRecord] = [updated]

    async def effect(conn: asyncpg.Connection, events: Sequence[Event], _: RenjaState) -> None:
        if events:
            final[0] = updated.model_copy(update={"held_event_id": events[0].event_id, "held_recorded_at": now})
        # Raises MeetingChanged when the row moved since it was read: the transaction (event included)
        # rolls back and _put_record tries again on the fresh row.
        await save_records(conn, final[0], read_rev=current.rev)

    return await _run(
        request,
        actor,
        renja_id,
        now=now,
        decision=decision,
        effect=effect,
        respond=lambda _e, _s: _public(final[0]),
        status_code=200,
    )


@router.put(
    "/renja/{renja_id}/meetings/{meeting_id}/attendance",
    response_model=MeetingPublic,
    summary="Step 6 — record (or replace) the meeting's daftar hadir; completes the meeting with the notulen (staf)",
    responses={
        **COMMAND_ERRORS,
        409: {"model": ErrorBody, "description": "the meeting was already held, or step 6 is not due"},
    },
)
async def put_attendance(
    renja_id: UUID,
    meeting_id: UUID,
    body: AttendanceIn,
    request: Request,
    actor: Annotated[Actor, Depends(STAF)],
) -> JSONResponse:
    """The attendance list: name, NIP (18 digits, optional), unit, position, present, signature time (UTC).

    Emits ``MeetingHeld`` if the notulen is already recorded (then ``status`` is ``held``).
    """
    return await _put_record(request, actor, renja_id, meeting_id, attendance=body)


@router.put(
    "/renja/{renja_id}/meetings/{meeting_id}/minutes",
    response_model=MeetingPublic,
    summary="Step 6 — record (or replace) the meeting's notulen; completes the meeting with the daftar hadir (staf)",
    responses={
        **COMMAND_ERRORS,
        409: {"model": ErrorBody, "description": "the meeting was already held, or step 6 is not due"},
    },
)
async def put_minutes(
    renja_id: UUID,
    meeting_id: UUID,
    body: NotulenIn,
    request: Request,
    actor: Annotated[Actor, Depends(STAF)],
) -> JSONResponse:
    """The notulen: points discussed, decisions, requested changes to the draft (kode, field, new value).

    Emits ``MeetingHeld`` if the daftar hadir is already recorded (then ``status`` is ``held``).
    """
    return await _put_record(request, actor, renja_id, meeting_id, notulen=body)


@router.get(
    "/renja/{renja_id}/meetings",
    response_model=list[MeetingPublic],
    summary="Step 6 — the meetings of a Renja with their records (any role)",
)
async def get_meetings(
    renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> list[dict[str, Any]]:
    async with runtime(request).require_pool().acquire() as conn:
        return [_public(m) for m in await list_meetings(conn, renja_id)]


@router.get(
    "/renja/{renja_id}/meetings/{meeting_id}",
    response_model=MeetingPublic,
    summary="Step 6 — one meeting with its daftar hadir and notulen (any role)",
)
async def get_one_meeting(
    renja_id: UUID, meeting_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> dict[str, Any]:
    async with runtime(request).require_pool().acquire() as conn:
        meeting = await get_meeting(conn, renja_id, meeting_id)
    if meeting is None:
        raise HTTPException(404, f"Renja {renja_id} has no meeting {meeting_id}.")
    return _public(meeting)
