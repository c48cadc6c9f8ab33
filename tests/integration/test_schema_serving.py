"""A record's ``ce_dataschema`` resolves on the running stack: a service publishes an event, the URL in
its header answers with the schema (from the audit, the default ``RENJA_SCHEMA_BASE_URL``; every service
serves the same files), and the record's value validates against what was fetched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from uuid import uuid4

import httpx
import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from deploy.local.settings import StackSettings
from shared.events.schema import schema_id
from shared.settings import ServiceSettings
from tests.kit.kafkatools import partitions
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration


async def _record_keyed(
    bootstrap: str, topic: str, start: dict[TopicPartition, int], key: bytes, timeout: float = 30.0
) -> ConsumerRecord[bytes, bytes]:
    """The first record with ``key`` at or after the ``start`` offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key == key:
                        return record
        raise AssertionError(f"no record keyed {key!r} on {topic} within {timeout}s")
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions(bootstrap, topic)]
        return dict(await consumer.end_offsets(tps))
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def test_a_published_records_dataschema_is_served_and_validates_its_value(settings: ServiceSettings) -> None:
    stack = StackSettings()
    start = await _end_offsets(settings.kafka_bootstrap, settings.event_topic)
    async with httpx.AsyncClient(timeout=30) as http:
        arahan = {
            "opd": f"Dinas Uji Skema {uuid4().hex[:8]}",
            "fiscal_year": 2031,
            "text": "Susun Renja",
            "addressee_name": "Ir. Ratna",
        }
        answer = await http.post(
            stack.service_url("directive") + "/renja", json=arahan, headers=auth(settings, "kepala_badan")
        )
        assert answer.status_code == 201, answer.text
        renja_id = answer.json()["renja_id"]
        record = await _record_keyed(settings.kafka_bootstrap, settings.event_topic, start, renja_id.encode())
        headers = {k: v.decode() for k, v in record.headers}
        url = headers["ce_dataschema"]
        assert url == f"{stack.service_url('audit')}/schemas/events/renja.DirectiveIssued.v2.schema.json"

        fetched = await http.get(url)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "application/schema+json"
        schema = fetched.json()
        assert schema["$id"] == schema_id(headers["ce_type"])
        value = json.loads(record.value)
        jsonschema.validate(value, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**value, "level": "bisikan"}, schema)

        same = await http.get(url.replace(stack.service_url("audit"), stack.service_url("directive")))
        assert same.status_code == 200 and same.content == fetched.content
        assert (await http.get(url.replace("DirectiveIssued", "NoSuchThing"))).status_code == 404
