"""The command shell at the HTTP edge: a request becomes a ``CommandCall``, a ``CommandResult`` a response.

A command is answered once its events are on the log (``shared.command``, *acknowledged means logged*);
when the broker did not acknowledge them in time the answer is ``202 Accepted`` with ``Location`` →
``GET /events/{event_id}/status`` (``publication_router``), which says ``published`` once the relay has
sent them.

The one definition of "the same request" for an ``Idempotency-Key`` lives in
``shared.command.request_fingerprint`` (method, path, raw body bytes); routes never hash on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.auth import ANY_ROLE
from shared.command import (
    CommandCall,
    CommandResult,
    Decision,
    Effect,
    Respond,
    ensure_own_opd,
    idempotency_of,
    request_fingerprint,
)
from shared.events import Actor
from shared.outbox import publication_status
from shared.process import load_state
from shared.sop import Command, RenjaState
from shared.web.deps import command_unit, runtime

RETRY_AFTER_S = 1
"""``Retry-After`` (seconds) of a ``202``: when to look at the status link again."""


async def authorise_opd(request: Request, actor: Actor, renja_id: UUID) -> None:
    """Refuse (``OtherOpd``, 403) a command on another OPD's cycle, before anything about the cycle's
    state is checked or told: the cycle's OPD is read from this service's folded state."""
    async with runtime(request).require_pool().acquire() as conn:
        state, _ = await load_state(conn, renja_id)
    ensure_own_opd(state, actor)


async def command_call(request: Request, actor: Actor, renja_id: UUID) -> CommandCall:
    """The ``CommandCall`` of a command request: actor, Renja, Idempotency-Key and ``traceparent`` headers.

    Raises ``OtherOpd`` (403) when the cycle belongs to another OPD than the actor's (``authorise_opd``),
    ``IdempotencyKeyInvalid`` (422) for an over-long key.
    """
    await authorise_opd(request, actor, renja_id)
    key = request.headers.get("Idempotency-Key")
    fingerprint = request_fingerprint(request.method, request.url.path, await request.body()) if key else ""
    return CommandCall(
        actor=actor,
        renja_id=renja_id,
        idempotency=idempotency_of(key, actor.user_id, fingerprint),
        traceparent=request.headers.get("traceparent"),
        tracestate=request.headers.get("tracestate"),
    )


def status_path(event_id: UUID) -> str:
    """The status link of one event, ``/events/{event_id}/status`` (``publication_router``)."""
    return f"/events/{event_id}/status"


def command_response(result: CommandResult) -> JSONResponse:
    """The JSON answer of a command; ``Idempotent-Replayed: true`` when it replays an earlier answer.

    The body is the command's answer either way; a ``202`` (events committed, not yet on the log) adds
    ``Location`` (the status of the command's last event: once it is published, all are) and
    ``Retry-After``.
    """
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    if result.unpublished:
        headers["Location"] = status_path(result.unpublished[-1])
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return JSONResponse(status_code=result.status_code, content=result.body, headers=headers)


class PublicationPublic(BaseModel):
    """Where one of this service's events stands: ``pending`` (committed, in the outbox), ``published``
    (on the log; final) or ``set_aside`` (the broker refused it for good: an operator's alarm; ``error``
    says why). Times are UTC."""

    event_id: UUID
    status: Literal["pending", "published", "set_aside"]
    published_at: datetime | None = None
    error: str | None = None


def publication_router() -> APIRouter:
    """``GET /events/{event_id}/status`` (any authenticated role): the status link of a ``202`` answer."""
    router = APIRouter()

    @router.get(
        "/events/{event_id}/status",
        tags=["ops"],
        summary="Whether one of this service's events is on the log yet (the status link of a 202 answer)",
        responses={404: {"description": "This service stored no event with this id"}},
    )
    async def event_status(
        event_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
    ) -> PublicationPublic:
        async with runtime(request).require_pool().acquire() as conn:
            row = await publication_status(conn, event_id)
        if row is None:
            raise HTTPException(404, f"Event {event_id} is not stored by this service.")
        if row["published_at"] is not None:
            return PublicationPublic(event_id=event_id, status="published", published_at=row["published_at"])
        if row["publish_failed_at"] is not None:
            return PublicationPublic(event_id=event_id, status="set_aside", error=row["publish_error"])
        return PublicationPublic(event_id=event_id, status="pending")

    return router


async def run_command(
    request: Request,
    actor: Actor,
    renja_id: UUID,
    decision: Command | Decision,
    *,
    respond: Respond | None = None,
    effect: Effect | None = None,
    precheck: Callable[[RenjaState], None] | None = None,
    status_code: int = 201,
) -> JSONResponse:
    """A command route's whole body: the request's ``CommandCall`` → the service's ``CommandUnit`` → JSON.

    For routes whose use case is one decision with an effect; see ``CommandUnit.run`` for the options.
    """
    result = await command_unit(request).run(
        await command_call(request, actor, renja_id),
        decision,
        respond=respond,
        effect=effect,
        precheck=precheck,
        status_code=status_code,
    )
    return command_response(result)
