"""Rebuild the audit projection from offset 0 while the live one keeps serving; compare; swap atomically.

Procedure (``rebuild``):

1. create empty ``audit_*_rebuild`` tables shaped like the live ones;
2. replay ``renja.events`` with a fresh group-less consumer from offset 0 to the end offsets taken at the
   start, through the same :class:`~services.audit.projection.Projector` as the live consumer;
3. wait until the live projection has folded at least as far as the rebuild;
4. in ONE transaction: lock the live tables against writers (readers go on), fold into the rebuild the
   records the live consumer folded meanwhile (so both end at the same offsets), compare every row of
   every table (``EXCEPT`` both ways: events with their hashes, cycles with their signed heads,
   offsets, rejects) and, when equal (or ``force``), rename the rebuild tables into place and drop the
   old ones. A difference leaves the live tables untouched and the rebuild tables for inspection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.projection import (
    BASE_TABLES,
    LIVE,
    REBUILD,
    BatchResult,
    DecodedBatch,
    Projector,
    TableSet,
    close_reader,
    decode_batch_yielding,
    open_reader,
    read_range,
    seek_to,
    stored_offsets,
    topic_partitions,
)
from shared.sop import SopDefinition

log = structlog.get_logger(__name__)

Progress = Callable[[int, int], None]
"""``progress(records_done, records_total)`` after each batch."""


@dataclass
class Comparison:
    """Rows present in one table set and not the other, per table (``{table: (only_live, only_other)}``)."""

    differences: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not any(a or b for a, b in self.differences.values())


@dataclass
class RebuildReport:
    """Outcome: ``records`` read from the log, ``events`` rows rebuilt, whether the two projections were
    ``equal`` and whether the rebuild was ``swapped`` in; ``comparison`` per table; ``seconds`` spent."""

    records: int
    events: int
    equal: bool
    swapped: bool
    comparison: Comparison
    seconds: float
    offsets: dict[int, int]


async def create_tables(conn: asyncpg.Connection, target: TableSet, like: TableSet = LIVE) -> None:
    """(Re)create ``target``'s tables empty, with the columns, keys and indexes of ``like``'s."""
    for base in BASE_TABLES:
        await conn.execute(f"DROP TABLE IF EXISTS {base}{target.suffix}")
        await conn.execute(f"CREATE TABLE {base}{target.suffix} (LIKE {base}{like.suffix} INCLUDING ALL)")


async def compare(conn: asyncpg.Connection, a: TableSet = LIVE, b: TableSet = REBUILD) -> Comparison:
    """Row-by-row comparison of every projection table (all columns, hashes and signatures included)."""
    result = Comparison()
    for base in BASE_TABLES:
        ta, tb = f"{base}{a.suffix}", f"{base}{b.suffix}"
        only_a = await conn.fetchval(f"SELECT count(*) FROM (SELECT * FROM {ta} EXCEPT ALL SELECT * FROM {tb}) x")
        only_b = await conn.fetchval(f"SELECT count(*) FROM (SELECT * FROM {tb} EXCEPT ALL SELECT * FROM {ta}) x")
        result.differences[base] = (int(only_a), int(only_b))
    return result


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


async def _fold_range(
    pool_or_conn: asyncpg.Connection,
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    end: dict[TopicPartition, int],
    projector: Projector,
    batch_max: int,
    progress: Callable[[int], None] | None,
    *,
    own_transactions: bool,
) -> tuple[int, int]:
    if own_transactions:
        return await _fold_range_pipelined(pool_or_conn, consumer, tps, end, projector, batch_max, progress)
    records = events = 0
    async for batch in read_range(consumer, tps, end, batch_max):
        result = await projector.apply(pool_or_conn, batch)
        records += len(batch)
        events += result.applied
        if progress is not None:
            progress(len(batch))
    return records, events


async def _apply_in_transaction(conn: asyncpg.Connection, projector: Projector, batch: DecodedBatch) -> BatchResult:
    async with conn.transaction():
        return await projector.apply_decoded(conn, batch)


async def _fold_range_pipelined(
    conn: asyncpg.Connection,
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    end: dict[TopicPartition, int],
    projector: Projector,
    batch_max: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """One transaction per batch, as before, but batch *n + 1* is decoded while batch *n* is written.

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
                return await _fold_range_pipelined(conn, consumer, tps, end, projector, shard.batch_max, None)
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


async def _replay_in_processes(
    pool: asyncpg.Pool,
    *,
    dsn: str,
    bootstrap: str,
    topic: str,
    projector: Projector,
    tps: list[TopicPartition],
    begin: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    batch_max: int,
    workers: int,
) -> tuple[int, int] | None:
    """The replay phase split by partition over ``workers`` processes; None if it cannot be trusted.

    Sound because every event of one Renja is in one partition (key = Renja id): each worker folds whole
    chains, the chain heads and the signatures (Ed25519 is deterministic) come out as a one-process fold
    would make them. That premise is checked afterwards: if some Renja has events in two partitions
    (e.g. partitions were added to the topic), None is returned and the caller replays in one process.
    """
    shards = [
        _Shard(
            dsn=dsn,
            bootstrap=bootstrap,
            topic=topic,
            partitions=group,
            end={tp.partition: end[tp] for tp in tps},
            sop=projector.sop,
            key_raw=projector.key.private_bytes_raw(),
            suffix=projector.tables.suffix,
            batch_max=batch_max,
            cache_max=projector.cache_max,
        )
        for group in _split({tp.partition: end[tp] - begin[tp] for tp in tps}, workers)
    ]
    loop = asyncio.get_running_loop()
    executor = ProcessPoolExecutor(max_workers=len(shards), mp_context=multiprocessing.get_context("spawn"))
    try:
        results = await asyncio.gather(*(loop.run_in_executor(executor, _replay_shard, shard) for shard in shards))
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    async with pool.acquire() as conn:
        spread = await conn.fetchval(
            f"SELECT renja_id FROM {projector.tables.events} GROUP BY renja_id"
            " HAVING count(DISTINCT kafka_partition) > 1 LIMIT 1"
        )
    if spread is not None:
        log.warning("audit_replay_unsharded", reason=f"Renja {spread} has events in more than one partition")
        return None
    return sum(r for r, _ in results), sum(e for _, e in results)


async def _replay_phase(
    pool: asyncpg.Pool,
    consumer: AIOKafkaConsumer,
    *,
    dsn: str | None,
    bootstrap: str,
    topic: str,
    projector: Projector,
    tps: list[TopicPartition],
    begin: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    batch_max: int,
    workers: int,
    tick: Callable[[int], None],
) -> tuple[int, int]:
    """Fold ``tps`` from ``begin`` to ``end`` into the fresh ``projector.tables`` (in ``workers`` processes
    when more than one and a ``dsn`` is given, else in this one, overlapping decode and writes)."""
    if workers > 1 and dsn is not None and len(tps) > 1:
        done = await _replay_in_processes(
            pool,
            dsn=dsn,
            bootstrap=bootstrap,
            topic=topic,
            projector=projector,
            tps=tps,
            begin=begin,
            end=end,
            batch_max=batch_max,
            workers=workers,
        )
        if done is not None:
            tick(done[0])
            return done
        async with pool.acquire() as conn:
            await create_tables(conn, projector.tables)
    async with pool.acquire() as conn:
        with fewer_collections():
            return await _fold_range(conn, consumer, tps, end, projector, batch_max, tick, own_transactions=True)


async def _replay_from_start(
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
    """Fold ``topic`` from its beginning to the end offsets taken now into ``projector.tables``.

    Returns ``(partitions, end offsets, records, events)``; ``progress(done, total)`` in records.
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

    records, events = await _replay_phase(
        pool, consumer, dsn=dsn, bootstrap=bootstrap, topic=topic, projector=projector, tps=tps,
        begin=begin, end=end, batch_max=batch_max, workers=workers, tick=tick,
    )  # fmt: skip
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
    """
    if projector.tables == LIVE:
        raise ValueError("a replay must write into a table set other than the live one")
    async with pool.acquire() as conn:
        await create_tables(conn, projector.tables)
    projector.forget()
    consumer = await open_reader(bootstrap, "audit-replay")
    try:
        _, _, records, events = await _replay_from_start(
            pool, consumer, bootstrap=bootstrap, topic=topic, projector=projector, progress=progress,
            batch_max=batch_max, workers=workers, dsn=dsn,
        )  # fmt: skip
        return records, events
    finally:
        await close_reader(consumer)
        projector.forget()


async def rebuild(
    pool: asyncpg.Pool,
    *,
    bootstrap: str,
    topic: str,
    projector: Projector,
    swap: bool = True,
    force: bool = False,
    progress: Progress | None = None,
    batch_max: int = 5000,
    live_wait_seconds: float = 60.0,
    workers: int = 1,
    dsn: str | None = None,
) -> RebuildReport:
    """Rebuild into ``projector.tables`` (must not be LIVE), compare with the live tables, swap if asked.

    ``swap=False``: build and compare only (the live tables are not locked beyond the comparison).
    ``force=True``: swap even if the comparison differs (the log is the source of truth).
    Raises ``TimeoutError`` if the live projection does not reach the rebuilt offsets within
    ``live_wait_seconds`` (is the audit service running?), ``LookupError`` for a missing topic.
    ``workers``/``dsn``: as for :func:`replay_into` (the replay phase only).
    """
    if projector.tables == LIVE:
        raise ValueError("a rebuild must write into a table set other than the live one")
    loop = asyncio.get_running_loop()
    started = loop.time()
    target = projector.tables
    async with pool.acquire() as conn:
        await create_tables(conn, target)
    projector.forget()
    consumer = await open_reader(bootstrap, "audit-rebuild")
    try:
        tps, end, records, events = await _replay_from_start(
            pool, consumer, bootstrap=bootstrap, topic=topic, projector=projector, progress=progress,
            batch_max=batch_max, workers=workers, dsn=dsn,
        )  # fmt: skip
        done = records

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, done)

        async with pool.acquire() as conn:
            rebuilt = {tp.partition: end[tp] for tp in tps}
            deadline = loop.time() + live_wait_seconds
            while True:
                live = await stored_offsets(conn, LIVE)
                behind = {p: o for p, o in rebuilt.items() if o > 0 and live.get(p, 0) < o}
                if not behind:
                    break
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"the live audit projection has not reached the rebuilt offsets {behind} within "
                        f"{live_wait_seconds:.0f} s; start the audit service (or rebuild with --force)"
                    )
                await asyncio.sleep(0.2)
            async with conn.transaction():
                # writers wait (the live consumer's fold takes ROW EXCLUSIVE on audit_offsets), readers go on
                # offsets first, the order the live fold takes its locks in (no deadlock)
                order = [LIVE.offsets] + [t for t in LIVE.all if t != LIVE.offsets]
                await conn.execute(f"LOCK TABLE {', '.join(order)} IN EXCLUSIVE MODE")
                live = await stored_offsets(conn, LIVE)
                catch_up = {tp: live.get(tp.partition, 0) for tp in tps}
                if any(catch_up[tp] > end[tp] for tp in tps):
                    # fold what the live consumer folded since the replay's end, so both stop at one offset
                    for tp in tps:
                        consumer.seek(tp, end[tp])
                    more_records, more_events = await _fold_range(
                        conn, consumer, tps, catch_up, projector, batch_max, tick, own_transactions=False
                    )
                    records += more_records
                    events += more_events
                comparison = await compare(conn, LIVE, target)
                swapped = False
                if swap and (comparison.equal or force):
                    await swap_in(conn, target)
                    swapped = True
                final = await stored_offsets(conn, LIVE if swapped else target)
    finally:
        await close_reader(consumer)
        projector.forget()
    seconds = loop.time() - started
    log.info("audit_rebuilt", records=records, events=events, equal=comparison.equal, swapped=swapped, seconds=seconds)
    return RebuildReport(records, events, comparison.equal, swapped, comparison, seconds, final)


async def swap_in(conn: asyncpg.Connection, target: TableSet) -> None:
    """Inside the caller's transaction: live tables → ``*_old`` (dropped), ``target`` → live names."""
    for base in BASE_TABLES:
        await conn.execute(f"ALTER TABLE {base} RENAME TO {base}_old")
        await conn.execute(f"ALTER TABLE {base}{target.suffix} RENAME TO {base}")
    for base in BASE_TABLES:
        await conn.execute(f"DROP TABLE {base}_old")


async def rebuild_equals_live(
    pool: asyncpg.Pool, *, bootstrap: str, topic: str, projector: Projector, live_wait_seconds: float = 60.0
) -> bool:
    """True if a rebuild from offset 0 gives exactly the live projection (rows and hashes); nothing is
    swapped, and the scratch tables are dropped afterwards. For the demo and the tests."""
    try:
        report = await rebuild(
            pool,
            bootstrap=bootstrap,
            topic=topic,
            projector=projector,
            swap=False,
            live_wait_seconds=live_wait_seconds,
        )
    finally:
        async with pool.acquire() as conn:
            for table in projector.tables.all:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
    return report.equal
