"""Reading ``renja.events`` as the audit does: group-less, from positions it chooses, decoded in batches.

The audit never joins a consumer group: the live projection positions itself from its stored offsets,
and a rebuild, ``verify`` and ``reconcile`` read from offset 0 up to the end offsets taken when they
start. This module owns that reading (``open_reader`` … ``read_range``, and ``read_from_start`` for the
one-shot readers) and the decoding of records into events (``decode_batch``), which never raises for a
record that is not one of our CloudEvents: it is listed in ``DecodedBatch.rejects`` instead. A record
whose origin is not proven (``shared.origin.Trust``: unsigned outside the legacy cut-over, signed by an
unknown key, by another service's key, or a signature that does not verify) is rejected the same way,
with the reason ``unsigned``, ``unknown_key``, ``wrong_signer`` or ``bad_signature``: the audit never
folds or chains it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.cloudevents import DecodeError, from_kafka
from shared.events import Event
from shared.origin import Trust, process_trust
from shared.settings import env_kafka_security

Record: TypeAlias = ConsumerRecord[bytes, bytes]  # explicit alias: mypy needs it to use the name as a type


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
        **env_kafka_security(),
    )
    await consumer.start()
    return consumer


async def close_reader(consumer: AIOKafkaConsumer) -> None:
    """Stop a reader from :func:`open_reader`."""
    # aiokafka's group-less coordinator may re-raise the CancelledError of its own helper task on stop
    with contextlib.suppress(asyncio.CancelledError):
        await consumer.stop()


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


async def read_from_start(
    bootstrap: str,
    topic: str,
    client_id: str,
    *,
    partitions: Collection[int] | None = None,
    batch_max: int = 5000,
) -> AsyncIterator[list[Record]]:
    """Batches of ``topic``'s records from offset 0 to the end offsets at the time of the call.

    ``partitions``: only these partition numbers (default: all). The reader is opened and closed here.
    Raises ``LookupError`` for a topic without partitions.
    """
    consumer = await open_reader(bootstrap, client_id)
    try:
        tps = await topic_partitions(consumer, topic)
        if partitions is not None:
            tps = [tp for tp in tps if tp.partition in partitions]
        await seek_to(consumer, tps, {})
        end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        async for batch in read_range(consumer, tps, end, batch_max):
            yield batch
    finally:
        await close_reader(consumer)


@dataclass(slots=True)
class DecodedBatch:
    """One batch of records after decoding, before any database work.

    ``events``: the records that are our CloudEvents, with their event, in record order; ``rejects``:
    ``(partition, offset, reason, detail)`` of the broken others; ``offsets``: the next offset per
    partition; ``size``: how many records the batch had; ``skipped``: ``(partition, offset, ce_type)`` of
    the records of an event type this release does not know (a newer producer's: tolerant reader).
    """

    events: list[tuple[Record, Event]]
    rejects: list[tuple[int, int, str, str]]
    offsets: dict[int, int]
    size: int
    skipped: list[tuple[int, int, str]] = field(default_factory=list)


def _decode_into(batch: DecodedBatch, records: Sequence[Record], trust: Trust) -> None:
    offsets = batch.offsets
    for rec in records:
        offsets[rec.partition] = max(offsets.get(rec.partition, 0), rec.offset + 1)
        try:
            event = from_kafka(rec.key, rec.value, rec.headers)
            trust.check(rec.key, rec.value, rec.headers, rec.partition, rec.offset)
            batch.events.append((rec, event))
        except DecodeError as exc:
            if exc.skippable:
                ce_type = dict(rec.headers or ()).get("ce_type", b"").decode(errors="replace")
                batch.skipped.append((rec.partition, rec.offset, ce_type))
            else:
                batch.rejects.append((rec.partition, rec.offset, exc.reason, exc.detail[:2000]))


def decode_batch(records: Sequence[Record], trust: Trust | None = None) -> DecodedBatch:
    """Decode ``records`` (``shared.cloudevents.from_kafka``) and check their origin against ``trust``
    (default ``shared.origin.process_trust()``); pure CPU, never raises for a bad record."""
    batch = DecodedBatch([], [], {}, len(records))
    _decode_into(batch, records, trust or process_trust())
    return batch


async def decode_batch_yielding(
    records: Sequence[Record], chunk: int = 256, trust: Trust | None = None
) -> DecodedBatch:
    """:func:`decode_batch`, handing the event loop back every ``chunk`` records.

    Used while the previous batch is being written: between chunks the loop keeps feeding its COPY to
    Postgres, so the server works on batch *n* while Python decodes batch *n + 1*.
    """
    batch = DecodedBatch([], [], {}, len(records))
    checked = trust or process_trust()
    for start in range(0, len(records), chunk):
        _decode_into(batch, records[start : start + chunk], checked)
        await asyncio.sleep(0)
    return batch
