"""HTTP API of the notifier: SOP step 11 (distribution, receipts, *bukti distribusi*) and webhook
subscriptions. Thin routes: request model → ``CommandCall`` → ``NotifierService`` (``service``) → answer;
mails and webhook deliveries are queued in the same transactions and sent by ``dispatch``.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from services.notifier.deps import NotifierDep
from services.notifier.schemas import (
    DistributionCreate,
    DistributionCreated,
    DistributionPublic,
    ReceiptConfirm,
    ReceiptCreate,
    ReceiptTokenPublic,
    TimerPublic,
    TimersHealth,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPublic,
    WebhookPublic,
)
from shared.auth import ANY_ROLE, SOP_ROLES, require_roles
from shared.events import Actor
from shared.web.commands import command_call, command_response
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter()

# The HTTP edge keeps auditors out of every command; WHICH SOP role may act (staf for step 11 in the
# shipped SOP file) is the shared decider's rule, read from the SOP file, so another agency can change it.
PELAKSANA = require_roles(*SOP_ROLES)
# Webhooks send the agency's data to other systems: a decision for the head or the secretary (the SOP's
# two leadership roles; there is no separate admin role in the token model). Auditors may read them.
WEBHOOK_ADMIN = require_roles("kepala_badan", "sekretaris")
WEBHOOK_READ = require_roles("kepala_badan", "sekretaris", "auditor")


# ---------------------------------------------------------------------------------------------------
# Step 11: distribution and receipts
# ---------------------------------------------------------------------------------------------------


@router.post(
    "/renja/{renja_id}/distribution",
    status_code=201,
    response_model=DistributionCreated,
    tags=["step 11"],
    summary="Step 11 — copy, archive and distribute the signed Renja (staf)",
    responses={**COMMAND_ERRORS, 409: {"model": ErrorBody, "description": "not signed / stale hash"}},
)
async def distribute(
    renja_id: UUID,
    body: DistributionCreate,
    request: Request,
    actor: Annotated[Actor, Depends(PELAKSANA)],
    notifier: NotifierDep,
) -> JSONResponse:
    """Send the signed version to the SOP file's distribution list (plus ``additional_recipients``).

    Each recipient with an e-mail address gets the archive reference and a personal receipt link. The
    decider refuses (409) unless step 11 is due and the version and SHA-256 are the signed ones.
    """
    call = await command_call(request, actor, renja_id)
    return command_response(await notifier.distribute(call, body))


@router.post(
    "/renja/{renja_id}/distribution/receipts",
    status_code=201,
    tags=["step 11"],
    summary="Step 11 — record a recipient's receipt, once per recipient (staf)",
    responses={**COMMAND_ERRORS, 409: {"model": ErrorBody, "description": "already recorded, or not distributed"}},
)
async def record_receipt(
    renja_id: UUID,
    body: ReceiptCreate,
    request: Request,
    actor: Annotated[Actor, Depends(PELAKSANA)],
    notifier: NotifierDep,
) -> JSONResponse:
    """One ``ReceiptRecorded`` per recipient (a second → 409 ``already_recorded``)."""
    call = await command_call(request, actor, renja_id)
    return command_response(await notifier.record_receipt(call, body))


@router.get(
    "/renja/{renja_id}/distribution",
    response_model=DistributionPublic,
    tags=["step 11"],
    summary="Step 11 — bukti distribusi: recipients, mail status, receipts (any role)",
)
async def get_distribution(
    renja_id: UUID, _: Annotated[Actor, Depends(ANY_ROLE)], notifier: NotifierDep
) -> DistributionPublic:
    return await notifier.distribution(renja_id)


@router.get(
    "/receipts/{token}",
    response_model=ReceiptTokenPublic,
    tags=["step 11"],
    summary="Step 11 — what a receipt link acknowledges (the link's holder; the token is the credential)",
)
async def get_receipt_link(token: str, notifier: NotifierDep) -> ReceiptTokenPublic:
    return await notifier.receipt_link(token)


@router.post(
    "/receipts/{token}",
    status_code=201,
    tags=["step 11"],
    summary="Step 11 — a recipient acknowledges receipt through their link (the token is the credential)",
    responses={
        404: {"model": ErrorBody, "description": "the receipt link is not valid"},
        409: {"model": ErrorBody, "description": "already recorded (`already_recorded`)"},
        422: COMMAND_ERRORS[422],
    },
)
async def confirm_receipt(token: str, body: ReceiptConfirm, request: Request, notifier: NotifierDep) -> JSONResponse:
    """The recipient acts without an agency account: the event's actor is ``system`` on their behalf,
    named after ``received_by`` (the decider accepts receipts from the step's role or ``system``)."""
    return command_response(await notifier.confirm_receipt(token, body, partial(command_call, request)))


# ---------------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------------


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    tags=["webhooks"],
    summary="Subscribe a URL to Renja events; returns the signing secret once (kepala_badan, sekretaris)",
    responses={
        401: COMMAND_ERRORS[401],
        403: {"model": ErrorBody, "description": "only kepala_badan and sekretaris manage webhooks"},
        422: {
            "model": ErrorBody,
            "description": "not an http(s) URL (https in production), a host that is or resolves to a loopback, "
            "private, link-local or unique-local address (production), or an unknown event type",
        },
    },
)
async def create_webhook(
    body: WebhookCreate, actor: Annotated[Actor, Depends(WEBHOOK_ADMIN)], notifier: NotifierDep
) -> WebhookCreated:
    """Events consumed from now on that match ``event_types`` are POSTed, signed (Standard Webhooks)."""
    return await notifier.create_webhook(actor, body)


@router.get(
    "/webhooks",
    response_model=list[WebhookPublic],
    tags=["webhooks"],
    summary="Active webhook subscriptions, without secrets (kepala_badan, sekretaris, auditor)",
)
async def list_webhooks(_: Annotated[Actor, Depends(WEBHOOK_READ)], notifier: NotifierDep) -> list[WebhookPublic]:
    return await notifier.webhooks()


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    tags=["webhooks"],
    summary="Unsubscribe; pending deliveries are dropped, history kept (kepala_badan, sekretaris)",
    responses={
        401: COMMAND_ERRORS[401],
        403: {"model": ErrorBody, "description": "only kepala_badan and sekretaris manage webhooks"},
        404: {"model": ErrorBody, "description": "no active webhook with this id"},
        422: COMMAND_ERRORS[422],
    },
)
async def delete_webhook(
    webhook_id: UUID, _: Annotated[Actor, Depends(WEBHOOK_ADMIN)], notifier: NotifierDep
) -> Response:
    await notifier.delete_webhook(webhook_id)
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=list[WebhookDeliveryPublic],
    tags=["webhooks"],
    summary="Deliveries of one subscription with attempts and errors (kepala_badan, sekretaris, auditor)",
)
async def list_deliveries(
    webhook_id: UUID, _: Annotated[Actor, Depends(WEBHOOK_READ)], notifier: NotifierDep
) -> list[WebhookDeliveryPublic]:
    return await notifier.deliveries(webhook_id)


# ---------------------------------------------------------------------------------------------------
# Step timers (mutu baku)
# ---------------------------------------------------------------------------------------------------


@router.get(
    "/timers",
    response_model=list[TimerPublic],
    tags=["timers"],
    summary="Step timers: pending (earliest first) or fired notices (latest first) (any role)",
)
async def list_timers(
    _: Annotated[Actor, Depends(ANY_ROLE)], notifier: NotifierDep, fired: bool = False, limit: int = 200
) -> list[TimerPublic]:
    return await notifier.timers(fired=fired, limit=max(1, min(limit, 1000)))


@router.get(
    "/timers/health",
    response_model=TimersHealth,
    tags=["timers", "ops"],
    summary="Timers late to fire (503 when any is late beyond RENJA_TIMER_LATE_SECONDS) (no auth)",
    responses={503: {"model": TimersHealth, "description": "timers are late to fire"}},
)
async def timers_health(notifier: NotifierDep) -> JSONResponse:
    health = await notifier.timers_health()
    return JSONResponse(status_code=200 if health.healthy else 503, content=health.model_dump(mode="json"))
