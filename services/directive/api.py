"""HTTP API of the directive service: SOP steps 1-3 (arahan, instruksi, perintah) and cancellation.

Owns the ``cycles`` table: one row per started cycle, at most one *open* (not cancelled) cycle per OPD
name (normalised, case-insensitive) and fiscal year — enforced by a partial unique index, so two heads
starting the same cycle at once cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated
from uuid import UUID, uuid4

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.directive.domain import normalise_opd
from shared.auth import ANY_ROLE, require_roles
from shared.events import Actor, DirectiveIssued, Event, RenjaCancelled
from shared.sop import AlreadyStarted, CancelRenja, IssueArahan, IssueInstruksi, IssuePerintah, RenjaState
from shared.web.commands import run_command
from shared.web.deps import runtime
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter(tags=["directive"])

KEPALA = require_roles("kepala_badan")
SEKRETARIS = require_roles("sekretaris")
KASUBAG = require_roles("kasubag_pp")


class CyclePublic(BaseModel):
    renja_id: UUID
    opd: str
    fiscal_year: int
    started_at: datetime
    status: str
    due_step: int | None


class DirectivePublic(BaseModel):
    event_id: UUID
    level: str
    text: str
    addressee_role: str
    addressee_name: str
    issued_by: str
    issued_at: datetime


async def record_directives(conn: asyncpg.Connection, events: Sequence[Event], _: RenjaState) -> None:
    """Keep the cycle row and each directive's text, in the command's transaction.

    Raises ``AlreadyStarted`` (409) when an open cycle exists for the same OPD (``lower(opd)``, the name
    already normalised by ``issue_arahan``) and fiscal year: SOP step 1 starts one Renja per OPD and year.
    """
    for e in events:
        if not isinstance(e, DirectiveIssued):
            continue
        if e.level == "arahan":
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO cycles (renja_id, opd, fiscal_year, started_at) VALUES ($1, $2, $3, $4)",
                        e.renja_id,
                        e.opd,
                        e.fiscal_year,
                        e.occurred_at,
                    )
            except asyncpg.UniqueViolationError as exc:
                row = await conn.fetchrow(
                    "SELECT renja_id, opd FROM cycles WHERE lower(opd) = lower($1) AND fiscal_year = $2"
                    " AND cancelled_at IS NULL",
                    e.opd,
                    e.fiscal_year,
                )
                existing = f"{row['renja_id']}, started as {row['opd']!r}" if row else "?"
                raise AlreadyStarted(
                    f"A Renja cycle for {e.opd} and fiscal year {e.fiscal_year} already exists ({existing}); "
                    "continue that one, or cancel it first."
                ) from exc
        await conn.execute(
            "INSERT INTO directives VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            e.event_id,
            e.renja_id,
            e.level,
            e.text,
            e.addressee_role,
            e.addressee_name,
            f"{e.actor.name} ({e.actor.nip})",
            e.occurred_at,
        )


async def record_cancellation(conn: asyncpg.Connection, events: Sequence[Event], _: RenjaState) -> None:
    """Mark the cycle cancelled (in the command's transaction), so it no longer blocks a new cycle for the
    same OPD and year: cancelling exists to restart a cycle started wrongly (design addition)."""
    for e in events:
        if isinstance(e, RenjaCancelled):
            await conn.execute("UPDATE cycles SET cancelled_at = $2 WHERE renja_id = $1", e.renja_id, e.occurred_at)


@router.post(
    "/renja",
    status_code=201,
    summary="Step 1 — arahan: the head starts a Renja cycle (kepala_badan)",
    responses={
        **COMMAND_ERRORS,
        409: {
            "model": ErrorBody,
            "description": "an open (not cancelled) cycle for this OPD and fiscal year exists (`already_started`); "
            "OPD names are compared after normalisation and case-insensitively",
        },
    },
)
async def issue_arahan(body: IssueArahan, request: Request, actor: Annotated[Actor, Depends(KEPALA)]) -> JSONResponse:
    """Start the cycle for ``opd`` and ``fiscal_year`` (n+1) with the head's *arahan* to the secretary.

    The OPD name is normalised first (``normalise_opd``: invisible characters removed, NFC, whitespace
    collapsed); a name empty after that is refused with 422. The event carries the normalised name.
    """
    opd = normalise_opd(body.opd)
    if not opd:
        raise HTTPException(422, "opd: the OPD name is empty once spaces and invisible characters are removed.")
    renja_id = uuid4()
    command = body.model_copy(update={"opd": opd})
    return await run_command(request, actor, renja_id, command, effect=record_directives)


@router.post(
    "/renja/{renja_id}/instruksi",
    status_code=201,
    summary="Step 2 — instruksi: the secretary instructs the Kasubag PP (sekretaris)",
    responses=COMMAND_ERRORS,
)
async def issue_instruksi(
    renja_id: UUID, body: IssueInstruksi, request: Request, actor: Annotated[Actor, Depends(SEKRETARIS)]
) -> JSONResponse:
    return await run_command(request, actor, renja_id, body, effect=record_directives)


@router.post(
    "/renja/{renja_id}/perintah",
    status_code=201,
    summary="Step 3 — perintah: the Kasubag PP orders the staff (kasubag_pp)",
    responses=COMMAND_ERRORS,
)
async def issue_perintah(
    renja_id: UUID, body: IssuePerintah, request: Request, actor: Annotated[Actor, Depends(KASUBAG)]
) -> JSONResponse:
    return await run_command(request, actor, renja_id, body, effect=record_directives)


@router.post(
    "/renja/{renja_id}/cancel",
    status_code=201,
    summary="Cancel a started cycle with a reason (kepala_badan)",
    responses={
        **COMMAND_ERRORS,
        409: {"model": ErrorBody, "description": "not started, or already cancelled or distributed"},
    },
)
async def cancel(
    renja_id: UUID, body: CancelRenja, request: Request, actor: Annotated[Actor, Depends(KEPALA)]
) -> JSONResponse:
    """Cancel the cycle with a reason; afterwards a new cycle may be started for the same OPD and year."""
    return await run_command(request, actor, renja_id, body, effect=record_cancellation)


@router.get("/renja", response_model=list[CyclePublic], summary="Renja cycles with status and due step (any role)")
async def list_cycles(request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]) -> list[CyclePublic]:
    async with runtime(request).require_pool().acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.renja_id, c.opd, c.fiscal_year, c.started_at, p.state->>'status' AS status,"
            " (p.state->>'due_step')::int AS due_step"
            " FROM cycles c JOIN process_state p USING (renja_id) ORDER BY c.started_at"
        )
    return [CyclePublic(**dict(r)) for r in rows]


@router.get(
    "/renja/{renja_id}/directives",
    response_model=list[DirectivePublic],
    summary="The arahan, instruksi and perintah of a cycle (any role)",
)
async def list_directives(
    renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> list[DirectivePublic]:
    async with runtime(request).require_pool().acquire() as conn:
        rows = await conn.fetch("SELECT * FROM directives WHERE renja_id = $1 ORDER BY issued_at", renja_id)
    if not rows:
        raise HTTPException(404, f"No directives for Renja {renja_id}.")
    return [DirectivePublic(**{k: v for k, v in dict(r).items() if k != "renja_id"}) for r in rows]
