"""HTTP API of the approvals service: SOP steps 8-9 (*paraf*), 10 (signature) and returns to step 7.

Thin routes: request model → ``CommandCall`` → ``ApprovalsService`` (``service``) → response. The
signing, its guard and the SQL live in ``service``, ``domain``, ``signing`` and ``store``.
``GET /keys/public`` and ``POST /verify`` need no token: anyone may check the agency's signature.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.approvals.deps import ApprovalsDep
from services.approvals.schemas import (
    ApprovalPublic,
    ApprovalResult,
    KeyPublic,
    ParafCreate,
    ReturnCreate,
    SignCreate,
    VerifyCreate,
    VerifyPublic,
)
from shared.auth import ANY_ROLE, require_roles
from shared.events import Actor
from shared.web.commands import command_call, command_response
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter(tags=["approvals"])

PARAF_ROLES = require_roles("kasubag_pp", "sekretaris")
KEPALA = require_roles("kepala_badan")
REVIEWERS = require_roles("kasubag_pp", "sekretaris", "kepala_badan")


@router.post(
    "/renja/{renja_id}/paraf",
    status_code=201,
    response_model=ApprovalResult,
    summary="Steps 8-9 — paraf on the Rancangan Akhir (kasubag_pp at step 8, sekretaris at step 9)",
    responses={
        **COMMAND_ERRORS,
        409: {"model": ErrorBody, "description": "not your turn, stale version/hash, or blocking findings"},
    },
)
async def paraf(
    renja_id: UUID,
    body: ParafCreate,
    request: Request,
    actor: Annotated[Actor, Depends(PARAF_ROLES)],
    approvals: ApprovalsDep,
) -> JSONResponse:
    """Initial the exact Rancangan Akhir ``version``/``content_sha256``; the step comes from your role."""
    call = await command_call(request, actor, renja_id)
    return command_response(await approvals.paraf(call, body))


@router.post(
    "/renja/{renja_id}/sign",
    status_code=201,
    response_model=ApprovalResult,
    summary="Step 10 — the head signs the Rancangan Akhir with the agency's Ed25519 key (kepala_badan)",
    responses={
        **COMMAND_ERRORS,
        409: {"model": ErrorBody, "description": "not due (parafs missing), or stale version/hash"},
    },
)
async def sign(
    renja_id: UUID,
    body: SignCreate,
    request: Request,
    actor: Annotated[Actor, Depends(KEPALA)],
    approvals: ApprovalsDep,
) -> JSONResponse:
    """Sign the UTF-8 bytes of ``content_sha256`` (Ed25519); the result becomes the Renja (SOP step 10)."""
    call = await command_call(request, actor, renja_id)
    return command_response(await approvals.sign(call, body))


@router.post(
    "/renja/{renja_id}/return",
    status_code=201,
    response_model=ApprovalResult,
    summary="Steps 8-10 — return the Rancangan Akhir to step 7 with notes (the reviewer due: kasubag_pp, "
    "sekretaris or kepala_badan)",
    responses={**COMMAND_ERRORS, 409: {"model": ErrorBody, "description": "not your turn, or stale version/hash"}},
)
async def return_draft(
    renja_id: UUID,
    body: ReturnCreate,
    request: Request,
    actor: Annotated[Actor, Depends(REVIEWERS)],
    approvals: ApprovalsDep,
) -> JSONResponse:
    """Send the draft back for revision (design addition); a new version must be initialed again from step 8."""
    call = await command_call(request, actor, renja_id)
    return command_response(await approvals.return_draft(call, body))


@router.get(
    "/renja/{renja_id}/approvals",
    response_model=list[ApprovalPublic],
    summary="Steps 8-10 — the parafs, signature and returns recorded for a Renja (any role)",
)
async def get_approvals(
    renja_id: UUID, _: Annotated[Actor, Depends(ANY_ROLE)], approvals: ApprovalsDep
) -> list[ApprovalPublic]:
    return await approvals.approvals(renja_id)


@router.get(
    "/keys/public",
    response_model=KeyPublic,
    tags=["keys"],
    summary="Step 10 — the agency's signing public key (no authentication)",
)
async def public_key(approvals: ApprovalsDep) -> KeyPublic:
    """Raw base64 and PEM; a signature is over the UTF-8 bytes of the draft's lowercase hex SHA-256."""
    return approvals.public_key()


@router.post(
    "/verify",
    response_model=VerifyPublic,
    tags=["keys"],
    summary="Step 10 — check a (content_sha256, signature) pair against the agency's key (no authentication)",
    responses={422: COMMAND_ERRORS[422]},
)
async def verify_signature(body: VerifyCreate, approvals: ApprovalsDep) -> VerifyPublic:
    """``valid`` under the served key; ``recorded`` lists the Renja signings with this exact pair."""
    return await approvals.verify(body)
