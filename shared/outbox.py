"""The transactional-outbox relay: publishes a service's unpublished events to Kafka, in order, at least once.

Invariants:
- one active relay per service database: leadership is a session-level ``pg_try_advisory_lock``; a second
  instance waits until the leader's connection is gone;
- rows are selected by the ``published_at IS NULL`` flag (never an ``id > last_seen`` cursor: sequence
  values commit out of order, so a late commit with a lower ``seq`` is still found on the next pass);
- a batch is sent with the idempotent producer and marked ``published_at`` only after every record in it
  was acknowledged (``acks=all``); a crash in between re-sends, and consumers de-duplicate by event id;
- ``LISTEN outbox_<service>`` (and ``wake`` in process) is a wake-up hint that is never lost: the flag is
  cleared before a pass reads its first batch, so a commit during a pass starts the next one at once;
  polling every ``poll_seconds`` is the guarantee;
- a command's answer waits for its own rows (``await_published``) but never sends them itself: the relay
  stays the one publisher, so one Renja's rows go out in ``seq`` (= commit) order however many commands
  wait, and nothing is sent twice on their account;
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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from shared import tracing
from shared.cloudevents import OUTBOX_COLUMNS, KafkaRecord, record_from_row
from shared.eventstore import notify_channel
from shared.kafka import start_producer
from shared.retry import keep_running

log = structlog.get_logger(__name__)

AfterAck = Callable[[list[int]], Awaitable[None]]

RECHECK_S = 0.25
"""How often a command waiting for its events re-reads their ``published_at`` (seconds): the fallback
when another process's relay leads; in the leading process the relay resolves the wait directly."""

PERMANENT_ERRORS: tuple[type[Exception], ...] = (MessageSizeTooLargeError, RecordTooLargeError)
"""Send errors that no retry can cure for that record (anything else is retried with backoff)."""


ROW_COLUMNS = OUTBOX_COLUMNS
"""The ``events`` columns a stored event is published from (``row_record``): the relay's and ``renja
republish``'s one select list (``shared.cloudevents.OUTBOX_COLUMNS``)."""


def row_record(
    row: Mapping[str, Any],
    dataschema_base: str | None = None,
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> KafkaRecord:
    """The Kafka record of one stored event (a row selected with ``ROW_COLUMNS``): the stored bytes and
    signature (``shared.cloudevents.record_from_row``), so the relay and ``renja republish`` send the same
    record. The relay passes the trace context of its publish span; else the stored one."""
    return record_from_row(row, dataschema_base, traceparent=traceparent, tracestate=tracestate)


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
        self._waiters: dict[UUID, asyncio.Future[None]] = {}
        """Event ids a command awaits (``await_published``), resolved when their rows are marked."""
        self.passes_total = 0
        """Publishing passes run while leading (a pass publishes batches until one comes back short)."""
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
                # Cleared *before* the batch is read: a commit (NOTIFY or ``wake``) that lands while this
                # pass reads or publishes sets it again, and the next pass starts at once instead of
                # after ``poll_seconds``.
                self._wake.clear()
                await self.publish_until_short(conn, producer)
                self.passes_total += 1
                if not self._wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
        finally:
            self.is_leader = False
            if producer is not None:
                await producer.stop()
            await conn.close(timeout=5)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Start a publishing pass now (in-process; the ``NOTIFY`` at commit does the same across processes)."""
        self._wake.set()

    async def publish_pending(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Send one batch of unpublished events and mark it; returns how many were published."""
        rows = await self._fetch(conn, [])
        if not rows:
            return 0
        seqs, refused = await self._send(producer, rows)
        await self._set_aside(conn, refused)
        await self._mark(conn, seqs, rows)
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
                marking = asyncio.create_task(self._mark(conn, seqs, rows))
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
                f"SELECT {ROW_COLUMNS}"
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
        spans: list[tracing.Span | None] = []  # the publish span of each sent row (None: tracing is off)
        for r in rows:
            if r["stream_id"] in blocked:
                continue
            span, traceparent, tracestate = tracing.publish_span(topic, r["traceparent"], r["tracestate"], _attrs(r))
            spans.append(span)
            record = row_record(r, self.dataschema_base, traceparent=traceparent, tracestate=tracestate)
            try:
                futures.append(await producer.send(topic, value=record.value, key=record.key, headers=record.headers))
                sent.append(r)
            except PERMANENT_ERRORS as exc:
                refused.append((r, f"{type(exc).__name__}: {exc}"))
                blocked.add(r["stream_id"])
                tracing.end_spans([spans.pop()], exc)
            except BaseException as exc:
                tracing.end_spans(spans, exc)
                raise
        try:
            await asyncio.gather(*futures)  # every record acknowledged by the broker (acks=all)
        except BaseException as exc:
            tracing.end_spans(spans, exc)
            raise
        tracing.end_spans(spans)
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

    async def _mark(self, conn: asyncpg.Connection, seqs: list[int], rows: Sequence[asyncpg.Record] = ()) -> None:
        """Set ``published_at`` of ``seqs`` (all acknowledged); then release the commands awaiting those of
        ``rows`` (the batch the seqs were sent from)."""
        if not seqs:
            return
        await conn.execute("UPDATE events SET published_at = now() WHERE seq = ANY($1::bigint[])", seqs)
        self.published_total += len(seqs)
        log.debug("outbox_published", count=len(seqs), first_seq=seqs[0], last_seq=seqs[-1])
        if self._waiters:
            done = set(seqs)
            for r in rows:
                if r["seq"] in done:
                    waiter = self._waiters.get(r["event_id"])
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)

    async def await_published(self, pool: asyncpg.Pool, event_ids: Sequence[UUID], timeout_s: float) -> bool:
        """Wake the relay and wait until every event of ``event_ids`` is on the log (``published_at`` set).

        True once all are published, False if ``timeout_s`` passed first (they stay in the outbox and the
        relay publishes them later). Used by a command after its commit (``shared.command``): the relay is
        the one publisher, so the events go out in ``seq`` order — for one Renja, its commit order — and
        nothing is sent twice on their account. This process's relay releases the wait when it marks the
        rows; if another process leads, ``published_at`` is re-read every ``RECHECK_S`` seconds.
        """
        if not event_ids:
            return True
        loop = asyncio.get_running_loop()
        mine = [eid for eid in event_ids if eid not in self._waiters]
        for eid in mine:
            self._waiters[eid] = loop.create_future()
        waiters = [self._waiters[eid] for eid in event_ids]
        self.wake()
        try:
            async with asyncio.timeout(timeout_s):
                while not all(w.done() for w in waiters):
                    async with pool.acquire() as conn:
                        left = await conn.fetchval(
                            "SELECT count(*) FROM events WHERE event_id = ANY($1::uuid[]) AND published_at IS NULL",
                            list(event_ids),
                        )
                    if not left:
                        return True
                    open_waiters = [w for w in waiters if not w.done()]
                    if open_waiters:
                        await asyncio.wait(open_waiters, timeout=RECHECK_S)
            return True
        except TimeoutError:
            return False
        finally:
            for eid in mine:
                waiter = self._waiters.pop(eid, None)
                if waiter is not None and not waiter.done():
                    waiter.cancel()


async def unpublished_ids(conn: asyncpg.Connection, stream_id: UUID) -> list[UUID]:
    """The ids of ``stream_id``'s events still waiting in the outbox (set-aside rows left out), in ``seq``
    order: what a replayed command answer waits for before it is given again."""
    rows = await conn.fetch(
        "SELECT event_id FROM events WHERE stream_id = $1 AND published_at IS NULL AND publish_failed_at IS NULL"
        " ORDER BY seq",
        stream_id,
    )
    return [r["event_id"] for r in rows]


async def publication_status(conn: asyncpg.Connection, event_id: UUID) -> asyncpg.Record | None:
    """``(published_at, publish_failed_at, publish_error)`` of one stored event (None if not stored here)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT published_at, publish_failed_at, publish_error FROM events WHERE event_id = $1", event_id
    )
    return row


def _attrs(row: asyncpg.Record) -> dict[str, str]:
    """The publish span's attributes of one outbox row."""
    return {
        "renja.event_id": str(row["event_id"]),
        "renja.renja_id": str(row["stream_id"]),
        "renja.event_type": row["event_type"],
    }


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
