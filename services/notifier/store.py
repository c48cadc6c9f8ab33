"""SQL of the notifier's own tables (see ``migrations/0001_notifier.py``). Every function takes a connection
that the caller holds inside a transaction where atomicity matters; none commits on its own.

Unique keys do the de-duplication: ``outbound_messages (event_id, channel, recipient)``,
``webhook_deliveries (subscription_id, event_id)``, ``distribution_recipients (distribution_id, name)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.notifier.messages import MailDraft, subscription_matches, webhook_body
from services.notifier.schemas import WebhookCreated, WebhookDeliveryPublic, WebhookPublic
from shared import tracing
from shared.events import Distributed, Event, ReceiptRecorded

EMAIL = "email"


async def queue_mail(conn: asyncpg.Connection, event: Event, draft: MailDraft, *, due_step: int | None = None) -> bool:
    """Insert one mail into the outbox; False if this (event, channel, recipient) was already queued.

    ``due_step`` marks a next-actor mail with the step it announces (see ``skip_superseded``).
    """
    done = await conn.fetchval(
        "INSERT INTO outbound_messages (event_id, renja_id, channel, kind, due_step, recipient, subject, body)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING 1",
        event.event_id,
        event.renja_id,
        EMAIL,
        draft.kind,
        due_step,
        draft.to,
        draft.subject,
        draft.body,
    )
    return done is not None


async def queue_webhooks(conn: asyncpg.Connection, event: Event) -> int:
    """Queue one delivery per live subscription that wants ``event``; returns how many were new."""
    subs = await conn.fetch("SELECT id, event_types FROM webhook_subscriptions WHERE deleted_at IS NULL")
    wanted = [s["id"] for s in subs if subscription_matches(list(s["event_types"]), event.event_type)]
    if not wanted:
        return 0
    body = webhook_body(event, *tracing.current_context())  # the trace of the event's handling goes along
    rows = await conn.fetch(
        "INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, renja_id, body)"
        " SELECT s, $2, $3, $4, $5 FROM unnest($1::uuid[]) AS s ON CONFLICT DO NOTHING RETURNING id",
        wanted,
        event.event_id,
        event.event_type,
        event.renja_id,
        body,
    )
    return len(rows)


async def last_notice(conn: asyncpg.Connection, renja_id: UUID) -> tuple[int | None, datetime | None] | None:
    """The (due step, due since) last considered for a next-actor mail, or None if never."""
    row = await conn.fetchrow("SELECT due_step, due_since FROM due_notices WHERE renja_id = $1", renja_id)
    return None if row is None else (row["due_step"], row["due_since"])


async def save_notice(
    conn: asyncpg.Connection, renja_id: UUID, due_step: int | None, due_since: datetime | None, event_id: UUID
) -> None:
    await conn.execute(
        "INSERT INTO due_notices (renja_id, due_step, due_since, event_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (renja_id) DO UPDATE SET due_step = $2, due_since = $3, event_id = $4",
        renja_id,
        due_step,
        due_since,
        event_id,
    )


async def project_distribution(conn: asyncpg.Connection, event: Distributed) -> None:
    """Record a ``Distributed`` event (idempotent: a replay of the log finds the rows already there)."""
    await conn.execute(
        "INSERT INTO distributions VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        event.distribution_id,
        event.renja_id,
        event.event_id,
        event.version,
        event.content_sha256,
        event.archive_ref,
        f"{event.actor.name} ({event.actor.nip})",
        event.occurred_at,
    )
    await conn.executemany(
        "INSERT INTO distribution_recipients (distribution_id, position, name, unit, email, copies)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        [(event.distribution_id, i, r.name, r.unit, r.email, r.copies) for i, r in enumerate(event.recipients)],
    )


async def attach_receipt_token(
    conn: asyncpg.Connection, distribution_id: UUID, name: str, token_sha256: str, mail_to: str | None
) -> None:
    await conn.execute(
        "UPDATE distribution_recipients SET token_sha256 = $3, mail_to = $4 WHERE distribution_id = $1 AND name = $2",
        distribution_id,
        name,
        token_sha256,
        mail_to,
    )


async def project_receipt(conn: asyncpg.Connection, event: ReceiptRecorded) -> None:
    """Record a ``ReceiptRecorded`` event on its recipient row (the first receipt wins, as in the decider)."""
    await conn.execute(
        "UPDATE distribution_recipients SET received_at = $3, received_by = $4, recorded_by = $5,"
        " receipt_event_id = $6 WHERE distribution_id = $1 AND name = $2 AND received_at IS NULL",
        event.distribution_id,
        event.recipient,
        event.received_at,
        event.received_by,
        f"{event.actor.name} ({event.actor.role})",
        event.event_id,
    )


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Whom a receipt token belongs to."""

    renja_id: UUID
    distribution_id: UUID
    name: str
    received_at: datetime | None


async def find_token(conn: asyncpg.Connection, token_sha256: str) -> TokenHolder | None:
    row = await conn.fetchrow(
        "SELECT d.renja_id, r.distribution_id, r.name, r.received_at FROM distribution_recipients r"
        " JOIN distributions d USING (distribution_id) WHERE r.token_sha256 = $1",
        token_sha256,
    )
    return None if row is None else TokenHolder(**dict(row))


async def distribution_of(
    conn: asyncpg.Connection, renja_id: UUID
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The distribution of a Renja and its recipients (with receipt and mail status), or None."""
    head = await conn.fetchrow("SELECT * FROM distributions WHERE renja_id = $1", renja_id)
    if head is None:
        return None
    rows = await conn.fetch(
        """SELECT r.name, r.unit, r.email, r.copies, r.received_at, r.received_by, r.recorded_by,
                  CASE WHEN m.id IS NULL THEN 'none'
                       WHEN m.sent_at IS NOT NULL THEN 'sent'
                       WHEN m.failed_at IS NOT NULL OR m.skipped_at IS NOT NULL THEN 'failed'
                       ELSE 'pending' END AS mail_status
           FROM distribution_recipients r
           LEFT JOIN outbound_messages m
             ON m.event_id = $2 AND m.channel = 'email' AND m.recipient = r.mail_to
           WHERE r.distribution_id = $1 ORDER BY r.position""",
        head["distribution_id"],
        head["event_id"],
    )
    return dict(head), [dict(r) for r in rows]


async def insert_subscription(conn: asyncpg.Connection, hook: WebhookCreated) -> None:
    """Store a new webhook subscription with its signing secret."""
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


async def active_subscriptions(conn: asyncpg.Connection) -> list[WebhookPublic]:
    """The live (not deleted) subscriptions, oldest first, without their secrets."""
    rows = await conn.fetch(
        "SELECT id, url, event_types, description, created_by, created_at FROM webhook_subscriptions"
        " WHERE deleted_at IS NULL ORDER BY created_at"
    )
    return [WebhookPublic(**dict(r)) for r in rows]


async def delete_subscription(conn: asyncpg.Connection, webhook_id: UUID) -> bool:
    """Mark a live subscription deleted and fail its pending deliveries (history kept); False if there was
    no live subscription with this id. Call it inside a transaction: both updates belong together."""
    done = await conn.fetchval(
        "UPDATE webhook_subscriptions SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING 1",
        webhook_id,
    )
    if done is None:
        return False
    await conn.execute(
        "UPDATE webhook_deliveries SET failed_at = now(), last_error = 'subscription deleted'"
        " WHERE subscription_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
        webhook_id,
    )
    return True


async def deliveries_of(conn: asyncpg.Connection, webhook_id: UUID) -> list[WebhookDeliveryPublic] | None:
    """The deliveries of a subscription (deleted ones included), oldest first; None if it never existed."""
    if await conn.fetchval("SELECT 1 FROM webhook_subscriptions WHERE id = $1", webhook_id) is None:
        return None
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


async def skip_superseded(conn: asyncpg.Connection) -> int:
    """Drop unsent next-actor mails whose step is no longer the one due (returns how many).

    When the consumer catches up on a burst of events (lag, replay), every intermediate step was queued;
    only the step due now is worth a person's attention. The rows stay, marked ``skipped_at``.
    """
    rows = await conn.fetch(
        """UPDATE outbound_messages m SET skipped_at = now(),
                  last_error = 'superseded: step ' || m.due_step || ' is no longer due'
           FROM due_notices d
           WHERE m.kind = 'next_actor' AND m.sent_at IS NULL AND m.failed_at IS NULL AND m.skipped_at IS NULL
             AND d.renja_id = m.renja_id AND d.due_step IS DISTINCT FROM m.due_step
           RETURNING m.id"""
    )
    return len(rows)


OPEN_ROWS: dict[str, str] = {
    "outbound_messages": "sent_at IS NULL AND failed_at IS NULL AND skipped_at IS NULL",
    "webhook_deliveries": "delivered_at IS NULL AND failed_at IS NULL",
}


async def due_rows(conn: asyncpg.Connection, table: str, *, batch: int, lease_seconds: float) -> list[asyncpg.Record]:
    """Claim up to ``batch`` due rows of ``table`` (outbound_messages or webhook_deliveries) for one try.

    The claim counts the attempt and pushes ``next_attempt_at`` one lease ahead, so a dispatcher that dies
    mid-send leaves the row to be retried after the lease; ``SKIP LOCKED`` lets several replicas share the
    work without waiting on each other.
    """
    open_rows = OPEN_ROWS[table]  # also the whitelist: table names are never user input
    return list(
        await conn.fetch(
            f"""UPDATE {table} SET attempts = attempts + 1,
                       next_attempt_at = now() + make_interval(secs => $2)
                WHERE id IN (SELECT id FROM {table}
                             WHERE {open_rows} AND next_attempt_at <= now()
                             ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
                RETURNING *""",
            batch,
            lease_seconds,
        )
    )
