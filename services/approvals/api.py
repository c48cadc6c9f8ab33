"""HTTP API of the approvals service: SOP steps 8-9 (*paraf*), 10 (signature) and returns to step 7.

Every command goes through ``shared.app.run_command`` (one transaction: decider, event + outbox, state,
the ``approval_records`` row, Idempotency-Key). The signature is made by the ``Signer`` on
``app.state.signer`` only after ``check_signable`` passed on the current state; the decider verifies it
again before ``Signed`` is appended. ``GET /keys/public`` and ``POST /verify`` need no token: anyone may
check the agency's signature.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.approvals.domain import (
    ParafCreate,
    ReturnCreate,
    SignCreate,
    VerifyCreate,
    check_signable,
    review_step,
)
from services.approvals.signing import ALGORITHM, Signer, public_key_pem, verify
from services.approvals.store import ApprovalPublic, approval_of, list_approvals, record_approvals, signatures_matching
from shared.auth import ANY_ROLE, require_roles
from shared.events import Actor, Event
from shared.process import load_state
from shared.sop import Initial, RenjaState, ReturnDraft, Sign, next_step
from shared.web.commands import run_command
from shared.web.deps import runtime
from shared.web.errors import COMMAND_ERRORS, ErrorBody
from shared.web.ops import StepPublic

router = APIRouter(tags=["approvals"])

PARAF_ROLES = require_roles("kasubag_pp", "sekretaris")
KEPALA = require_roles("kepala_badan")
REVIEWERS = require_roles("kasubag_pp", "sekretaris", "kepala_badan")


class ApprovalResult(BaseModel):
    """What a paraf, signature or return recorded, and the step now due."""

    renja_id: UUID
    record: ApprovalPublic
    next_step: StepPublic | None


class KeyPublic(BaseModel):
    """The agency's signing public key, for offline verification of ``Signed`` events."""

    key_id: str
    algorithm: str
    public_key_b64: str
    public_key_pem: str
    signed_data: str


class VerifyPublic(BaseModel):
    """Whether the signature verifies under the served key, and the recorded signings it matches."""

    valid: bool
    key_id: str
    algorithm: str
    recorded: list[ApprovalPublic]


def signer_of(request: Request) -> Signer:
    """The ``Signer`` built in the composition root (``create_app``)."""
    signer: Signer = request.app.state.signer
    return signer


def _respond(request: Request) -> Any:
    sop = runtime(request).sop

    def respond(events: Sequence[Event], state: RenjaState) -> dict[str, Any]:
        (record,) = [r for r in (approval_of(e) for e in events) if r is not None]
        step = next_step(state, sop)
        result = ApprovalResult(
            renja_id=record.renja_id,
            record=record,
            next_step=None
            if step is None
            else StepPublic(
                number=step.number, activity=step.activity, role=step.role, standard_minutes=step.standard_minutes
            ),
        )
        return result.model_dump(mode="json")

    return respond


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
    renja_id: UUID, body: ParafCreate, request: Request, actor: Annotated[Actor, Depends(PARAF_ROLES)]
) -> JSONResponse:
    """Initial the exact Rancangan Akhir ``version``/``content_sha256``; the step comes from your role."""
    step = review_step(actor.role)
    assert step in (8, 9)  # PARAF_ROLES admits only kasubag_pp and sekretaris
    command = Initial(
        step=step,
        version=body.version,
        content_sha256=body.content_sha256,
        warnings_acknowledged=body.warnings_acknowledged,
        note=body.note,
    )
    return await run_command(request, actor, renja_id, command, respond=_respond(request), effect=record_approvals)


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
    signer: Annotated[Signer, Depends(signer_of)],
) -> JSONResponse:
    """Sign the UTF-8 bytes of ``content_sha256`` (Ed25519); the result becomes the Renja (SOP step 10)."""
    rt = runtime(request)
    idem_key = request.headers.get("Idempotency-Key")
    async with rt.require_pool().acquire() as conn:
        state, _ = await load_state(conn, renja_id)
        # A retry under a used Idempotency-Key must reach run_command, which replays the first answer
        # (Ed25519 is deterministic, so the rebuilt command hashes the same) or refuses a different request.
        retry = bool(idem_key) and await conn.fetchval(
            "SELECT 1 FROM idempotency_keys WHERE principal = $1 AND key = $2", actor.user_id, idem_key
        )
    if not retry:
        # The key signs only what the decider would accept now; the decider re-checks in the transaction.
        check_signable(state, rt.sop, body.version, body.content_sha256)
    signature = signer.sign(body.content_sha256.encode("utf-8"))
    command = Sign(
        version=body.version,
        content_sha256=body.content_sha256,
        key_id=signer.key_id,
        public_key_b64=signer.public_key_b64(),
        signature_b64=base64.b64encode(signature).decode(),
    )
    return await run_command(request, actor, renja_id, command, respond=_respond(request), effect=record_approvals)


@router.post(
    "/renja/{renja_id}/return",
    status_code=201,
    response_model=ApprovalResult,
    summary="Steps 8-10 — return the Rancangan Akhir to step 7 with notes (the reviewer due: kasubag_pp, "
    "sekretaris or kepala_badan)",
    responses={**COMMAND_ERRORS, 409: {"model": ErrorBody, "description": "not your turn, or stale version/hash"}},
)
async def return_draft(
    renja_id: UUID, body: ReturnCreate, request: Request, actor: Annotated[Actor, Depends(REVIEWERS)]
) -> JSONResponse:
    """Send the draft back for revision (design addition); a new version must be initialed again from step 8."""
    command = ReturnDraft(
        at_step=review_step(actor.role), version=body.version, content_sha256=body.content_sha256, notes=body.notes
    )
    return await run_command(request, actor, renja_id, command, respond=_respond(request), effect=record_approvals)


@router.get(
    "/renja/{renja_id}/approvals",
    response_model=list[ApprovalPublic],
    summary="Steps 8-10 — the parafs, signature and returns recorded for a Renja (any role)",
)
async def get_approvals(
    renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> list[ApprovalPublic]:
    async with runtime(request).require_pool().acquire() as conn:
        _state, version = await load_state(conn, renja_id)
        if version == 0:
            raise HTTPException(404, f"Renja {renja_id} is not known to this service (yet).")
        return await list_approvals(conn, renja_id)


@router.get(
    "/keys/public",
    response_model=KeyPublic,
    tags=["keys"],
    summary="Step 10 — the agency's signing public key (no authentication)",
)
async def public_key(signer: Annotated[Signer, Depends(signer_of)]) -> KeyPublic:
    """Raw base64 and PEM; a signature is over the UTF-8 bytes of the draft's lowercase hex SHA-256."""
    raw = signer.public_key_b64()
    return KeyPublic(
        key_id=signer.key_id,
        algorithm=ALGORITHM,
        public_key_b64=raw,
        public_key_pem=public_key_pem(raw),
        signed_data="UTF-8 bytes of content_sha256 (64 lowercase hex characters)",
    )


@router.post(
    "/verify",
    response_model=VerifyPublic,
    tags=["keys"],
    summary="Step 10 — check a (content_sha256, signature) pair against the agency's key (no authentication)",
    responses={422: COMMAND_ERRORS[422]},
)
async def verify_signature(
    body: VerifyCreate, request: Request, signer: Annotated[Signer, Depends(signer_of)]
) -> VerifyPublic:
    """``valid`` under the served key; ``recorded`` lists the Renja signings with this exact pair."""
    valid = verify(signer.public_key_b64(), body.content_sha256, body.signature_b64)
    async with runtime(request).require_pool().acquire() as conn:
        recorded = await signatures_matching(conn, body.content_sha256, body.signature_b64)
    return VerifyPublic(valid=valid, key_id=signer.key_id, algorithm=ALGORITHM, recorded=recorded)
