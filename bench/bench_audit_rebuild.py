"""Benchmark: the audit rebuild against the raw limit, a bare aiokafka consumer reading the same topic.

1. produce N decider-valid events (whole Renja cycles, some with returns or cancelled) to a scratch topic;
2. time a bare group-less aiokafka consumer reading them all (no decoding);
3. time ``services.audit.rebuild.replay_into`` folding them into a scratch database (decode, hash
   chain, state, COPY), in one process and split by partition over ``--workers`` processes;
4. print both rates (events/s) and the ratio; the target is ≥ 0.5 (DESIGN/issue 4: ten million events in
   under five minutes on two cores). A third reading, the bare consumer plus ``from_kafka`` on every
   record, shows how much of the gap is decoding and validation alone. The scratch topic and database
   are deleted afterwards.

Run against the local stack: ``uv run python bench/bench_audit_rebuild.py --events 200000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from benchkit import SHAPES
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.logreader import close_reader, open_reader, seek_to, topic_partitions
from services.audit.projector import Projector
from services.audit.replay import replay_into
from services.audit.settings import AuditSettings
from services.audit.tables import REBUILD
from shared.cloudevents import from_kafka, to_kafka
from shared.db import migrate
from shared.kafka import ensure_topics, start_producer
from shared.origin import service_signer
from shared.sop import load_sop
from tests.kit.driver import cycle_events

MIGRATIONS = Path(__file__).parents[1] / "services" / "audit" / "migrations"


async def produce(bootstrap: str, topic: str, n: int) -> int:
    """Produce at least ``n`` events (whole cycles); returns how many were produced."""
    sop = load_sop()
    producer = await start_producer(bootstrap, client_id="bench-audit")
    produced = 0
    start = datetime(2026, 1, 5, 1, tzinfo=UTC)
    futures: list[asyncio.Future[object]] = []
    try:
        i = 0
        while produced < n:
            renja, shape = UUID(int=i + 1, version=4), SHAPES[i % len(SHAPES)]
            events = cycle_events(sop, renja, start=start + timedelta(hours=i), opd=f"OPD {i}", **shape)  # type: ignore[arg-type]
            for e in events:
                rec = service_signer(e.source).signed(to_kafka(e))  # as the services publish it
                futures.append(await producer.send(topic, key=rec.key, value=rec.value, headers=rec.headers))
            produced += len(events)
            i += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return produced


async def bare_read(bootstrap: str, topic: str, *, decode: bool = False) -> tuple[int, float]:
    """Read the whole topic with a bare consumer; ``(records, seconds)``.

    ``decode=False``: no decoding at all (the raw limit). ``decode=True``: every record also goes through
    ``shared.cloudevents.from_kafka`` (header checks and pydantic validation), the floor of any consumer
    that must validate what it reads.
    """
    consumer = await open_reader(bootstrap, "bench-bare")
    try:
        tps = await topic_partitions(consumer, topic)
        await seek_to(consumer, tps, {})
        end = await consumer.end_offsets(tps)
        total = sum(end.values())
        t0 = time.perf_counter()
        n = 0
        while n < total:
            got = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in got.values():
                n += len(records)
                if decode:
                    for rec in records:
                        from_kafka(rec.key, rec.value, rec.headers)
        return n, time.perf_counter() - t0
    finally:
        await close_reader(consumer)


async def main(events: int, partitions: int, batch: int, workers: list[int]) -> None:
    settings = AuditSettings(environment="test")
    topic = f"bench.audit.{uuid4().hex[:8]}"
    db = f"bench_audit_{uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap, {topic: (partitions, {})})
    admin = await asyncpg.connect(settings.postgres_dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{db}"')
    try:
        t0 = time.perf_counter()
        n = await produce(settings.kafka_bootstrap, topic, events)
        print(f"produced {n} events to {topic} in {time.perf_counter() - t0:.1f} s")
        bare_n, bare_s = await bare_read(settings.kafka_bootstrap, topic)
        dec_n, dec_s = await bare_read(settings.kafka_bootstrap, topic, decode=True)
        dsn = settings.postgres_dsn(db)
        await migrate(dsn, MIGRATIONS)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        rebuilds: list[tuple[int, int, int, float]] = []
        try:
            key = Ed25519PrivateKey.generate()
            for n_workers in workers:
                projector = Projector(load_sop(), key, REBUILD, keep_cache=True)
                t1 = time.perf_counter()
                records, applied = await replay_into(
                    pool,
                    bootstrap=settings.kafka_bootstrap,
                    topic=topic,
                    projector=projector,
                    batch_max=batch,
                    workers=n_workers,
                    dsn=dsn,
                )
                rebuilds.append((n_workers, records, applied, time.perf_counter() - t1))
        finally:
            await pool.close()
        bare_rate, dec_rate = bare_n / bare_s, dec_n / dec_s
        print(f"bare aiokafka consumer:           {bare_n} records in {bare_s:.2f} s = {bare_rate:,.0f} events/s")
        print(f"bare consumer + from_kafka only:  {dec_n} records in {dec_s:.2f} s = {dec_rate:,.0f} events/s")
        for n_workers, records, applied, rebuild_s in rebuilds:
            rate = records / rebuild_s
            label = f"audit rebuild, {n_workers} process{'es' if n_workers > 1 else ''}:"
            print(f"{label:<33} {applied} events in {rebuild_s:.2f} s = {rate:,.0f} events/s")
            print(f"  ratio rebuild/bare: {rate / bare_rate:.2f} (target >= 0.5)")
            print(f"  ratio rebuild/(bare + decode): {rate / dec_rate:.2f} (no target; decoding alone is the floor)")
            print(f"  projected for 10 million events: {10_000_000 / rate / 60:.1f} min")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
        client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await client.start()
        with contextlib.suppress(Exception):
            await client.delete_topics([topic])
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="events to produce (default 200000)")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of the scratch topic")
    parser.add_argument("--batch", type=int, default=5000, help="records per rebuild transaction")
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated process counts to time the replay with (default 1,2)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.events, args.partitions, args.batch, [int(w) for w in args.workers.split(",")]))
