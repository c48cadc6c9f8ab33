"""Kafka security settings for real (issue 15 item 4): a scratch broker of its own (``SecuredKafka``, ports
RENJA_SCRATCH_KAFKA_PORTS or 19174-19176; the shared stack stays plaintext) with a SASL_SSL listener
(SCRAM-SHA-512) and an mTLS listener. Produce and consume through ``shared.kafka`` with the settings
``shared.settings.KafkaSecurity`` builds; a wrong password and an untrusted CA are refused.

Marker ``cluster``: not in ``make test``; run with ``make test-tls`` (needs the Maven Kafka jars of setup).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka.errors import KafkaConnectionError

from deploy.local.process import tcp_open
from deploy.local.secured import Pki, SecuredKafka, make_pki
from deploy.local.settings import StackSettings
from shared.kafka import ensure_topics, start_consumer, start_producer
from shared.settings import KafkaSecurity

pytestmark = pytest.mark.cluster

PORTS = [int(p) for p in os.environ.get("RENJA_SCRATCH_KAFKA_PORTS", "19174,19175,19176").split(",")]
USER, PASSWORD = "renja-documents", "s3cret-scram-password"


@pytest.fixture(scope="module")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[SecuredKafka, Pki]]:
    directory = tmp_path_factory.mktemp("secured-kafka")
    pki = make_pki(directory / "pki")
    kafka = SecuredKafka(
        StackSettings(run_dir=directory), directory, pki,
        sasl_port=PORTS[0], mtls_port=PORTS[1], controller_port=PORTS[2],
        user=USER, password=PASSWORD,
    )  # fmt: skip
    await kafka.start()
    try:
        for _ in range(300):  # a loaded 2-core machine takes minutes to start a JVM broker
            if await tcp_open("127.0.0.1", PORTS[0]):
                break
            await asyncio.sleep(1)
        yield kafka, pki
    finally:
        await kafka.stop()


def _sasl(pki: Pki, password: str = PASSWORD, ca: Path | None = None) -> dict[str, object]:
    return KafkaSecurity(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username=USER, kafka_sasl_password=password,
        kafka_ssl_cafile=ca or pki.ca,
    ).kafka_security()  # fmt: skip


def _mtls(pki: Pki, *, with_cert: bool = True) -> dict[str, object]:
    return KafkaSecurity(
        kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert if with_cert else None,
        kafka_ssl_keyfile=pki.client_key if with_cert else None,
    ).kafka_security()  # fmt: skip


async def _round_trip(bootstrap: str, security: dict[str, object]) -> bytes:
    topic = f"secured.{uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: (1, {})}, security=security)
    producer = await start_producer(bootstrap, client_id="t", wait_seconds=60, security=security)
    try:
        await producer.send_and_wait(topic, b"renja-id", key=b"k")
    finally:
        await producer.stop()
    consumer = await start_consumer(
        bootstrap, topic, group_id=f"g-{uuid4().hex[:6]}", client_id="t", wait_seconds=60, security=security
    )
    try:
        record = await asyncio.wait_for(consumer.getone(), 60)
        await consumer.commit()
        return bytes(record.value or b"")
    finally:
        await consumer.stop()


async def test_produce_and_consume_over_sasl_ssl_scram(broker: tuple[SecuredKafka, Pki]) -> None:
    _, pki = broker
    assert await _round_trip(f"127.0.0.1:{PORTS[0]}", _sasl(pki)) == b"renja-id"


async def test_produce_and_consume_over_mtls(broker: tuple[SecuredKafka, Pki]) -> None:
    _, pki = broker
    assert await _round_trip(f"127.0.0.1:{PORTS[1]}", _mtls(pki)) == b"renja-id"


async def test_a_wrong_scram_password_is_refused(
    broker: tuple[SecuredKafka, Pki], caplog: pytest.LogCaptureFixture
) -> None:
    _, pki = broker
    with pytest.raises(KafkaConnectionError):
        await start_producer(f"127.0.0.1:{PORTS[0]}", client_id="t", wait_seconds=3, security=_sasl(pki, "wrong"))
    assert "Authentication failed" in caplog.text or "authentication" in caplog.text.lower(), caplog.text[-2000:]


async def test_an_untrusted_broker_certificate_is_refused(
    broker: tuple[SecuredKafka, Pki], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, pki = broker
    other = make_pki(tmp_path / "other", ca_name="Not the Renja CA")
    with pytest.raises(KafkaConnectionError):
        await start_producer(f"127.0.0.1:{PORTS[0]}", client_id="t", wait_seconds=3, security=_sasl(pki, ca=other.ca))
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text, caplog.text[-2000:]


async def test_mtls_without_a_client_certificate_is_refused(broker: tuple[SecuredKafka, Pki]) -> None:
    _, pki = broker
    with pytest.raises(KafkaConnectionError):
        await start_producer(
            f"127.0.0.1:{PORTS[1]}", client_id="t", wait_seconds=3, security=_mtls(pki, with_cert=False)
        )
