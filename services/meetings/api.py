"""HTTP API of the meetings service: SOP step 6, the consultation meeting on the Rancangan Awal.

Flow (all by ``staf``, the step's role): schedule a meeting on the current Rancangan Awal → PUT its
*daftar hadir* → PUT its *notulen* (either order; a re-PUT replaces). ``MeetingHeld`` is emitted
automatically by whichever PUT completes the pair — there is no separate "held" call. After that the
meeting's records are final (409).

Thin routes: request model → ``CommandCall`` → ``MeetingsService`` (``service``) → JSON answer.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.meetings.deps import MeetingsDep
from services.meetings.schemas import AttendanceIn, MeetingCreate, MeetingPublic, NotulenIn
from shared.auth import ANY_ROLE, require_roles
from shared.events import Actor
from shared.web.commands import command_call, command_response
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter(tags=["meetings"])

STAF = require_roles("staf")


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
    renja_id: UUID,
    body: MeetingCreate,
    request: Request,
    actor: Annotated[Actor, Depends(STAF)],
    meetings: MeetingsDep,
) -> JSONResponse:
    """Schedule a meeting (date/time UTC, place, agenda) on Rancangan Awal ``draft_version``/``draft_sha256``.

    No event: scheduling is the service's own business; ``MeetingHeld`` follows once the daftar hadir and
    the notulen are recorded. Several meetings may be scheduled while step 6 is due (e.g. a postponement).
    """
    call = await command_call(request, actor, renja_id)
    return command_response(await meetings.schedule(call, body))


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
    meetings: MeetingsDep,
) -> JSONResponse:
    """The attendance list: name, NIP (18 digits, optional), unit, position, present, signature time (UTC).

    Emits ``MeetingHeld`` if the notulen is already recorded (then ``status`` is ``held``).
    """
    call = await command_call(request, actor, renja_id)
    return command_response(await meetings.put_attendance(call, meeting_id, body))


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
    meetings: MeetingsDep,
) -> JSONResponse:
    """The notulen: points discussed, decisions, requested changes to the draft (kode, field, new value).

    Emits ``MeetingHeld`` if the daftar hadir is already recorded (then ``status`` is ``held``).
    """
    call = await command_call(request, actor, renja_id)
    return command_response(await meetings.put_notulen(call, meeting_id, body))


@router.get(
    "/renja/{renja_id}/meetings",
    response_model=list[MeetingPublic],
    summary="Step 6 — the meetings of a Renja with their records (any role)",
)
async def get_meetings(
    renja_id: UUID, _: Annotated[Actor, Depends(ANY_ROLE)], meetings: MeetingsDep
) -> list[MeetingPublic]:
    return await meetings.meetings(renja_id)


@router.get(
    "/renja/{renja_id}/meetings/{meeting_id}",
    response_model=MeetingPublic,
    summary="Step 6 — one meeting with its daftar hadir and notulen (any role)",
)
async def get_one_meeting(
    renja_id: UUID, meeting_id: UUID, _: Annotated[Actor, Depends(ANY_ROLE)], meetings: MeetingsDep
) -> MeetingPublic:
    return await meetings.meeting(renja_id, meeting_id)
