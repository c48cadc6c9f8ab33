"""HTTP API of the notifier: SOP step 11 (distribution, receipts, *bukti distribusi*) and webhook
subscriptions. Mails and webhook deliveries are queued in the same transactions and sent by ``dispatch``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID, uuid4, uuid5

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.notifier import signing, store
from services.notifier.messages import archive_ref
from services.notifier.service import distribution_effect, token_sha256
from services.notifier.targets import ForbiddenTarget, check_webhook_target
from shared.auth import ANY_ROLE, SOP_ROLES, require_roles
from shared.events import EVENT_TYPES, Actor, Recipient
from shared.events.models import Sha256Hex, UtcDatetime
from shared.process import load_state
from shared.sop import Distribute, RecordReceipt, RenjaState
from shared.web.commands import run_command
from shared.web.deps import runtime
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter()

# The HTTP edge keeps auditors out of every command; WHICH SOP role may act (staf for step 11 in the
# shipped SOP file) is the shared decider's rule, read from the SOP file, so another agency can change it.
PELAKSANA = require_roles(*SOP_ROLES)
# Webhooks send the agency's data to other systems: a decision for the head or the secretary (the SOP's
# two leadership roles; there is no separate admin role in the token model). Auditors may read them.
WEBHOOK_ADMIN = require_roles("kepala_badan", "sekretaris")
WEBHOOK_READ = require_roles("kepala_badan", "sekretaris", "auditor")

CLOCK_SKEW = timedelta(minutes=5)


# ---------------------------------------------------------------------------------------------------
# Step 11: distribution and receipts
# ---------------------------------------------------------------------------------------------------


class DistributionCreate(BaseModel):
    """Distribute the signed Renja: name the signed version and hash (versions bind, DESIGN.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 3,
                    "content_sha256": "1a2fc26dc7ea5a2a4748b7cb2b1ef193d96ab2c99f93092f69e63075b28d1278",
                    "additional_recipients": [
                        {
                            "name": "Badan Pengelolaan Keuangan dan Aset Daerah Kota Bogor",
                            "unit": "BPKAD",
                            "email": "bpkad@bogor.example",
                            "copies": 1,
                        }
                    ],
                },
                {"version": 3, "content_sha256": "1a2fc26dc7ea5a2a4748b7cb2b1ef193d96ab2c99f93092f69e63075b28d1278"},
            ]
        }
    )

    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    additional_recipients: list[Recipient] = Field(
        default_factory=list, description="beyond the SOP file's distribution list"
    )


class DistributionCreated(BaseModel):
    renja_id: UUID
    distribution_id: UUID
    archive_ref: str
    recipients: list[str]
    events: list[dict[str, str]]


class ReceiptCreate(BaseModel):
    """A recipient's acknowledgement, recorded by the staff on the recipient's behalf."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipient": "Inspektorat Kota Bogor",
                    "received_by": "Rina Marlina, S.H. (fiktif)",
                    "received_at": "2025-04-02T03:15:00Z",
                }
            ]
        }
    )

    recipient: str = Field(min_length=1, description="the recipient's name as in the distribution")
    received_by: str = Field(default="", description="the person who signed for it")
    received_at: UtcDatetime = Field(description="when it was received (with zone; stored UTC)")


class ReceiptConfirm(BaseModel):
    """A recipient's own acknowledgement through the link in their distribution mail."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"received_by": "Hadi Santoso, S.T. (fiktif)", "received_at": "2025-04-02T04:30:00Z"},
                {"received_by": "Hadi Santoso, S.T. (fiktif)"},
            ]
        }
    )

    received_by: str = Field(min_length=1, description="your name")
    received_at: UtcDatetime | None = Field(default=None, description="UTC; default: now")


class RecipientPublic(BaseModel):
    name: str
    unit: str
    email: str
    copies: int
    mail_status: Literal["none", "pending", "sent", "failed"]
    received: bool
    received_at: datetime | None
    received_by: str | None
    recorded_by: str | None


class DistributionPublic(BaseModel):
    """The *bukti distribusi*: who got the signed Renja, and who acknowledged it."""

    renja_id: UUID
    distribution_id: UUID
    version: int
    content_sha256: str
    archive_ref: str
    distributed_by: str
    distributed_at: datetime
    complete: bool = Field(description="every recipient acknowledged receipt")
    recipients: list[RecipientPublic]


class ReceiptTokenPublic(BaseModel):
    renja_id: UUID
    distribution_id: UUID
    recipient: str
    received_at: datetime | None


def _received_at(value: datetime | None, now: datetime) -> datetime:
    if value is None:
        return now
    if value > now + CLOCK_SKEW:
        raise HTTPException(422, "received_at is in the future; give the moment the Renja was received (UTC).")
    return value


def _events(events: Any) -> list[dict[str, str]]:
    return [{"event_id": str(e.event_id), "type": e.event_type} for e in events]


async def _known_state(request: Request, renja_id: UUID) -> RenjaState:
    async with runtime(request).require_pool().acquire() as conn:
        state, version = await load_state(conn, renja_id)
    if version == 0:
        raise HTTPException(404, f"Renja {renja_id} is not known to the notifier (yet).")
    return state


@router.post(
    "/renja/{renja_id}/distribution",
    status_code=201,
    response_model=DistributionCreated,
    tags=["step 11"],
    summary="Step 11 — copy, archive and distribute the signed Renja (staf)",
    responses={**COMMAND_ERRORS, 409: {"model": ErrorBody, "description": "not signed / stale hash"}},
)
async def distribute(
    renja_id: UUID, body: DistributionCreate, request: Request, actor: Annotated[Actor, Depends(PELAKSANA)]
) -> JSONResponse:
    """Send the signed version to the SOP file's distribution list (plus ``additional_recipients``).

    Each recipient with an e-mail address gets the archive reference and a personal receipt link. The
    decider refuses (409) unless step 11 is due and the version and SHA-256 are the signed ones.
    """
    rt = runtime(request)
    state = await _known_state(request, renja_id)
    recipients = [r.to_event_recipient() for r in rt.sop.distribution] + list(body.additional_recipients)
    command = Distribute(
        # Derived, not random: a retried request (Idempotency-Key) must name the same command, and a Renja
        # has one distribution of its signed version.
        distribution_id=uuid5(renja_id, f"distribution:{body.version}:{body.content_sha256}"),
        version=body.version,
        content_sha256=body.content_sha256,
        archive_ref=archive_ref(state.opd, state.fiscal_year, body.content_sha256),
        recipients=tuple(recipients),
    )
    tokens = {r.name: secrets.token_urlsafe(24) for r in recipients}

    def respond(events: Any, _: RenjaState) -> dict[str, Any]:
        return DistributionCreated(
            renja_id=renja_id,
            distribution_id=command.distribution_id,
            archive_ref=command.archive_ref,
            recipients=[r.name for r in recipients],
            events=_events(events),
        ).model_dump(mode="json")

    return await run_command(
        request,
        actor,
        renja_id,
        command,
        respond=respond,
        effect=distribution_effect(rt, tokens),
    )


@router.post(
    "/renja/{renja_id}/distribution/receipts",
    status_code=201,
    tags=["step 11"],
    summary="Step 11 — record a recipient's receipt, once per recipient (staf)",
    responses={**COMMAND_ERRORS, 409: {"model": ErrorBody, "description": "already recorded, or not distributed"}},
)
async def record_receipt(
    renja_id: UUID, body: ReceiptCreate, request: Request, actor: Annotated[Actor, Depends(PELAKSANA)]
) -> JSONResponse:
    """One ``ReceiptRecorded`` per recipient (a second → 409 ``already_recorded``)."""
    state = await _known_state(request, renja_id)
    now = datetime.now(UTC)
    command = RecordReceipt(
        # Before distribution there is no id; the decider then answers 409 "not distributed yet".
        distribution_id=state.distribution_id or UUID(int=0),
        recipient=body.recipient,
        received_at=_received_at(body.received_at, now),
        received_by=body.received_by,
    )
    return await run_command(request, actor, renja_id, command)


@router.get(
    "/renja/{renja_id}/distribution",
    response_model=DistributionPublic,
    tags=["step 11"],
    summary="Step 11 — bukti distribusi: recipients, mail status, receipts (any role)",
)
async def get_distribution(
    renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> DistributionPublic:
    async with runtime(request).require_pool().acquire() as conn:
        found = await store.distribution_of(conn, renja_id)
    if found is None:
        raise HTTPException(404, f"Renja {renja_id} has not been distributed (step 11) yet.")
    head, rows = found
    recipients = [RecipientPublic(**r, received=r["received_at"] is not None) for r in rows]
    return DistributionPublic(
        renja_id=renja_id,
        distribution_id=head["distribution_id"],
        version=head["version"],
        content_sha256=head["content_sha256"],
        archive_ref=head["archive_ref"],
        distributed_by=head["distributed_by"],
        distributed_at=head["distributed_at"],
        complete=all(r.received for r in recipients),
        recipients=recipients,
    )


async def _token_holder(request: Request, token: str) -> store.TokenHolder:
    async with runtime(request).require_pool().acquire() as conn:
        holder = await store.find_token(conn, token_sha256(token))
    if holder is None:
        raise HTTPException(404, "This receipt link is not valid; use the link from your distribution mail.")
    return holder


@router.get(
    "/receipts/{token}",
    response_model=ReceiptTokenPublic,
    tags=["step 11"],
    summary="Step 11 — what a receipt link acknowledges (the link's holder; the token is the credential)",
)
async def get_receipt_link(token: str, request: Request) -> ReceiptTokenPublic:
    holder = await _token_holder(request, token)
    return ReceiptTokenPublic(
        renja_id=holder.renja_id,
        distribution_id=holder.distribution_id,
        recipient=holder.name,
        received_at=holder.received_at,
    )


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
async def confirm_receipt(token: str, body: ReceiptConfirm, request: Request) -> JSONResponse:
    """The recipient acts without an agency account: the event's actor is ``system`` on their behalf,
    named after ``received_by`` (the decider accepts receipts from the step's role or ``system``)."""
    holder = await _token_holder(request, token)
    now = datetime.now(UTC)
    actor = Actor(
        user_id=f"receipt-link:{holder.distribution_id}:{token_sha256(token)[:16]}",
        name=body.received_by,
        nip="-",
        role="system",
    )
    command = RecordReceipt(
        distribution_id=holder.distribution_id,
        recipient=holder.name,
        received_at=_received_at(body.received_at, now),
        received_by=body.received_by,
    )
    return await run_command(request, actor, holder.renja_id, command)


# ---------------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------------


class WebhookCreate(BaseModel):
    """Subscribe a URL to Renja events; deliveries are signed with Standard Webhooks headers."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://sipd.bogor.example/hooks/renja",
                    "event_types": ["renja.Signed.v1", "renja.Distributed.v1"],
                    "description": "Sinkronisasi Renja yang ditandatangani ke aplikasi perencanaan daerah",
                },
                {"url": "https://dashboard.bappeda.bogor.example/renja-events", "event_types": ["*"]},
            ]
        }
    )

    url: str = Field(min_length=8, max_length=2000, description="http(s) URL receiving POSTs")
    event_types: list[str] = Field(
        min_length=1, description="CloudEvents types such as renja.Signed.v1, or '*' for all"
    )
    description: str = Field(default="", max_length=500)


class WebhookPublic(BaseModel):
    id: UUID
    url: str
    event_types: list[str]
    description: str
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="whsec_…: shown once; verify webhook-signature with it (Standard Webhooks)")


class WebhookDeliveryPublic(BaseModel):
    id: int
    event_id: UUID
    event_type: str
    renja_id: UUID
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


async def _check_webhook(body: WebhookCreate, production: bool) -> None:
    """422 unless ``body.url`` is an absolute http(s) URL (https only in production) whose host is not
    internal in production (``targets.check_webhook_target``), and every event type is known."""
    parts = urlsplit(body.url)
    allowed = ("https",) if production else ("http", "https")
    if parts.scheme not in allowed or not parts.hostname:
        raise HTTPException(422, f"url must be an absolute {' or '.join(allowed)} URL, e.g. https://host/hook.")
    try:
        await check_webhook_target(body.url, production=production)
    except ForbiddenTarget as exc:
        raise HTTPException(422, str(exc)) from exc
    unknown = sorted(t for t in set(body.event_types) if t != "*" and t not in EVENT_TYPES)
    if unknown:
        raise HTTPException(
            422, f"Unknown event type(s) {', '.join(unknown)}; use '*' or some of: {', '.join(sorted(EVENT_TYPES))}."
        )


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
    body: WebhookCreate, request: Request, actor: Annotated[Actor, Depends(WEBHOOK_ADMIN)]
) -> WebhookCreated:
    """Events consumed from now on that match ``event_types`` are POSTed, signed (Standard Webhooks)."""
    rt = runtime(request)
    await _check_webhook(body, rt.settings.environment == "production")
    hook = WebhookCreated(
        id=uuid4(),
        url=body.url,
        event_types=sorted(set(body.event_types)),
        description=body.description,
        created_by=f"{actor.name} ({actor.role})",
        created_at=datetime.now(UTC),
        secret=signing.make_secret(secrets.token_bytes(signing.SECRET_BYTES)),
    )
    async with rt.require_pool().acquire() as conn:
        await conn.execute(
            "INSERT INTO webhook_subscriptions (id, url, event_types, secret, description, created_by, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            hook.id,
            hook.url,
            hook.event_types,
            hook.secret,
            hook.description,
            hook.created_by,
            hook.created_at,
        )
    return hook


@router.get(
    "/webhooks",
    response_model=list[WebhookPublic],
    tags=["webhooks"],
    summary="Active webhook subscriptions, without secrets (kepala_badan, sekretaris, auditor)",
)
async def list_webhooks(request: Request, _: Annotated[Actor, Depends(WEBHOOK_READ)]) -> list[WebhookPublic]:
    async with runtime(request).require_pool().acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, url, event_types, description, created_by, created_at FROM webhook_subscriptions"
            " WHERE deleted_at IS NULL ORDER BY created_at"
        )
    return [WebhookPublic(**dict(r)) for r in rows]


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
async def delete_webhook(webhook_id: UUID, request: Request, _: Annotated[Actor, Depends(WEBHOOK_ADMIN)]) -> Response:
    async with runtime(request).require_pool().acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            "UPDATE webhook_subscriptions SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING 1",
            webhook_id,
        )
        if done is None:
            raise HTTPException(404, f"No active webhook {webhook_id}.")
        await conn.execute(
            "UPDATE webhook_deliveries SET failed_at = now(), last_error = 'subscription deleted'"
            " WHERE subscription_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
            webhook_id,
        )
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=list[WebhookDeliveryPublic],
    tags=["webhooks"],
    summary="Deliveries of one subscription with attempts and errors (kepala_badan, sekretaris, auditor)",
)
async def list_deliveries(
    webhook_id: UUID, request: Request, _: Annotated[Actor, Depends(WEBHOOK_READ)]
) -> list[WebhookDeliveryPublic]:
    async with runtime(request).require_pool().acquire() as conn:
        if await conn.fetchval("SELECT 1 FROM webhook_subscriptions WHERE id = $1", webhook_id) is None:
            raise HTTPException(404, f"No webhook {webhook_id}.")
        rows = await conn.fetch(
            "SELECT id, event_id, event_type, renja_id, attempts, last_status, last_error, created_at,"
            " next_attempt_at, delivered_at, failed_at FROM webhook_deliveries WHERE subscription_id = $1"
            " ORDER BY id",
            webhook_id,
        )
    return [
        WebhookDeliveryPublic(
            **dict(r),
            status="delivered" if r["delivered_at"] else "failed" if r["failed_at"] else "pending",
        )
        for r in rows
    ]
