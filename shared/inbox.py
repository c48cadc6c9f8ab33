"""The idempotent consumer: Kafka batches applied to Postgres exactly once, bad messages to the DLQ.

Invariants:
- ``enable_auto_commit=False``; for each partition batch from ``getmany`` the inbox rows (consumer,
  event id) and the handler's effects commit in ONE Postgres transaction, and the Kafka offset is committed
  only after that commit, and only for partitions still assigned to this member (rebalance-safe);
- every record that decodes has its origin checked (``shared.origin.Trust``): an unsigned, wrongly signed or
  foreign-signed record is dead-lettered (``unsigned``, ``bad_signature``, ``unknown_key``,
  ``wrong_signer``) and never applied;
- an event id already in the inbox is skipped, so a redelivered or re-published event is applied once;
  the inbox keeps the digest of what it applied (``shared.origin.record_digest``), and a record with a
  known event id but other content is no re-delivery: it is dead-lettered as ``duplicate_id_conflict``
  and logged at warning level (an identical re-delivery stays a silent duplicate);
- a record of an event type this release does not know is skipped (counted in ``stats.skipped_unknown``,
  logged once per type): tolerant readers, so a producer upgraded first never fills the DLQs;
- a record that cannot be decoded, or whose handler raises a non-connection error, is sent to the group's
  dead-letter topic (original key/value/headers plus ``dlq_*`` headers with the reason) and acknowledged by
  the broker BEFORE the database commit, so it is never lost; the consumer then goes on (a handler's
  exception with a ``dlq_reason`` attribute names the reason, e.g. ``out_of_order``; else ``handler_error``);
- connection failures (Postgres or Kafka) abort the batch without committing anything; the loop backs off,
  seeks back to the committed offsets and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError, KafkaError

from shared import tracing
from shared.cloudevents import OUTBOX_COLUMNS, DecodeError, from_kafka, header_map, record_from_row
from shared.events import Event
from shared.kafka import start_consumer, start_producer
from shared.origin import Trust, process_trust, record_digest
from shared.retry import keep_running

log = structlog.get_logger(__name__)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    KafkaConnectionError,
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a record came from, for handlers that want it (audit stores the log position)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    traceparent: str | None
    tracestate: str | None = None


Handler = Callable[[asyncpg.Connection, Event, Delivery], Awaitable[None]]
BatchHandler = Callable[[asyncpg.Connection, Sequence[tuple[Event, Delivery]]], Awaitable[None]]


@dataclass
class ConsumerStats:
    """What a consumer has done since its process started (read by ``/metrics``: ``shared.web.metrics``)."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    dead_lettered_by_reason: dict[str, int] = field(default_factory=dict)
    """Dead-lettered records per ``dlq_reason`` (``not_json``, ``bad_schema``, ``handler_error``,
    ``unsigned``, ``bad_signature``, ``duplicate_id_conflict``…)."""
    duplicate_conflicts: int = 0
    """Records whose event id was applied before with other content (dead-lettered, never applied)."""
    lag: dict[int, int] = field(default_factory=dict)
    """Records behind per assigned partition: log end (high watermark) minus this member's position, which
    after each processed batch is the committed offset; measured after every poll."""
    skipped_unknown: dict[str, int] = field(default_factory=dict)
    """Records of event types this release does not know, per ``ce_type``: skipped, not dead-lettered."""
    batches: int = 0
    last_error: str | None = None
    assigned: set[TopicPartition] = field(default_factory=set)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stats: ConsumerStats) -> None:
        self.stats = stats

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.stats.assigned -= set(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.stats.assigned |= set(assigned)


def _delivery(rec: ConsumerRecord[bytes, bytes]) -> Delivery:
    tp = ts = None
    for name, value in rec.headers or ():
        if name == "traceparent":
            tp = value.decode(errors="replace")
        elif name == "tracestate":
            ts = value.decode(errors="replace")
    return Delivery(rec.topic, rec.partition, rec.offset, rec.timestamp, tp, ts)


def record_ids(rec: ConsumerRecord[bytes, bytes]) -> dict[str, str | None]:
    """The ``event_id`` (``ce_id`` header) and ``renja_id`` (key) a record claims, for its log lines, even
    when it cannot be decoded (None where absent)."""
    headers = dict(rec.headers or ())
    ce_id = headers.get("ce_id")
    return {
        "event_id": ce_id.decode(errors="replace") if isinstance(ce_id, bytes) else None,
        "renja_id": rec.key.decode(errors="replace") if rec.key is not None else None,
    }


def dlq_headers(rec: ConsumerRecord[bytes, bytes], consumer: str, reason: str, error: str) -> list[tuple[str, bytes]]:
    """Original headers plus ``dlq_reason``, ``dlq_error``, ``dlq_consumer`` and the original position."""
    headers = [(k, v) for k, v in (rec.headers or ()) if not k.startswith("dlq_")]
    headers += [
        ("dlq_reason", reason.encode()),
        ("dlq_error", error[:4000].encode()),
        ("dlq_consumer", consumer.encode()),
        ("dlq_topic", rec.topic.encode()),
        ("dlq_partition", str(rec.partition).encode()),
        ("dlq_offset", str(rec.offset).encode()),
    ]
    return headers


class IdempotentConsumer:
    """Consume ``topic`` as group ``group_id`` and apply each event once through ``handler``.

    ``handler(conn, event, delivery)`` runs inside the batch transaction; its effects commit with the inbox
    row, and if it raises, its effects alone are rolled back and its event goes to the DLQ. (The handlers
    of a batch first run together in one savepoint; when one raises, the batch's handlers run again, each
    in a savepoint of its own. A handler may therefore run twice for one delivery, as it may anyway after
    a connection failure: at-least-once, with exactly-once effects in the database.)
    Alternatively ``batch_handler(conn, [(event, delivery)…])`` receives all new events of a partition batch
    at once (for bulk inserts); a failing batch handler falls back to one-by-one so only the bad event goes
    to the DLQ.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        bootstrap: str,
        topic: str,
        group_id: str,
        dlq_topic: str,
        handler: Handler,
        batch_handler: BatchHandler | None = None,
        batch_max: int = 500,
        consumer_name: str | None = None,
        trust: Trust | None = None,
    ) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.dlq_topic = dlq_topic
        self.handler = handler
        self.batch_handler = batch_handler
        self.batch_max = batch_max
        self.name = consumer_name or group_id
        self.trust = trust
        """Which records are accepted (default: this process's ``shared.origin.process_trust()``)."""
        self.stats = ConsumerStats()
        self.running = False

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with backoff after connection failures."""

        def restarting(error: BaseException, wait_s: float) -> None:
            self.stats.last_error = repr(error)
            log.warning("consumer_restarting", consumer=self.name, error=repr(error), backoff_s=wait_s)

        await keep_running(self._consume, retry_on=(*CONNECTION_ERRORS, KafkaError), on_retry=restarting)

    async def _consume(self) -> None:
        consumer: AIOKafkaConsumer | None = None
        dlq: AIOKafkaProducer | None = None
        try:
            dlq = await start_producer(self.bootstrap, client_id=f"{self.name}-dlq")
            consumer = await start_consumer(
                self.bootstrap,
                self.topic,
                group_id=self.group_id,
                client_id=self.name,
                listener=_Listener(self.stats),
            )
            self.running = True
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=self.batch_max)
                for tp, records in batches.items():
                    await self._process(consumer, dlq, tp, records)
                self.stats.lag = await partition_lag(consumer)
        finally:
            self.running = False
            if consumer is not None:
                await consumer.stop()
            if dlq is not None:
                await dlq.stop()

    async def _process(
        self,
        consumer: AIOKafkaConsumer,
        dlq: AIOKafkaProducer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        decoded: list[tuple[ConsumerRecord[bytes, bytes], Event]] = []
        dead: list[tuple[ConsumerRecord[bytes, bytes], str, str]] = []
        trust = self.trust or process_trust()
        for rec in records:
            try:
                event = from_kafka(rec.key, rec.value, rec.headers)
                # the data's source is the ce_source (checked by the decoder); its key must be that service's
                trust.check(rec.key, rec.value, rec.headers, rec.partition, rec.offset)
                decoded.append((rec, event))
            except DecodeError as exc:
                if exc.skippable:
                    self._skip_unknown(rec)
                else:
                    dead.append((rec, exc.reason, exc.detail))
        async with self.pool.acquire() as conn, conn.transaction():
            fresh, conflicts = await self._claim(conn, decoded)
            dead += conflicts
            refused = await self._apply(conn, fresh)
            dead += refused
            if dead:
                # The DLQ copy is acknowledged before the database commit: a crash in between re-sends it
                # (a duplicate DLQ entry) but never loses it.
                futures = [
                    await dlq.send(
                        self.dlq_topic,
                        key=rec.key,
                        value=rec.value,
                        headers=dlq_headers(rec, self.name, reason, detail),
                    )
                    for rec, reason, detail in dead
                ]
                await asyncio.gather(*futures)
                for rec, reason, detail in dead:
                    log.warning(
                        "dead_lettered",
                        consumer=self.name,
                        reason=reason,
                        error=detail[:500],
                        partition=rec.partition,
                        offset=rec.offset,
                        **record_ids(rec),  # this record's ids, never ones left bound by another
                    )
        self.stats.applied += len(fresh) - len(refused)
        self.stats.duplicates += len(decoded) - len(fresh) - len(conflicts)
        self.stats.duplicate_conflicts += len(conflicts)
        self.stats.dead_lettered += len(dead)
        for _, reason, _ in dead:
            self.stats.dead_lettered_by_reason[reason] = self.stats.dead_lettered_by_reason.get(reason, 0) + 1
        self.stats.batches += 1
        if tp in consumer.assignment():
            try:
                await consumer.commit({tp: records[-1].offset + 1})
            except CommitFailedError as exc:  # rebalanced meanwhile: the inbox makes the replay harmless
                log.info("commit_skipped_after_rebalance", partition=tp.partition, error=str(exc))

    def _handling(self, rec: ConsumerRecord[bytes, bytes], ev: Event) -> contextlib.AbstractContextManager[None]:
        """The event's ids bound for its log lines and a consumer span continuing the record's trace."""
        delivery = _delivery(rec)
        return tracing.handling(
            topic=rec.topic,
            event_id=ev.event_id,
            renja_id=ev.renja_id,
            event_type=ev.event_type,
            traceparent=delivery.traceparent,
            tracestate=delivery.tracestate,
            consumer=self.name,
        )

    def _skip_unknown(self, rec: ConsumerRecord[bytes, bytes]) -> None:
        """Count a record of an unknown event type (a newer producer's); log the first of each type."""
        ce_type = dict(rec.headers or ()).get("ce_type", b"").decode(errors="replace")
        seen = self.stats.skipped_unknown.get(ce_type, 0)
        self.stats.skipped_unknown[ce_type] = seen + 1
        if seen == 0:
            log.info(
                "unknown_event_type_skipped",
                consumer=self.name,
                ce_type=ce_type,
                partition=rec.partition,
                offset=rec.offset,
                **record_ids(rec),
            )

    async def _claim(
        self, conn: asyncpg.Connection, decoded: list[tuple[ConsumerRecord[bytes, bytes], Event]]
    ) -> tuple[list[tuple[ConsumerRecord[bytes, bytes], Event]], list[tuple[ConsumerRecord[bytes, bytes], str, str]]]:
        """Insert inbox rows (with each record's digest) for the batch in one statement; return the records
        seen for the first time, and the dead letters of known ids that came with other content."""
        if not decoded:
            return [], []
        digests = [record_digest(rec.key, rec.value, rec.headers) for rec, _ in decoded]
        inserted = await conn.fetch(
            """INSERT INTO inbox (consumer, event_id, event_type, kafka_partition, kafka_offset, digest)
               SELECT $1, e.id, e.t, e.p, e.o, e.d
               FROM unnest($2::uuid[], $3::text[], $4::int[], $5::bigint[], $6::bytea[]) AS e(id, t, p, o, d)
               ON CONFLICT DO NOTHING RETURNING event_id""",
            self.name,
            [ev.event_id for _, ev in decoded],
            [ev.event_type for _, ev in decoded],
            [rec.partition for rec, _ in decoded],
            [rec.offset for rec, _ in decoded],
            digests,
        )
        new_ids = {r["event_id"] for r in inserted}
        fresh: list[tuple[ConsumerRecord[bytes, bytes], Event]] = []
        applied: dict[Any, tuple[bytes, str]] = {}  # event id -> (digest, where) of what this batch applies
        repeats: list[tuple[ConsumerRecord[bytes, bytes], Event, bytes]] = []
        for (rec, ev), digest in zip(decoded, digests, strict=True):
            if ev.event_id in new_ids:
                fresh.append((rec, ev))
                new_ids.discard(ev.event_id)  # the same id twice in one batch is applied once
                applied[ev.event_id] = (digest, f"{rec.partition}:{rec.offset}")
            else:
                repeats.append((rec, ev, digest))
        if not repeats:
            return fresh, []
        known = await self._known_digests(conn, [ev.event_id for _, ev, _ in repeats if ev.event_id not in applied])
        known.update(applied)
        conflicts: list[tuple[ConsumerRecord[bytes, bytes], str, str]] = []
        for rec, ev, digest in repeats:
            stored = known.get(ev.event_id)
            if stored is None or stored[0] == digest:
                continue  # a re-delivery (or an id applied before digests were kept): a silent duplicate
            log.warning(
                "duplicate_id_conflict",
                consumer=self.name,
                event_id=str(ev.event_id),
                applied_at=stored[1],
                applied_digest=stored[0].hex(),
                received_at=f"{rec.partition}:{rec.offset}",
                received_digest=digest.hex(),
            )
            conflicts.append(
                (
                    rec,
                    "duplicate_id_conflict",
                    f"event id {ev.event_id} was applied before (record {stored[1]}, digest {stored[0].hex()}) "
                    f"with other content than this record (digest {digest.hex()})",
                )
            )
        return fresh, conflicts

    async def _known_digests(self, conn: asyncpg.Connection, event_ids: list[Any]) -> dict[Any, tuple[bytes, str]]:
        """The digest (and where it came from) of what was applied for each of ``event_ids``: the inbox's,
        or for this service's own events (whose inbox rows are written by the command) the stored row's."""
        if not event_ids:
            return {}
        out: dict[Any, tuple[bytes, str]] = {}
        own: list[Any] = []
        for r in await conn.fetch(
            "SELECT event_id, digest, kafka_partition, kafka_offset FROM inbox"
            " WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
            self.name,
            event_ids,
        ):
            if r["digest"] is not None:
                out[r["event_id"]] = (bytes(r["digest"]), f"{r['kafka_partition']}:{r['kafka_offset']}")
            else:
                own.append(r["event_id"])
        if own:
            for row in await conn.fetch(f"SELECT {OUTBOX_COLUMNS} FROM events WHERE event_id = ANY($1::uuid[])", own):
                record = record_from_row(row, "")
                out[row["event_id"]] = (record_digest(record.key, record.value, record.headers), "own event store")
        return out

    async def _apply(
        self, conn: asyncpg.Connection, fresh: list[tuple[ConsumerRecord[bytes, bytes], Event]]
    ) -> list[tuple[ConsumerRecord[bytes, bytes], str, str]]:
        if not fresh:
            return []
        if self.batch_handler is not None:
            try:
                async with conn.transaction():
                    await self.batch_handler(conn, [(ev, _delivery(rec)) for rec, ev in fresh])
                return []
            except CONNECTION_ERRORS:
                raise
            except Exception:
                log.info("batch_handler_failed_falling_back", consumer=self.name, size=len(fresh))
        elif len(fresh) > 1:
            # Optimistic: every handler of the batch in ONE savepoint (one round trip per event instead of
            # three). If any handler raises, that savepoint is rolled back and the batch is re-run below with
            # a savepoint per event, so exactly the failing events are dead-lettered, as before.
            try:
                async with conn.transaction():
                    for rec, ev in fresh:
                        with self._handling(rec, ev):
                            await self.handler(conn, ev, _delivery(rec))
                return []
            except CONNECTION_ERRORS:
                raise
            except Exception:
                log.info("handler_failed_falling_back", consumer=self.name, size=len(fresh))
        dead: list[tuple[ConsumerRecord[bytes, bytes], str, str]] = []
        for rec, ev in fresh:
            try:
                async with conn.transaction():
                    with self._handling(rec, ev):
                        if self.batch_handler is not None:
                            await self.batch_handler(conn, [(ev, _delivery(rec))])
                        else:
                            await self.handler(conn, ev, _delivery(rec))
            except CONNECTION_ERRORS:
                raise
            except Exception as exc:
                await conn.execute("DELETE FROM inbox WHERE consumer = $1 AND event_id = $2", self.name, ev.event_id)
                # a typed refusal names its own reason (``shared.sop.UnfoldableEvent``: ``out_of_order``)
                reason = getattr(exc, "dlq_reason", "handler_error")
                dead.append((rec, reason, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
        return dead


async def partition_lag(consumer: AIOKafkaConsumer) -> dict[int, int]:
    """Records behind per assigned partition: high watermark minus position (partitions not fetched yet
    are left out: their end is unknown). Call it between polls, once the polled records are processed."""
    lag: dict[int, int] = {}
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        try:
            lag[tp.partition] = max(0, end - await consumer.position(tp))
        except IllegalStateError:  # revoked meanwhile
            continue
    return lag


def describe_headers(headers: Any) -> dict[str, str]:
    """Readable header dict (for DLQ inspection tools)."""
    return header_map(headers)
