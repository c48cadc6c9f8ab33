"""Replaying ``renja.events`` from offset 0 into a table set other than the live one.

This module owns the replay phase of a rebuild (``services.audit.rebuild``) and of the benchmark
(``replay_into``): every record folded through the same :class:`~services.audit.projector.Projector` as
the live consumer, one transaction per batch, with batch *n + 1* decoded while batch *n* is written;
optionally split by partition over worker processes (``_replay_in_processes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.logreader import (
    DecodedBatch,
    close_reader,
    decode_batch_yielding,
    open_reader,
    read_range,
    seek_to,
    topic_partitions,
)
from services.audit.projector import BatchResult, Projector
from services.audit.store import renja_in_two_partitions
from services.audit.tables import LIVE, TableSet, create_tables
from shared.sop import SopDefinition

log = structlog.get_logger(__name__)

Progress = Callable[[int, int], None]
"""``progress(records_done, records_total)`` after each batch."""


@contextlib.contextmanager
def fewer_collections(gen0: int = 50_000) -> Iterator[None]:
    """Run the block with the cyclic garbage collector's thresholds raised (gen 0 to ``gen0`` allocations).

    A replay keeps whole batches of events, rows and chain heads alive at once, so with the default
    thresholds (700, 10, 10) the collector runs every few events and keeps re-scanning survivors that
    reference counting frees anyway; measured on the benchmark it took about a third of the replay's CPU.
    The old thresholds are restored on exit. Memory stays bounded: the objects of a batch form no cycles
    and are freed by reference counting when the batch is done.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], gen0), max(old[1], 20), max(old[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*old)


async def fold_range(
    conn: asyncpg.Connection,
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    end: dict[TopicPartition, int],
    projector: Projector,
    batch_max: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Fold from the consumer's positions up to ``end`` inside the caller's transaction, batch after
    batch. Returns ``(records, events)``; ``progress(n)`` after each batch of ``n`` records."""
    records = events = 0
    async for batch in read_range(consumer, tps, end, batch_max):
        result = await projector.apply(conn, batch)
        records += len(batch)
        events += result.applied
        if progress is not None:
            progress(len(batch))
    return records, events


async def _apply_in_transaction(conn: asyncpg.Connection, projector: Projector, batch: DecodedBatch) -> BatchResult:
    async with conn.transaction():
        return await projector.apply_decoded(conn, batch)


async def fold_range_pipelined(
    conn: asyncpg.Connection,
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    end: dict[TopicPartition, int],
    projector: Projector,
    batch_max: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """:func:`fold_range` with one transaction per batch, batch *n + 1* decoded while batch *n* is written.

    Only decoding overlaps (it needs no database); batch *n + 1* is folded only after batch *n* committed,
    so the duplicate check and the chain heads see exactly what a one-by-one fold would see.
    """
    records = events = 0
    writing: asyncio.Task[BatchResult] | None = None
    written = 0
    try:
        async for batch in read_range(consumer, tps, end, batch_max):
            decoded = await decode_batch_yielding(batch)
            if writing is not None:
                events += (await writing).applied
                records += written
                if progress is not None:
                    progress(written)
            writing = asyncio.create_task(_apply_in_transaction(conn, projector, decoded))
            written = len(batch)
        if writing is not None:
            events += (await writing).applied
            records += written
            if progress is not None:
                progress(written)
            writing = None
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
    return records, events


@dataclass(frozen=True)
class _Shard:
    """What one worker process needs to replay some partitions into the scratch tables (picklable)."""

    dsn: str
    bootstrap: str
    topic: str
    partitions: tuple[int, ...]
    end: dict[int, int]
    sop: SopDefinition
    key_raw: bytes
    suffix: str
    batch_max: int
    cache_max: int


def _replay_shard(shard: _Shard) -> tuple[int, int]:
    """Worker-process entry point: fold ``shard.partitions`` from their beginning to ``shard.end``."""
    return asyncio.run(_replay_shard_async(shard))


async def _replay_shard_async(shard: _Shard) -> tuple[int, int]:
    projector = Projector(
        shard.sop,
        Ed25519PrivateKey.from_private_bytes(shard.key_raw),
        TableSet(shard.suffix),
        keep_cache=True,
        cache_max=shard.cache_max,
    )
    consumer = await open_reader(shard.bootstrap, "audit-replay-shard")
    try:
        conn = await asyncpg.connect(shard.dsn)
        try:
            tps = [TopicPartition(shard.topic, p) for p in shard.partitions]
            await seek_to(consumer, tps, {})
            end = {tp: shard.end[tp.partition] for tp in tps}
            with fewer_collections():
                return await fold_range_pipelined(conn, consumer, tps, end, projector, shard.batch_max, None)
        finally:
            await conn.close()
    finally:
        await close_reader(consumer)


def _split(sizes: dict[int, int], workers: int) -> list[tuple[int, ...]]:
    """Partitions into at most ``workers`` groups of similar record counts (largest first, greedy)."""
    groups: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for partition, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        i = loads.index(min(loads))
        groups[i].append(partition)
        loads[i] += size
    return [tuple(sorted(g)) for g in groups if g]


@dataclass(frozen=True)
class _Plan:
    """One replay: fold ``tps`` from ``begin`` to ``end`` (per partition) into ``projector.tables``."""

    bootstrap: str
    topic: str
    projector: Projector
    tps: list[TopicPartition]
    begin: dict[TopicPartition, int]
    end: dict[TopicPartition, int]
    batch_max: int


async def _replay_in_processes(pool: asyncpg.Pool, plan: _Plan, *, dsn: str, workers: int) -> tuple[int, int] | None:
    """The replay phase split by partition over ``workers`` processes; None if it cannot be trusted.

    Sound because every event of one Renja is in one partition (key = Renja id): each worker folds whole
    chains, the chain heads and the signatures (Ed25519 is deterministic) come out as a one-process fold
    would make them. That premise is checked afterwards: if some Renja has events in two partitions
    (e.g. partitions were added to the topic), None is returned and the caller replays in one process.
    """
    projector, tps = plan.projector, plan.tps
    shards = [
        _Shard(
            dsn=dsn,
            bootstrap=plan.bootstrap,
            topic=plan.topic,
            partitions=group,
            end={tp.partition: plan.end[tp] for tp in tps},
            sop=projector.sop,
            key_raw=projector.key.private_bytes_raw(),
            suffix=projector.tables.suffix,
            batch_max=plan.batch_max,
            cache_max=projector.cache_max,
        )
        for group in _split({tp.partition: plan.end[tp] - plan.begin[tp] for tp in tps}, workers)
    ]
    loop = asyncio.get_running_loop()
    executor = ProcessPoolExecutor(max_workers=len(shards), mp_context=multiprocessing.get_context("spawn"))
    try:
        results = await asyncio.gather(*(loop.run_in_executor(executor, _replay_shard, shard) for shard in shards))
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    async with pool.acquire() as conn:
        spread = await renja_in_two_partitions(conn, projector.tables)
    if spread is not None:
        log.warning("audit_replay_unsharded", reason=f"Renja {spread} has events in more than one partition")
        return None
    return sum(r for r, _ in results), sum(e for _, e in results)


async def _replay_phase(
    pool: asyncpg.Pool,
    consumer: AIOKafkaConsumer,
    plan: _Plan,
    *,
    dsn: str | None,
    workers: int,
    tick: Callable[[int], None],
) -> tuple[int, int]:
    """Fold ``plan`` into the fresh ``plan.projector.tables`` (in ``workers`` processes when more than one
    and a ``dsn`` is given, else in this one, overlapping decode and writes)."""
    if workers > 1 and dsn is not None and len(plan.tps) > 1:
        done = await _replay_in_processes(pool, plan, dsn=dsn, workers=workers)
        if done is not None:
            tick(done[0])
            return done
        async with pool.acquire() as conn:
            await create_tables(conn, plan.projector.tables)
    async with pool.acquire() as conn:
        with fewer_collections():
            return await fold_range_pipelined(conn, consumer, plan.tps, plan.end, plan.projector, plan.batch_max, tick)


@contextlib.asynccontextmanager
async def fresh_replay(
    pool: asyncpg.Pool, projector: Projector, bootstrap: str, client_id: str
) -> AsyncIterator[AIOKafkaConsumer]:
    """Empty ``projector.tables`` (created anew), a cleared head cache and a group-less reader for
    :func:`replay_from_start`; on exit the reader is closed and the cache cleared again."""
    async with pool.acquire() as conn:
        await create_tables(conn, projector.tables)
    projector.forget()
    consumer = await open_reader(bootstrap, client_id)
    try:
        yield consumer
    finally:
        await close_reader(consumer)
        projector.forget()


async def replay_from_start(
    pool: asyncpg.Pool,
    consumer: AIOKafkaConsumer,
    *,
    bootstrap: str,
    topic: str,
    projector: Projector,
    progress: Progress | None,
    batch_max: int,
    workers: int,
    dsn: str | None,
) -> tuple[list[TopicPartition], dict[TopicPartition, int], int, int]:
    """Fold ``topic`` from its beginning to the end offsets taken now into ``projector.tables`` (fresh).

    Returns ``(partitions, end offsets, records, events)``; ``progress(done, total)`` in records.
    ``consumer`` (group-less) is left positioned at the end offsets.
    """
    tps = await topic_partitions(consumer, topic)
    await seek_to(consumer, tps, {})
    begin = await consumer.beginning_offsets(tps)
    end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    total = sum(end[tp] - begin[tp] for tp in tps)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, max(total, done))

    plan = _Plan(bootstrap, topic, projector, tps, begin, end, batch_max)
    records, events = await _replay_phase(pool, consumer, plan, dsn=dsn, workers=workers, tick=tick)
    return tps, end, records, events


async def replay_into(
    pool: asyncpg.Pool,
    *,
    bootstrap: str,
    topic: str,
    projector: Projector,
    progress: Progress | None = None,
    batch_max: int = 5000,
    workers: int = 1,
    dsn: str | None = None,
) -> tuple[int, int]:
    """Only the replay phase: fresh ``projector.tables`` folded from offset 0 to the end offsets taken at
    the start; no comparison, no swap (the benchmark times this). Returns ``(records, events)``.

    ``workers > 1`` (with ``dsn``, the pool's database) folds the partitions in that many processes; the
    tables come out the same (see ``_replay_in_processes``). Progress is then reported once, at the end.
    Raises ``ValueError`` if ``projector.tables`` is the live set.
    """
    if projector.tables == LIVE:
        raise ValueError("a replay must write into a table set other than the live one")
    async with fresh_replay(pool, projector, bootstrap, "audit-replay") as consumer:
        _, _, records, events = await replay_from_start(
            pool, consumer, bootstrap=bootstrap, topic=topic, projector=projector, progress=progress,
            batch_max=batch_max, workers=workers, dsn=dsn,
        )  # fmt: skip
        return records, events
