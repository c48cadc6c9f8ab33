"""HTTP API of the directive service: SOP steps 1-3 (arahan, instruksi, perintah) and cancellation.

Thin routes: request model → ``CommandCall`` → ``DirectiveService`` (``service``) → response. The rules,
the one-open-cycle-per-OPD-and-year check and the SQL live in ``service``, ``domain`` and ``store``.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.directive.deps import DirectiveDep
from services.directive.schemas import CyclePublic, DirectivePublic
from shared.auth import ANY_ROLE, require_roles
from shared.events import Actor
from shared.sop import CancelRenja, IssueArahan, IssueInstruksi, IssuePerintah
from shared.web.commands import command_call, command_response
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter(tags=["directive"])

KEPALA = require_roles("kepala_badan")
SEKRETARIS = require_roles("sekretaris")
KASUBAG = require_roles("kasubag_pp")


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
async def issue_arahan(
    body: IssueArahan, request: Request, actor: Annotated[Actor, Depends(KEPALA)], directive: DirectiveDep
) -> JSONResponse:
    """Start the cycle for ``opd`` and ``fiscal_year`` (n+1) with the head's *arahan* to the secretary.

    The OPD name is normalised first (``normalise_opd``: invisible characters removed, NFC, whitespace
    collapsed); a name empty after that is refused with 422. The event carries the normalised name.
    """
    call = await command_call(request, actor, uuid4())
    return command_response(await directive.issue_arahan(call, body))


@router.post(
    "/renja/{renja_id}/instruksi",
    status_code=201,
    summary="Step 2 — instruksi: the secretary instructs the Kasubag PP (sekretaris)",
    responses=COMMAND_ERRORS,
)
async def issue_instruksi(
    renja_id: UUID,
    body: IssueInstruksi,
    request: Request,
    actor: Annotated[Actor, Depends(SEKRETARIS)],
    directive: DirectiveDep,
) -> JSONResponse:
    call = await command_call(request, actor, renja_id)
    return command_response(await directive.issue_instruksi(call, body))


@router.post(
    "/renja/{renja_id}/perintah",
    status_code=201,
    summary="Step 3 — perintah: the Kasubag PP orders the staff (kasubag_pp)",
    responses=COMMAND_ERRORS,
)
async def issue_perintah(
    renja_id: UUID,
    body: IssuePerintah,
    request: Request,
    actor: Annotated[Actor, Depends(KASUBAG)],
    directive: DirectiveDep,
) -> JSONResponse:
    call = await command_call(request, actor, renja_id)
    return command_response(await directive.issue_perintah(call, body))


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
    renja_id: UUID,
    body: CancelRenja,
    request: Request,
    actor: Annotated[Actor, Depends(KEPALA)],
    directive: DirectiveDep,
) -> JSONResponse:
    """Cancel the cycle with a reason; afterwards a new cycle may be started for the same OPD and year."""
    call = await command_call(request, actor, renja_id)
    return command_response(await directive.cancel(call, body))


@router.get("/renja", response_model=list[CyclePublic], summary="Renja cycles with status and due step (any role)")
async def list_cycles(_: Annotated[Actor, Depends(ANY_ROLE)], directive: DirectiveDep) -> list[CyclePublic]:
    return await directive.cycles()


@router.get(
    "/renja/{renja_id}/directives",
    response_model=list[DirectivePublic],
    summary="The arahan, instruksi and perintah of a cycle (any role)",
)
async def list_directives(
    renja_id: UUID, _: Annotated[Actor, Depends(ANY_ROLE)], directive: DirectiveDep
) -> list[DirectivePublic]:
    return await directive.directives(renja_id)
