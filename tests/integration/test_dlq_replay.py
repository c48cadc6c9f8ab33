"""``renja dlq replay`` against real Kafka: a repaired dead letter goes back to its Renja's partition
through our producer, once; a still-broken one is refused with its reason."""

from __future__ import annotations

from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer

from shared.dlq import dead_letters, replay
from shared.settings import ServiceSettings
from tests.kit.factories import directive
from tests.kit.kafkatools import read_all
from tests.kit.signing import signed

pytestmark = pytest.mark.integration


async def test_replay_puts_a_dead_letter_back_in_its_partition_once(topic: str, settings: ServiceSettings) -> None:
    stream = uuid4()
    reference = signed(directive(stream, text="first"))  # sent by the services' own producer
    lost = signed(directive(stream, text="refused by a bug since fixed"))
    dlq_extra = [("dlq_reason", b"handler_error"), ("dlq_error", b"ValueError: bug"), ("dlq_consumer", b"t"),
                 ("dlq_topic", topic.encode()), ("dlq_partition", b"0"), ("dlq_offset", b"1")]  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=reference.key, value=reference.value, headers=reference.headers)
        # re-sent by another tool without a key: the replay takes the Renja id from ce_subject
        await producer.send_and_wait(f"{topic}.dlq", key=None, value=lost.value, headers=[*lost.headers, *dlq_extra])
        await producer.send_and_wait(
            f"{topic}.dlq", key=lost.key, value=b"{still not json", headers=[*lost.headers, *dlq_extra]
        )
    finally:
        await producer.stop()

    letters = await dead_letters(settings.kafka_bootstrap, f"{topic}.dlq")
    assert [d.reason for d in letters] == ["handler_error", "handler_error"]
    first = await replay(settings.kafka_bootstrap, topic, letters)
    assert [o.outcome for o in first] == ["replayed", "still_broken"]
    assert first[1].detail.startswith("not_json")
    again = await replay(settings.kafka_bootstrap, topic, letters)
    assert [o.outcome for o in again] == ["already_replayed", "still_broken"]

    on_log = await read_all(settings.kafka_bootstrap, topic, expect=2)
    assert len(on_log) == 2  # the replayed one once, not twice
    assert {r.partition for r in on_log} == {on_log[0].partition}  # one Renja, one partition
    replayed = next(r for r in on_log if r.value == lost.value)
    assert replayed.key == str(stream).encode()
    assert not any(k.startswith("dlq_") for k, _ in replayed.headers)
