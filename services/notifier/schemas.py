"""Request and response models of the notifier: step 11 (distribution, receipts, *bukti distribusi*) and
webhook subscriptions with their deliveries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events import Recipient
from shared.events.models import Sha256Hex, UtcDatetime


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


class TimerPublic(BaseModel):
    """One step timer (mutu baku): a reminder or the deadline of one step occurrence. Instants are those
    of the service clock (simulated in development), UTC."""

    renja_id: UUID
    step: int
    kind: Literal["reminder", "overdue"]
    role: str
    due_since: datetime = Field(description="when the step became due (the occurrence)")
    standard_minutes: int = Field(description="the step's mutu baku, working minutes")
    fire_at: datetime = Field(description="when the timer fires")
    due_at: datetime = Field(description="the step's deadline")
    status: Literal["pending", "fired", "cancelled"]
    fired_at: datetime | None = None
    fired_event_id: UUID | None = None
    fired_by: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = Field(default=None, description="completed, returned, cancelled or stale")

    @classmethod
    def of(cls, row: dict[str, object]) -> TimerPublic:
        status = "fired" if row["fired_at"] else "cancelled" if row["cancelled_at"] else "pending"
        fields = {k: row[k] for k in cls.model_fields if k != "status" and k in row}
        return cls.model_validate({**fields, "status": status})


class TimersHealth(BaseModel):
    """The scheduler's view: pending timers, those late to fire (due more than ``late_after_seconds`` wall
    seconds ago and not fired), whether this instance leads, and the service clock's now."""

    healthy: bool
    leader: bool
    pending: int
    late: int
    late_after_seconds: float
    now: datetime
