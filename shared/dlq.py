"""Dead letters: read a group's dead-letter topic, and put a repaired record back on the event log.

A record reaches ``renja.events.dlq.<group>`` with its original key, value and headers plus ``dlq_*``
headers (``shared.inbox.dlq_headers``). Replaying re-injects the original record into ``renja.events``
through our own producer — the same partitioner as the services (murmur2 of the key, as Kafka's Java
client), so the record lands in its Renja's partition — never through a tool with another partitioner.

Invariants:
- only a record that decodes as one of our events is replayed (a still-broken one is refused with the
  decoder's reason); its key is the event's Renja id even if the dead letter had none;
- a replay is idempotent: a marker keyed by ``<dlq topic>:<partition>:<offset>`` on the compacted topic
  ``renja.events.dlq-replays`` is written after the record is acknowledged, and a marked record is not
  sent again; should a crash fall between the two, the consumers' inboxes apply the event once anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.cloudevents import DecodeError, from_kafka, header_map
from shared.kafka import ensure_topics, start_producer
from shared.settings import env_kafka_security

REPLAYS_TOPIC = "renja.events.dlq-replays"
"""Compacted topic of replay markers (key ``<dlq topic>:<partition>:<offset>``, value: when and where)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered record: where it sits in the DLQ, why it is there, and the original record."""

    topic: str
    partition: int
    offset: int
    reason: str
    error: str
    consumer: str
    origin: str
    """``<topic>:<partition>:<offset>`` of the original record."""
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def marker(self) -> str:
        """The replay marker's key for this dead letter."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        """The record's own headers, without the ``dlq_*`` ones added when it was dead-lettered."""
        return [(k, v.encode()) for k, v in self.headers.items() if not k.startswith("dlq_")]


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What ``replay`` did with one dead letter: ``replayed``, ``already_replayed`` or ``still_broken``."""

    dead_letter: DeadLetter
    outcome: str
    detail: str = ""


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from offset 0 to its end offsets at the time of the call (no group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **env_kafka_security()
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partition_numbers(bootstrap, topic)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for recs in (await consumer.getmany(*tps, timeout_ms=1000)).values():
                out.extend(r for r in recs if r.offset < end[TopicPartition(r.topic, r.partition)])
        return out
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def partition_numbers(bootstrap: str, topic: str) -> list[int]:
    """Partition numbers of ``topic``; empty if it does not exist (a group that never dead-lettered)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **env_kafka_security())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0:
        return []
    return sorted(p["partition"] for p in described["partitions"])


def dead_letter_of(rec: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    """A DLQ record as a ``DeadLetter`` (headers that are not UTF-8 are shown replaced, never raised)."""
    try:
        headers = header_map(rec.headers)
    except DecodeError:
        headers = {k: v.decode(errors="replace") for k, v in rec.headers or ()}
    return DeadLetter(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        reason=headers.get("dlq_reason", ""),
        error=headers.get("dlq_error", ""),
        consumer=headers.get("dlq_consumer", ""),
        origin=f"{headers.get('dlq_topic', '?')}:{headers.get('dlq_partition', '?')}:{headers.get('dlq_offset', '?')}",
        key=rec.key,
        value=rec.value,
        headers=headers,
    )


async def dead_letters(bootstrap: str, dlq_topic: str) -> list[DeadLetter]:
    """Every dead letter on ``dlq_topic``, in offset order."""
    return [dead_letter_of(rec) for rec in await read_topic(bootstrap, dlq_topic)]


async def replayed_markers(bootstrap: str) -> set[str]:
    """The markers of every dead letter replayed so far."""
    return {rec.key.decode() for rec in await read_topic(bootstrap, REPLAYS_TOPIC) if rec.key}


async def replay(
    bootstrap: str, event_topic: str, letters: list[DeadLetter], *, client_id: str = "renja-dlq-replay"
) -> list[ReplayOutcome]:
    """Re-inject ``letters`` into ``event_topic`` with our producer, each at most once (see module doc)."""
    await ensure_topics(bootstrap, {REPLAYS_TOPIC: (1, {"cleanup.policy": "compact", "retention.ms": "-1"})})
    done = await replayed_markers(bootstrap)
    producer = await start_producer(bootstrap, client_id=client_id)
    outcomes: list[ReplayOutcome] = []
    try:
        for letter in letters:
            if letter.marker in done:
                outcomes.append(ReplayOutcome(letter, "already_replayed"))
                continue
            # A dead letter without a key (e.g. re-sent by another tool) takes its Renja id from ce_subject;
            # the decoder checks it against the data either way.
            key = letter.key if letter.key is not None else letter.headers.get("ce_subject", "").encode()
            try:
                event = from_kafka(key, letter.value, letter.original_headers)
            except DecodeError as exc:
                outcomes.append(ReplayOutcome(letter, "still_broken", f"{exc.reason}: {exc.detail[:300]}"))
                continue
            await producer.send_and_wait(event_topic, key=key, value=letter.value, headers=letter.original_headers)
            marker = {"replayed_at": datetime.now(UTC).isoformat(), "event_id": str(event.event_id)}
            await producer.send_and_wait(REPLAYS_TOPIC, key=letter.marker.encode(), value=json.dumps(marker).encode())
            done.add(letter.marker)
            outcomes.append(ReplayOutcome(letter, "replayed", str(event.event_id)))
    finally:
        await producer.stop()
    return outcomes
