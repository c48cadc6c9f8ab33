"""Kafka for tests: publish events onto a topic as a service would, read a topic back independently.

Reading uses a plain aiokafka consumer (no group, no commits), so it never disturbs the consumers under test.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import ConsumerRecord

from shared.dlq import partition_numbers, read_topic
from shared.events import Event
from shared.kafka import start_producer
from shared.settings import ServiceSettings
from tests.kit.signing import signed


async def publish(settings: ServiceSettings, topic: str, events: list[Event]) -> None:
    """Send ``events`` to ``topic`` in order, keyed by Renja id (CloudEvents binary mode), each signed by its
    producing service's key (``tests.kit.signing``) and each send awaited."""
    producer = await start_producer(settings.kafka_bootstrap, client_id="sopdriver")
    try:
        for event in events:
            record = signed(event)
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()


async def partitions(bootstrap: str, topic: str) -> list[int]:
    """Partition numbers of ``topic`` (fails if it does not exist)."""
    found = await partition_numbers(bootstrap, topic)
    assert found, f"topic {topic!r} does not exist"
    return found


async def read_all(
    bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` from offset 0 to the end offsets (``shared.dlq.read_topic``); waits until
    ``expect`` records exist, at most ``timeout`` seconds. Fails if the topic does not exist."""
    await partitions(bootstrap, topic)
    deadline = time.monotonic() + timeout
    while True:
        out = await read_topic(bootstrap, topic)
        if expect is None or len(out) >= expect or time.monotonic() > deadline:
            return out
        await asyncio.sleep(0.3)
