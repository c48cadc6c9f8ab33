"""aiokafka clients with the settings this project relies on, started with retries so start order is free.

Invariants:
- producers are idempotent (``enable_idempotence=True`` ⇒ ``acks=all``, one in-flight batch per partition,
  so the order of one Renja's events within its partition is kept);
- consumers never auto-commit (``enable_auto_commit=False``); offsets are committed by the caller after
  its database commit;
- topics are created explicitly (the broker runs with auto-create off);
- every client carries the security settings (``RENJA_KAFKA_SECURITY_PROTOCOL``, SASL, TLS files:
  ``shared.settings.KafkaSecurity``), from this process's environment unless ``security`` is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared.settings import env_kafka_security

RETRYABLE = (KafkaConnectionError, KafkaError, OSError)


def security_of(security: Mapping[str, Any] | None) -> dict[str, Any]:
    """``security``, else this process's (``shared.settings.env_kafka_security``)."""
    return dict(security) if security is not None else env_kafka_security()


def _retrying(wait_seconds: float) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(RETRYABLE),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(wait_seconds),
        reraise=True,
    )


async def start_producer(
    bootstrap: str, *, client_id: str, wait_seconds: float = 120.0, security: Mapping[str, Any] | None = None
) -> AIOKafkaProducer:
    """An idempotent producer (``acks=all``), started once the broker answers (retries with backoff)."""
    async for attempt in _retrying(wait_seconds):
        with attempt:
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=client_id,
                enable_idempotence=True,
                linger_ms=5,
                max_batch_size=256 * 1024,
                request_timeout_ms=30000,
                **security_of(security),
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            return producer
    raise AssertionError("unreachable")


async def start_consumer(
    bootstrap: str,
    topic: str,
    *,
    group_id: str | None,
    client_id: str,
    listener: object | None = None,
    auto_offset_reset: str = "earliest",
    wait_seconds: float = 120.0,
    security: Mapping[str, Any] | None = None,
) -> AIOKafkaConsumer:
    """A manual-commit consumer subscribed to ``topic`` (or unsubscribed when ``group_id`` is None)."""
    async for attempt in _retrying(wait_seconds):
        with attempt:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group_id,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset=auto_offset_reset,
                max_partition_fetch_bytes=4 * 1024 * 1024,
                isolation_level="read_uncommitted",
                **security_of(security),
            )
            if group_id is not None:
                consumer.subscribe([topic], listener=listener)
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            return consumer
    raise AssertionError("unreachable")


async def ensure_topics(
    bootstrap: str,
    topics: dict[str, tuple[int, dict[str, str]]],
    *,
    replication_factor: int = 1,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Create each ``name -> (partitions, configs)`` topic if absent (replication factor 1 locally)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security_of(security))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name, num_partitions=parts, replication_factor=replication_factor, topic_configs=configs)
            for name, (parts, configs) in topics.items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()
