"""The transactional-outbox relay: publishes a service's unpublished events to Kafka, in order, at least once.

Invariants:
- one active relay per service database: leadership is a session-level ``pg_try_advisory_lock``; a second
  instance waits until the leader's connection is gone;
- rows are selected by the ``published_at IS NULL`` flag (never an ``id > last_seen`` cursor: sequence
  values commit out of order, so a late commit with a lower ``seq`` is still found on the next pass);
- a batch is sent with the idempotent producer and marked ``published_at`` only after every record in it
  was acknowledged (``acks=all``); a crash in between re-sends, and consumers de-duplicate by event id;
- ``LISTEN outbox_<service>`` is only a wake-up hint; polling every ``poll_seconds`` is the guarantee;
- Kafka or Postgres going away is survived: the relay backs off and reconnects by itself;
- a row the broker refuses for good (too large for the broker: ``PERMANENT_ERRORS``) never blocks the
  others: it is set aside with ``publish_error``/``publish_failed_at`` (an operator's alarm, reported by
  ``/readyz``), and the later rows of the same Renja wait behind it so that Renja's order is kept, while
  every other Renja goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from shared.cloudevents import OUTBOX_COLUMNS, record_from_row
from shared.eventstore import notify_channel
from shared.kafka import start_producer
from shared.retry import keep_running

log = structlog.get_logger(__name__)

AfterAck = Callable[[list[int]], Awaitable[None]]

PERMANENT_ERRORS: tuple[type[Exception], ...] = (MessageSizeTooLargeError, RecordTooLargeError)
"""Send errors that no retry can cure for that record (anything else is retried with backoff)."""


def advisory_key(service: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``outbox relay <service>``."""
    digest = hashlib.sha256(f"renja outbox relay {service}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class OutboxRelay:
    """Publish ``events`` rows with ``published_at IS NULL`` to ``topic``; see the module invariants.

    ``after_ack`` is a seam for crash tests: it runs after the broker acknowledged a batch and before the
    rows are marked, with the batch's ``seq`` values.
    """

    def __init__(
        self,
        *,
        dsn: str,
        service: str,
        bootstrap: str,
        topic: str,
        batch_max: int = 500,
        poll_seconds: float = 1.0,
        after_ack: AfterAck | None = None,
        dataschema_base: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.dataschema_base = dataschema_base  # where ce_dataschema points (the service's settings)
        self.service = service
        self.bootstrap = bootstrap
        self.topic = topic
        self.batch_max = batch_max
        self.poll_seconds = poll_seconds
        self.after_ack = after_ack
        self.is_leader = False
        self.published_total = 0
        self.failures_total = 0
        """Times the relay lost its connection or a send failed and it had to back off and restart."""
        self.set_aside_total = 0
        """Rows the broker refused for good (``PERMANENT_ERRORS``), set aside for an operator."""
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled: take leadership, then publish; on any failure back off and retry."""

        def restarting(error: BaseException, wait_s: float) -> None:
            self.is_leader = False
            self.failures_total += 1
            log.warning("outbox_relay_restarting", error=repr(error), backoff_s=wait_s)

        await keep_running(self._lead_and_publish, retry_on=(Exception,), on_retry=restarting)

    async def _lead_and_publish(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        producer: AIOKafkaProducer | None = None
        try:
            key = advisory_key(self.service)
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                await asyncio.sleep(self.poll_seconds)
            self.is_leader = True
            log.info("outbox_relay_leader", service=self.service)
            await conn.add_listener(notify_channel(self.service), self._on_notify)
            producer = await start_producer(self.bootstrap, client_id=f"{self.service}-relay")
            while True:
                await self.publish_until_short(conn, producer)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
        finally:
            self.is_leader = False
            if producer is not None:
                await producer.stop()
            await conn.close(timeout=5)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def publish_pending(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Send one batch of unpublished events and mark it; returns how many were published."""
        rows = await self._fetch(conn, [])
        if not rows:
            return 0
        seqs, refused = await self._send(producer, rows)
        await self._set_aside(conn, refused)
        await self._mark(conn, seqs)
        return len(rows)

    async def publish_until_short(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Publish batch after batch until one comes back short of ``batch_max``; returns how many.

        Same guarantees as :meth:`publish_pending` one batch at a time (each batch is marked only after all
        of its records were acknowledged, and batches are sent in ``seq`` order), but batch *n* is marked
        while batch *n + 1* is being sent: the UPDATE (server work) overlaps the sends and the broker's
        acks. Batch *n + 1* is selected before batch *n* is marked, so batch *n*'s rows are left out of that
        one query by their ``seq`` values (an exclusion list, not a cursor: a late commit with a lower
        ``seq`` is still found).
        """
        total = 0
        marking: asyncio.Task[None] | None = None
        try:
            rows = await self._fetch(conn, [])
            while rows:
                seqs, refused = await self._send(producer, rows)
                if marking is not None:
                    await marking  # the previous batch: acknowledged before this one was even selected
                    marking = None
                await self._set_aside(conn, refused)  # before the next select, which must skip their streams
                total += len(rows)
                next_rows = await self._fetch(conn, seqs) if len(rows) >= self.batch_max else []
                marking = asyncio.create_task(self._mark(conn, seqs))
                rows = next_rows
            if marking is not None:
                await marking
                marking = None
        finally:
            if marking is not None:
                # the batch in flight was acknowledged: let its mark finish; if it fails, its rows are sent
                # again later (at least once; consumers de-duplicate by event id)
                with contextlib.suppress(Exception):
                    await marking
        return total

    async def _fetch(self, conn: asyncpg.Connection, in_flight: list[int]) -> list[asyncpg.Record]:
        """The next ``batch_max`` unpublished rows in ``seq`` order, leaving out the ``in_flight`` seqs."""
        return list(
            await conn.fetch(
                f"SELECT {OUTBOX_COLUMNS}"
                " FROM events e WHERE published_at IS NULL AND publish_failed_at IS NULL"
                " AND seq <> ALL($2::bigint[])"
                " AND NOT EXISTS (SELECT 1 FROM events f WHERE f.stream_id = e.stream_id"
                "                 AND f.publish_failed_at IS NOT NULL AND f.published_at IS NULL)"
                " ORDER BY seq LIMIT $1",
                self.batch_max,
                in_flight,
            )
        )

    async def _send(
        self, producer: AIOKafkaProducer, rows: list[asyncpg.Record]
    ) -> tuple[list[int], list[tuple[asyncpg.Record, str]]]:
        """Send ``rows`` and wait until the broker acknowledged every one (acks=all); then ``after_ack``."""
        futures = []
        topic = self.topic
        sent: list[asyncpg.Record] = []
        refused: list[tuple[asyncpg.Record, str]] = []
        blocked: set[Any] = set()  # streams with a refused row: their later rows wait behind it
        for r in rows:
            if r["stream_id"] in blocked:
                continue
            record = record_from_row(r, self.dataschema_base)  # the stored bytes and signature
            try:
                futures.append(await producer.send(topic, value=record.value, key=record.key, headers=record.headers))
                sent.append(r)
            except PERMANENT_ERRORS as exc:
                refused.append((r, f"{type(exc).__name__}: {exc}"))
                blocked.add(r["stream_id"])
        await asyncio.gather(*futures)  # every record acknowledged by the broker (acks=all)
        seqs = [r["seq"] for r in sent]
        if self.after_ack is not None:
            await self.after_ack(seqs)
        return seqs, refused

    async def _set_aside(self, conn: asyncpg.Connection, refused: list[tuple[asyncpg.Record, str]]) -> None:
        """Record rows the broker will never take, so the relay stops retrying them (an operator alarm)."""
        if not refused:
            return
        await conn.executemany(
            "UPDATE events SET publish_error = $2, publish_failed_at = now() WHERE seq = $1",
            [(r["seq"], reason[:2000]) for r, reason in refused],
        )
        self.set_aside_total += len(refused)
        for r, reason in refused:
            log.error(
                "outbox_row_set_aside",
                seq=r["seq"],
                event_id=str(r["event_id"]),
                renja_id=str(r["stream_id"]),
                reason=reason[:500],
            )

    async def _mark(self, conn: asyncpg.Connection, seqs: list[int]) -> None:
        if not seqs:
            return
        await conn.execute("UPDATE events SET published_at = now() WHERE seq = ANY($1::bigint[])", seqs)
        self.published_total += len(seqs)
        log.debug("outbox_published", count=len(seqs), first_seq=seqs[0], last_seq=seqs[-1])


async def pending_count(conn: asyncpg.Connection) -> int:
    """How many events still wait for the relay (an operator metric; set-aside rows included)."""
    return int(await conn.fetchval("SELECT count(*) FROM events WHERE published_at IS NULL"))


async def failed_count(conn: asyncpg.Connection) -> int:
    """How many events the broker refused for good and wait for an operator (``publish_error`` says why)."""
    return int(
        await conn.fetchval("SELECT count(*) FROM events WHERE publish_failed_at IS NOT NULL AND published_at IS NULL")
    )


async def backlog(conn: asyncpg.Connection) -> tuple[int, float]:
    """The outbox backlog: unpublished rows (set-aside ones included) and the age in seconds of the oldest
    one since it was recorded (0.0 without any). One query on the partial unpublished index."""
    row = await conn.fetchrow(
        "SELECT count(*) AS rows, coalesce(extract(epoch FROM clock_timestamp() - min(recorded_at)), 0) AS age"
        " FROM events WHERE published_at IS NULL"
    )
    return int(row["rows"]), max(0.0, float(row["age"]))
