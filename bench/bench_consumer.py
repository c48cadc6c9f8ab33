"""Benchmark: the idempotent consumer against its raw limit, a bare aiokafka consumer reading the same topic.

1. N decider-valid events (whole Renja cycles) are produced as CloudEvents to a scratch topic;
2. raw limit: a bare aiokafka consumer in a fresh group (``shared.kafka.start_consumer``) reads them all
   with ``getmany`` (``--batch`` records at most), without decoding;
3. ``shared.inbox.IdempotentConsumer`` in another fresh group applies them all into a scratch database:
   - with a per-event ``handler`` doing one INSERT (each event in a savepoint of its own);
   - with a ``batch_handler`` doing one ``executemany`` per partition batch (the bulk path);
   decoding, the inbox claim, the handler, the commit and the offset commit included;
4. prints events/s for each and the ratios consumer / bare (target >= 0.5, issue 2).

Each measurement starts when the group has assigned the partitions (the group join, ~3 s of broker
``group.initial.rebalance.delay.ms``, is the same for both and not part of the throughput) and stops at
the last record read / applied. The scratch database and topics are removed afterwards. Run against the
local stack: ``uv run python bench/bench_consumer.py --events 50000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import asyncpg
from aiokafka.abc import ConsumerRebalanceListener
from benchkit import Rate, bench_settings, flatten, ratio_line, scratch_database, scratch_topics, synthetic_cycles

from shared.cloudevents import to_kafka
from shared.events import Event
from shared.inbox import Delivery, IdempotentConsumer
from shared.kafka import start_consumer, start_producer
from shared.origin import service_signer

APPLIED_TABLE = "CREATE TABLE bench_applied (event_id uuid PRIMARY KEY, renja_id uuid NOT NULL, event_type text)"
INSERT = "INSERT INTO bench_applied (event_id, renja_id, event_type) VALUES ($1, $2, $3)"


async def produce(bootstrap: str, topic: str, events: list[Event]) -> float:
    """Send every event as a binary-mode CloudEvent (send all, then gather); returns seconds."""
    producer = await start_producer(bootstrap, client_id="bench-consumer-producer")
    try:
        t0 = time.perf_counter()
        futures = []
        for event in events:
            rec = service_signer(event.source).signed(to_kafka(event))  # as the services publish it
            futures.append(await producer.send(topic, key=rec.key, value=rec.value, headers=rec.headers))
        await asyncio.gather(*futures)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers when the group first assigned partitions (the start of the measurement)."""

    def __init__(self) -> None:
        self.at: float | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned and self.at is None:
            self.at = time.perf_counter()


async def bare_consumer(bootstrap: str, topic: str, n: int, batch: int) -> Rate:
    listener = _Assigned()
    consumer = await start_consumer(
        bootstrap, topic, group_id=f"bench-bare-{uuid4().hex[:8]}", client_id="bench-bare", listener=listener
    )
    try:
        got = 0
        while got < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=batch)
            got += sum(len(records) for records in batches.values())
        end = time.perf_counter()
    finally:
        await consumer.stop()
    assert listener.at is not None
    return Rate(f"bare aiokafka consumer, getmany {batch} (limit)", got, end - listener.at)


async def one_insert(conn: asyncpg.Connection, event: Event, _: Delivery) -> None:
    """The trivial per-event handler: one INSERT."""
    await conn.execute(INSERT, event.event_id, event.renja_id, event.event_type)


async def batch_insert(conn: asyncpg.Connection, items: Sequence[tuple[Event, Delivery]]) -> None:
    """The trivial batch handler: one ``executemany`` for the partition batch."""
    await conn.executemany(INSERT, [(e.event_id, e.renja_id, e.event_type) for e, _ in items])


async def idempotent_consumer(
    pool: asyncpg.Pool, bootstrap: str, topic: str, dlq: str, n: int, batch: int, *, bulk: bool
) -> Rate:
    name = f"bench-{'bulk' if bulk else 'each'}-{uuid4().hex[:8]}"
    consumer = IdempotentConsumer(
        pool=pool,
        bootstrap=bootstrap,
        topic=topic,
        group_id=name,
        dlq_topic=dlq,
        handler=one_insert,
        batch_handler=batch_insert if bulk else None,
        batch_max=batch,
    )
    task = asyncio.create_task(consumer.run())
    try:
        while not consumer.stats.assigned:
            if task.done():
                task.result()
            await asyncio.sleep(0.001)
        start = time.perf_counter()
        while consumer.stats.applied < n:
            if task.done():
                task.result()
            await asyncio.sleep(0.002)
        end = time.perf_counter()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if consumer.stats.dead_lettered or consumer.stats.duplicates:
        raise RuntimeError(f"unexpected consumer stats {consumer.stats}")
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT count(*) FROM bench_applied")
        await conn.execute("TRUNCATE bench_applied")
    if stored != n:
        raise RuntimeError(f"{stored} rows applied, expected {n}")
    label = "batch_handler, one executemany" if bulk else "handler, one INSERT per event"
    return Rate(f"IdempotentConsumer ({label})", consumer.stats.applied, end - start)


async def main(events: int, batch: int, partitions: int) -> None:
    settings = bench_settings()
    all_events = flatten(synthetic_cycles(events))
    n = len(all_events)
    async with scratch_topics(settings, partitions, 1) as (topic, dlq), scratch_database(settings) as dsn:
        seconds = await produce(settings.kafka_bootstrap, topic, all_events)
        print(f"produced {n} events to {topic} in {seconds:.1f} s")
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await conn.execute(APPLIED_TABLE)
            bare = await bare_consumer(settings.kafka_bootstrap, topic, n, batch)
            each = await idempotent_consumer(pool, settings.kafka_bootstrap, topic, dlq, n, batch, bulk=False)
            bulk = await idempotent_consumer(pool, settings.kafka_bootstrap, topic, dlq, n, batch, bulk=True)
        finally:
            await pool.close()
    for rate in (bare, each, bulk):
        print(rate.line())
    print(ratio_line("consumer (per-event handler) / bare", each, bare, 0.5))
    print(ratio_line("consumer (batch handler) / bare", bulk, bare, 0.5))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000, help="events to produce and consume (default 50000)")
    parser.add_argument("--batch", type=int, default=500, help="getmany max_records (service default 500)")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of the scratch topic")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batch, args.partitions))
