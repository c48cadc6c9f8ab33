"""The audit projection: ``renja.events`` folded, in batches, into the audit's own tables.

This module owns how Kafka records become audit rows, for the live projection and for a rebuild alike
(one code path, so a rebuild from offset 0 can be compared row by row with the live tables):

- ``audit_events``: one row per distinct event id, in log order per Renja, with its log position
  (partition, offset), actor, step, draft version/hash, the event JSON as hashed, ``event_hash`` and
  ``chain_hash`` (``services.audit.hashchain``) and its ``position`` in the Renja's chain (from 1);
- ``audit_cycles``: one row per Renja: OPD, year, status and due step (``shared.sop.evolve``), the chain
  head, and for a closed cycle (distributed or cancelled) the head signed with the audit's Ed25519 key
  (re-signed whenever a later event, e.g. a receipt, extends the chain);
- ``audit_offsets``: the next offset to fold per partition, written in the SAME transaction as the rows,
  so a crash mid-batch rolls back rows and offsets together and the batch is simply folded again;
- ``audit_rejects``: records that are not our CloudEvents (skipped, with the reason).

Invariants: an event id already stored (or repeated within a batch) is skipped before the chain is
extended, so duplicate delivery changes nothing; rows are written with one ``COPY`` per batch and the
cycles with one pipelined upsert, never one round trip per event.

The live consumer reads without a consumer group (partitions assigned, positions from
``audit_offsets``): the audit is a single writer of its own projection. It does not pick up partitions
added to the topic while it runs (restart it after adding partitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.hashchain import GENESIS, canonical_event_bytes, event_json, sign_head
from shared.cloudevents import DecodeError, from_kafka
from shared.events import Event
from shared.sop import CLOSED, RenjaState, SopDefinition, SopStep, evolve

log = structlog.get_logger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]  # explicit alias: mypy needs it to use the name as a type

EVENT_COLUMNS: tuple[str, ...] = (
    "kafka_partition",
    "kafka_offset",
    "event_id",
    "renja_id",
    "position",
    "event_type",
    "source",
    "actor_name",
    "actor_nip",
    "actor_role",
    "occurred_at",
    "step_number",
    "draft_version",
    "content_sha256",
    "event",
    "event_hash",
    "chain_hash",
)

BASE_TABLES: tuple[str, ...] = ("audit_events", "audit_cycles", "audit_offsets", "audit_rejects")
"""The projection's tables; a rebuild creates each again with a suffix and swaps them in by renaming."""


@dataclass(frozen=True, slots=True)
class TableSet:
    """The names of one copy of the projection: ``suffix=""`` is live, ``"_rebuild"`` a rebuild."""

    suffix: str = ""

    @property
    def events(self) -> str:
        return f"audit_events{self.suffix}"

    @property
    def cycles(self) -> str:
        return f"audit_cycles{self.suffix}"

    @property
    def offsets(self) -> str:
        return f"audit_offsets{self.suffix}"

    @property
    def rejects(self) -> str:
        return f"audit_rejects{self.suffix}"

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(f"{name}{self.suffix}" for name in BASE_TABLES)


LIVE = TableSet("")
REBUILD = TableSet("_rebuild")


_VERSION_FIELDS = ("version", "draft_version")
_SHA_FIELDS = ("content_sha256", "draft_sha256")
_DRAFT_FIELDS: dict[type[Event], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _version_and_hash_fast(event: Event) -> tuple[int | None, str | None]:
    """``services.audit.timeline._version_and_hash``, answered from the fields each event class has.

    Same result (``version`` else ``draft_version``; ``content_sha256`` else ``draft_sha256``; None when
    absent), without ``getattr`` misses: on a pydantic model a missing attribute costs an exception.
    """
    names = _DRAFT_FIELDS.get(type(event))
    if names is None:
        fields = type(event).model_fields
        names = _DRAFT_FIELDS[type(event)] = (
            tuple(n for n in _VERSION_FIELDS if n in fields),
            tuple(n for n in _SHA_FIELDS if n in fields),
        )
    version: int | None = None
    for name in names[0]:
        version = getattr(event, name)
        if version is not None:
            break
    sha: str | None = None
    for name in names[1]:
        sha = getattr(event, name)
        if sha is not None:
            break
    return version, sha


@dataclass(slots=True)
class Cycle:
    """What the fold needs to know about one Renja between events (a row of ``audit_cycles``)."""

    renja_id: UUID
    state: RenjaState
    head_position: int = 0
    head_hash: str = GENESIS
    first_at: datetime | None = None
    last_at: datetime | None = None
    signed_position: int | None = None
    signed_hash: str | None = None
    signature_b64: str | None = None


@dataclass
class BatchResult:
    """Counts of one folded batch: ``applied`` new events, ``duplicates`` skipped, ``rejected`` records."""

    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    offsets: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class DecodedBatch:
    """One batch of records after decoding, before any database work.

    ``events``: the records that are our CloudEvents, with their event, in record order; ``rejects``:
    ``(partition, offset, reason, detail)`` of the others; ``offsets``: the next offset per partition;
    ``size``: how many records the batch had.
    """

    events: list[tuple[Record, Event]]
    rejects: list[tuple[int, int, str, str]]
    offsets: dict[int, int]
    size: int


def _decode_into(batch: DecodedBatch, records: Sequence[Record]) -> None:
    offsets = batch.offsets
    for rec in records:
        offsets[rec.partition] = max(offsets.get(rec.partition, 0), rec.offset + 1)
        try:
            batch.events.append((rec, from_kafka(rec.key, rec.value, rec.headers)))
        except DecodeError as exc:
            batch.rejects.append((rec.partition, rec.offset, exc.reason, exc.detail[:2000]))


def decode_batch(records: Sequence[Record]) -> DecodedBatch:
    """Decode ``records`` (``shared.cloudevents.from_kafka``); pure CPU, never raises for a bad record."""
    batch = DecodedBatch([], [], {}, len(records))
    _decode_into(batch, records)
    return batch


async def decode_batch_yielding(records: Sequence[Record], chunk: int = 256) -> DecodedBatch:
    """:func:`decode_batch`, handing the event loop back every ``chunk`` records.

    Used while the previous batch is being written: between chunks the loop keeps feeding its COPY to
    Postgres, so the server works on batch *n* while Python decodes batch *n + 1*.
    """
    batch = DecodedBatch([], [], {}, len(records))
    for start in range(0, len(records), chunk):
        _decode_into(batch, records[start : start + chunk])
        await asyncio.sleep(0)
    return batch


class Projector:
    """Folds batches of Kafka records into one :class:`TableSet`, inside the caller's transaction.

    ``keep_cache=False`` (live): the per-Renja heads are read from the tables at every batch, so nothing
    held in memory can disagree with the database after a rollback or a swap. ``keep_cache=True``
    (rebuild, sole writer of its tables): heads stay in memory between batches (at most ``cache_max``).
    """

    def __init__(
        self,
        sop: SopDefinition,
        signing_key: Ed25519PrivateKey,
        tables: TableSet = LIVE,
        *,
        keep_cache: bool = False,
        cache_max: int = 200_000,
    ) -> None:
        self.sop = sop
        self.key = signing_key
        self.tables = tables
        self.keep_cache = keep_cache
        self.cache_max = cache_max
        self._cycles: dict[UUID, Cycle] = {}
        # sop.step_for_event, indexed by event type (same order, same matches): no scan of all 11 steps
        self._steps_by_type: dict[str, list[SopStep]] = {}
        for step in sop.steps:
            self._steps_by_type.setdefault(step.completed_by.event_type, []).append(step)

    def _step_number(self, event: Event) -> int | None:
        """The number of the SOP step ``event`` completes (``SopDefinition.step_for_event``), or None."""
        for step in self._steps_by_type.get(event.event_type, ()):
            if step.completed_by.matches(event):
                return step.number
        return None

    def forget(self) -> None:
        """Drop the in-memory heads (after a failed transaction)."""
        self._cycles.clear()

    async def apply(self, conn: asyncpg.Connection, records: Sequence[Record]) -> BatchResult:
        """Fold ``records`` (any partitions, each partition's records in offset order) into the tables.

        Must run inside a transaction: rows, cycles and offsets commit together or not at all.
        Never raises for a bad record (it is stored in the rejects table); raises asyncpg errors.
        """
        return await self.apply_decoded(conn, decode_batch(records))

    async def apply_decoded(self, conn: asyncpg.Connection, batch: DecodedBatch) -> BatchResult:
        """:meth:`apply` for a batch already decoded by :func:`decode_batch` (same contract).

        The split lets a rebuild decode the next batch while this one is written (see ``rebuild``).
        """
        result = BatchResult(offsets=dict(batch.offsets))
        if not batch.size:
            return result
        if not self.keep_cache or len(self._cycles) > self.cache_max:
            self._cycles.clear()
        t = self.tables
        decoded = batch.events
        rejects = batch.rejects
        known = {
            r[0]
            for r in await conn.fetch(
                f"SELECT event_id FROM {t.events} WHERE event_id = ANY($1::uuid[])",
                [ev.event_id for _, ev in decoded],
            )
        }
        missing = {ev.renja_id for _, ev in decoded if ev.renja_id not in self._cycles}
        if missing:
            for row in await conn.fetch(
                f"SELECT renja_id, state, head_position, head_hash, first_at, last_at, signed_position,"
                f" signed_hash, signature_b64 FROM {t.cycles} WHERE renja_id = ANY($1::uuid[])",
                list(missing),
            ):
                self._cycles[row["renja_id"]] = Cycle(
                    renja_id=row["renja_id"],
                    state=RenjaState.model_validate_json(row["state"]),
                    head_position=row["head_position"],
                    head_hash=row["head_hash"],
                    first_at=row["first_at"],
                    last_at=row["last_at"],
                    signed_position=row["signed_position"],
                    signed_hash=row["signed_hash"],
                    signature_b64=row["signature_b64"],
                )
        rows: list[tuple[Any, ...]] = []
        touched: dict[UUID, Cycle] = {}
        cycles = self._cycles
        step_number = self._step_number
        version_and_hash = _version_and_hash_fast
        sha256 = hashlib.sha256
        for rec, ev in decoded:
            event_id = ev.event_id
            if event_id in known:
                result.duplicates += 1
                continue
            known.add(event_id)
            renja_id = ev.renja_id
            cycle = cycles.get(renja_id)
            if cycle is None:
                cycle = cycles[renja_id] = Cycle(renja_id=renja_id, state=RenjaState())
            raw = canonical_event_bytes(event_json(ev))
            # hashchain.chain_hash, inlined: the prefix is always a stored 64-hex link or GENESIS
            link = sha256(cycle.head_hash.encode("ascii") + b"\n" + raw).hexdigest()
            position = cycle.head_position = cycle.head_position + 1
            cycle.head_hash = link
            cycle.state = evolve(cycle.state, ev)
            occurred_at = ev.occurred_at
            if cycle.first_at is None:
                cycle.first_at = occurred_at
            cycle.last_at = occurred_at
            touched[renja_id] = cycle
            version, sha = version_and_hash(ev)
            actor = ev.actor
            rows.append(
                (
                    rec.partition,
                    rec.offset,
                    event_id,
                    renja_id,
                    position,
                    ev.event_type,
                    ev.source,
                    actor.name,
                    actor.nip,
                    actor.role,
                    occurred_at,
                    step_number(ev),
                    version,
                    sha,
                    raw.decode("utf-8"),
                    sha256(raw).hexdigest(),
                    link,
                )
            )
        result.applied = len(rows)
        if rows:
            await conn.copy_records_to_table(t.events, records=rows, columns=EVENT_COLUMNS)
        if touched:
            await self._save_cycles(conn, touched.values())
        if rejects:
            await conn.executemany(
                f"INSERT INTO {t.rejects} (kafka_partition, kafka_offset, reason, detail) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT DO NOTHING",
                rejects,
            )
            result.rejected = len(rejects)
            for partition, offset, reason, _ in rejects:
                log.warning("audit_record_rejected", partition=partition, offset=offset, reason=reason)
        await conn.executemany(
            f"INSERT INTO {t.offsets} (kafka_partition, next_offset) VALUES ($1, $2)"
            " ON CONFLICT (kafka_partition) DO UPDATE SET next_offset = GREATEST("
            f"{t.offsets}.next_offset, EXCLUDED.next_offset)",
            sorted(result.offsets.items()),
        )
        return result

    async def _save_cycles(self, conn: asyncpg.Connection, cycles: Any) -> None:
        params = []
        for c in cycles:
            if c.state.status in CLOSED and c.signed_position != c.head_position:
                # a completed Renja's head is vouched for; a later receipt moves the head, so sign again
                c.signed_position, c.signed_hash = c.head_position, c.head_hash
                c.signature_b64 = sign_head(self.key, c.renja_id, c.head_position, c.head_hash)
            s = c.state
            params.append(
                (
                    c.renja_id,
                    s.opd or None,
                    s.fiscal_year,
                    s.status,
                    s.due_step,
                    c.head_position,
                    c.head_position,
                    c.head_hash,
                    c.first_at,
                    c.last_at,
                    c.signed_position,
                    c.signed_hash,
                    c.signature_b64,
                    s.model_dump_json(),
                )
            )
        await conn.executemany(
            f"""INSERT INTO {self.tables.cycles} (renja_id, opd, fiscal_year, status, current_step, events,
                   head_position, head_hash, first_at, last_at, signed_position, signed_hash, signature_b64, state)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
               ON CONFLICT (renja_id) DO UPDATE SET opd = EXCLUDED.opd, fiscal_year = EXCLUDED.fiscal_year,
                   status = EXCLUDED.status, current_step = EXCLUDED.current_step, events = EXCLUDED.events,
                   head_position = EXCLUDED.head_position, head_hash = EXCLUDED.head_hash,
                   last_at = EXCLUDED.last_at, signed_position = EXCLUDED.signed_position,
                   signed_hash = EXCLUDED.signed_hash, signature_b64 = EXCLUDED.signature_b64,
                   state = EXCLUDED.state""",
            params,
        )


async def stored_offsets(conn: asyncpg.Connection, tables: TableSet = LIVE) -> dict[int, int]:
    """``{partition: next offset to fold}`` of one table set (empty before the first batch)."""
    rows = await conn.fetch(f"SELECT kafka_partition, next_offset FROM {tables.offsets}")
    return {r["kafka_partition"]: r["next_offset"] for r in rows}


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, wait_seconds: float = 30.0) -> list[TopicPartition]:
    """The partitions of ``topic`` as seen by ``consumer`` (waits for metadata). Raises ``LookupError``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if loop.time() > deadline:
            raise LookupError(f"topic {topic!r} has no partitions (does it exist?)")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.2)


async def open_reader(bootstrap: str, client_id: str) -> AIOKafkaConsumer:
    """A started consumer without a group (no commits, no rebalances): positions are ours to set."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    return consumer


async def close_reader(consumer: AIOKafkaConsumer) -> None:
    # aiokafka's group-less coordinator may re-raise the CancelledError of its own helper task on stop
    with contextlib.suppress(asyncio.CancelledError):
        await consumer.stop()


async def seek_to(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], offsets: Mapping[int, int]) -> None:
    """Position each partition at ``offsets[partition]``, or at its beginning if absent."""
    consumer.assign(list(tps))
    fresh = [tp for tp in tps if tp.partition not in offsets]
    if fresh:
        await consumer.seek_to_beginning(*fresh)
    for tp in tps:
        if tp.partition in offsets:
            consumer.seek(tp, offsets[tp.partition])


async def read_range(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], end: Mapping[TopicPartition, int], batch_max: int
) -> AsyncIterator[list[Record]]:
    """Batches of records from the consumer's positions up to (excluding) ``end`` per partition."""
    while True:
        pending = [tp for tp in tps if await consumer.position(tp) < end[tp]]
        if not pending:
            return
        got = await consumer.getmany(*pending, timeout_ms=1000, max_records=batch_max)
        batch = [rec for tp, recs in got.items() for rec in recs if rec.offset < end[tp]]
        if batch:
            yield batch


CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    KafkaConnectionError,
    KafkaError,
)


class LiveProjection:
    """The audit service's consumer: folds ``topic`` into the live tables from the stored offsets on.

    Each ``getmany`` batch (all partitions) is one transaction: rows + cycles + offsets. On any failure
    the transaction rolls back, the loop backs off, and the consumer is re-positioned from the offsets in
    the database, so nothing is lost and nothing is applied twice.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        bootstrap: str,
        topic: str,
        projector: Projector,
        batch_max: int = 5000,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.topic = topic
        self.projector = projector
        self.batch_max = batch_max
        self.on_batch = on_batch
        self.running = False
        self.applied = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        """Consume until cancelled; reconnect with backoff after errors."""
        backoff = 0.2
        while True:
            consumer: AIOKafkaConsumer | None = None
            try:
                consumer = await open_reader(self.bootstrap, "audit-projection")
                tps = await topic_partitions(consumer, self.topic)
                async with self.pool.acquire() as conn:
                    offsets = await stored_offsets(conn, self.projector.tables)
                await seek_to(consumer, tps, offsets)
                self.running = True
                backoff = 0.2
                while True:
                    got = await consumer.getmany(timeout_ms=500, max_records=self.batch_max)
                    records = [rec for recs in got.values() for rec in recs]
                    if not records:
                        continue
                    await self._fold(records)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble or a bug: never skip, re-read from stored offsets
                self.projector.forget()
                self.last_error = repr(exc)
                level = "warning" if isinstance(exc, CONNECTION_ERRORS) else "error"
                getattr(log, level)("audit_projection_restarting", error=repr(exc), backoff_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.running = False
                if consumer is not None:
                    await close_reader(consumer)

    async def _fold(self, records: list[Record]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # a rebuild's swap takes this lock too: the fold waits while the tables are exchanged
            await conn.execute(f"LOCK TABLE {self.projector.tables.offsets} IN ROW EXCLUSIVE MODE")
            result = await self.projector.apply(conn, records)
        self.applied += result.applied
        if self.on_batch is not None:
            self.on_batch(result)
