"""Kafka for tests: publish events onto a topic as a service would, read a topic back independently.

Reading uses a plain aiokafka consumer (no group, no commits), so it never disturbs the consumers under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.cloudevents import to_kafka
from shared.events import Event
from shared.kafka import start_producer
from shared.settings import ServiceSettings


async def publish(settings: ServiceSettings, topic: str, events: list[Event]) -> None:
    """Send ``events`` to ``topic`` in order, keyed by Renja id (CloudEvents binary mode), each send awaited."""
    producer = await start_producer(settings.kafka_bootstrap, client_id="sopdriver")
    try:
        for event in events:
            record = to_kafka(event)
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()


async def partitions(bootstrap: str, topic: str) -> list[int]:
    """Partition numbers of ``topic`` (fails if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, f"topic {topic!r}: error {described['error_code']}"
    return sorted(p["partition"] for p in described["partitions"])


async def read_all(
    bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` from offset 0 to the end offsets; waits until ``expect`` records exist."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        parts = await partitions(bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        deadline = time.monotonic() + timeout
        while True:
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            out: list[ConsumerRecord[bytes, bytes]] = []
            while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                batch = await consumer.getmany(*tps, timeout_ms=1000)
                for recs in batch.values():
                    out.extend(recs)
            if expect is None or len(out) >= expect or time.monotonic() > deadline:
                return out
            await asyncio.sleep(0.3)
    finally:
        # aiokafka's group-less coordinator re-raises the CancelledError of its own helper task on stop
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
