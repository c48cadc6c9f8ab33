"""The command shell at the HTTP edge: a request becomes a ``CommandCall``, a ``CommandResult`` a response.

The one definition of "the same request" for an ``Idempotency-Key`` lives in
``shared.command.request_fingerprint`` (method, path, raw body bytes); routes never hash on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from fastapi import Request
from fastapi.responses import JSONResponse

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
from shared.process import load_state
from shared.sop import Command, RenjaState
from shared.web.deps import command_unit, runtime


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


def command_response(result: CommandResult) -> JSONResponse:
    """The JSON answer of a command; ``Idempotent-Replayed: true`` when it replays an earlier answer."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return JSONResponse(status_code=result.status_code, content=result.body, headers=headers)


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
