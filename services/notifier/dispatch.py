"""Delivery of what the transactions queued: mails over SMTP (aiosmtplib) and webhooks over HTTP (httpx).

Invariants:
- a row is marked ``sent_at``/``delivered_at`` only after the SMTP server accepted the message or the
  subscriber answered 2xx — delivery is at-least-once; a crash between acceptance and marking re-sends
  the same ``Message-ID`` / ``webhook-id`` after the claim lease, so receivers can drop the duplicate;
- a failed try is retried after ``retry_base_seconds * 2**(attempts-1)`` (capped at
  ``retry_max_seconds``) until ``mail_max_attempts`` / ``webhook_max_attempts``, then ``failed_at`` is set
  (an SMTP 5xx answer fails at once: retrying a permanent refusal only delays the bad news);
- each loop survives database and network errors: it logs, backs off and goes on until cancelled.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib
import asyncpg
import httpx
import structlog

from services.notifier import signing, store
from services.notifier.messages import backoff_seconds, build_email
from services.notifier.settings import NotifierSettings
from shared import tracing

log = structlog.get_logger(__name__)

USER_AGENT = "renja-notifier/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one try: ``ok``, or an error text, and whether retrying could help."""

    ok: bool
    error: str | None = None
    status: int | None = None
    permanent: bool = False


async def send_mail(settings: NotifierSettings, row: asyncpg.Record) -> Outcome:
    """Hand one queued mail to the SMTP server at ``mail_host:mail_port``."""
    message = build_email(
        row["recipient"],
        row["subject"],
        row["body"],
        mail_from=settings.mail_from,
        message_id=f"<{row['event_id']}.{row['id']}@renja-notifier>",
    )
    try:
        await aiosmtplib.send(
            message, hostname=settings.mail_host, port=settings.mail_port, timeout=settings.mail_timeout_s
        )
    except aiosmtplib.SMTPResponseException as exc:
        return Outcome(False, f"SMTP {exc.code}: {exc.message}", exc.code, permanent=500 <= exc.code < 600)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}")
    return Outcome(True, status=250)


async def post_webhook(client: httpx.AsyncClient, settings: NotifierSettings, row: asyncpg.Record) -> Outcome:
    """POST one delivery, signed for this attempt's timestamp (Standard Webhooks)."""
    body: bytes = row["body"]
    headers = signing.headers(row["secret"], str(row["event_id"]), int(time.time()), body)
    headers.update({"content-type": "application/cloudevents+json", "user-agent": USER_AGENT})
    stored = _trace_of(body)
    try:
        with tracing.client_span("POST webhook", stored.get("traceparent"), stored.get("tracestate")) as trace_headers:
            headers.update(trace_headers)
            response = await client.post(row["url"], content=body, headers=headers, timeout=settings.webhook_timeout_s)
    except httpx.HTTPError as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}")
    if 200 <= response.status_code < 300:
        return Outcome(True, status=response.status_code)
    return Outcome(False, f"HTTP {response.status_code}: {response.text[:200]}", response.status_code)


def _trace_of(body: bytes) -> dict[str, str]:
    """The W3C trace context a queued webhook body carries (its CloudEvents tracing extension), if any."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(envelope, dict):
        return {}
    return {k: envelope[k] for k in ("traceparent", "tracestate") if isinstance(envelope.get(k), str)}


async def record_outcome(
    conn: asyncpg.Connection,
    settings: NotifierSettings,
    table: str,
    done_column: str,
    row: asyncpg.Record,
    outcome: Outcome,
    max_attempts: int,
) -> None:
    """Mark the row done, or schedule its retry, or mark it failed after ``max_attempts`` tries.

    A failure is recorded only if the row still carries this try's attempt count: when the lease ran out
    and another dispatcher re-claimed it, that newer try owns the row.
    """
    assert table in ("outbound_messages", "webhook_deliveries") and done_column in ("sent_at", "delivered_at")
    if outcome.ok:
        await conn.execute(
            f"UPDATE {table} SET {done_column} = now(), last_error = NULL, last_status = $2 WHERE id = $1",
            row["id"],
            outcome.status,
        )
        return
    attempts = int(row["attempts"])
    give_up = outcome.permanent or attempts >= max_attempts
    delay = backoff_seconds(attempts, base=settings.retry_base_seconds, cap=settings.retry_max_seconds)
    if give_up:
        await conn.execute(
            f"UPDATE {table} SET failed_at = now(), last_error = $3, last_status = $4 WHERE id = $1 AND attempts = $2",
            row["id"],
            attempts,
            outcome.error,
            outcome.status,
        )
    else:
        await conn.execute(
            f"UPDATE {table} SET next_attempt_at = now() + make_interval(secs => $5), last_error = $3,"
            " last_status = $4 WHERE id = $1 AND attempts = $2",
            row["id"],
            attempts,
            outcome.error,
            outcome.status,
            delay,
        )
    log.warning(
        "delivery_failed",
        table=table,
        row_id=row["id"],
        attempts=attempts,
        gave_up=give_up,
        retry_in_s=None if give_up else delay,
        error=outcome.error,
    )


async def dispatch_mail_once(pool: asyncpg.Pool, settings: NotifierSettings) -> int:
    """Claim and try one batch of due mails; returns how many were tried."""
    async with pool.acquire() as conn:
        skipped = await store.skip_superseded(conn)
        if skipped:
            log.info("next_actor_mails_superseded", count=skipped)
        rows = await store.due_rows(
            conn,
            "outbound_messages",
            batch=settings.dispatch_batch_max,
            lease_seconds=settings.claim_lease_seconds,
        )
    if not rows:
        return 0
    outcomes = await asyncio.gather(*(send_mail(settings, row) for row in rows))
    async with pool.acquire() as conn:
        for row, outcome in zip(rows, outcomes, strict=True):
            await record_outcome(
                conn, settings, "outbound_messages", "sent_at", row, outcome, settings.mail_max_attempts
            )
            if outcome.ok:
                log.info("mail_sent", row_id=row["id"], kind=row["kind"], attempts=row["attempts"])
    return len(rows)


async def dispatch_webhooks_once(pool: asyncpg.Pool, settings: NotifierSettings, client: httpx.AsyncClient) -> int:
    """Claim and try one batch of due webhook deliveries; returns how many were tried."""
    async with pool.acquire() as conn:
        claimed = await store.due_rows(
            conn,
            "webhook_deliveries",
            batch=settings.dispatch_batch_max,
            lease_seconds=settings.claim_lease_seconds,
        )
        if not claimed:
            return 0
        subs = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, url, secret FROM webhook_subscriptions WHERE id = ANY($1::uuid[])",
                list({row["subscription_id"] for row in claimed}),
            )
        }
    rows = [
        {**dict(row), "url": subs[row["subscription_id"]]["url"], "secret": subs[row["subscription_id"]]["secret"]}
        for row in claimed
    ]
    outcomes = await asyncio.gather(*(post_webhook(client, settings, row) for row in rows))
    async with pool.acquire() as conn:
        for row, outcome in zip(claimed, outcomes, strict=True):
            await record_outcome(
                conn, settings, "webhook_deliveries", "delivered_at", row, outcome, settings.webhook_max_attempts
            )
            if outcome.ok:
                log.info("webhook_delivered", row_id=row["id"], event_id=str(row["event_id"]), attempts=row["attempts"])
    return len(rows)


async def _loop(name: str, settings: NotifierSettings, once: Callable[[], Awaitable[int]]) -> None:
    failures = 0
    while True:
        try:
            tried = await once()
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the loop must outlive a database restart or a bad row
            failures += 1
            tried = 0
            log.warning("dispatcher_error", dispatcher=name, error=repr(exc), failures=failures)
            await asyncio.sleep(backoff_seconds(failures, base=settings.dispatch_poll_seconds, cap=30.0))
        if tried == 0:
            await asyncio.sleep(settings.dispatch_poll_seconds)


async def run_mail_dispatcher(pool: asyncpg.Pool, settings: NotifierSettings) -> None:
    """Send queued mails until cancelled."""
    await _loop("mail", settings, lambda: dispatch_mail_once(pool, settings))


async def run_webhook_dispatcher(pool: asyncpg.Pool, settings: NotifierSettings) -> None:
    """Deliver queued webhooks until cancelled (the HTTP client closes with the task)."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        await _loop("webhooks", settings, lambda: dispatch_webhooks_once(pool, settings, client))
