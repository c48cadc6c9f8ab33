"""``/readyz`` tells the truth about Kafka: the local stack's broker is frozen (SIGSTOP), the service turns
503 within the probe's bound, and 200 again once the broker is resumed (SIGCONT).

Runs against the real local stack only (it signals the stack's Kafka process); the broker is always
resumed, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from deploy.local.kafka_broker import Kafka
from deploy.local.settings import StackSettings
from services.directive.main import create_app
from services.directive.settings import DirectiveSettings
from tests.kit.servicekit import run_service

pytestmark = pytest.mark.integration

PROBE_BOUND_S = 2.0 + 3.0
"""The Kafka probe's timeout plus its cache period (``shared.runtime.KafkaProbe``)."""


async def wait_ready(client: httpx.AsyncClient, want: int, timeout_s: float) -> tuple[float, dict[str, object]]:
    """Poll ``/readyz`` until it answers ``want``; returns the seconds it took and the last body."""
    started = time.monotonic()
    body: dict[str, object] = {}
    while time.monotonic() - started < timeout_s:
        r = await client.get("/readyz")
        body = r.json()
        if r.status_code == want:
            return time.monotonic() - started, body
        await asyncio.sleep(0.2)
    raise AssertionError(f"/readyz never answered {want} within {timeout_s}s; last: {body}")


async def test_readyz_turns_503_while_kafka_is_frozen_and_200_after(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, _):
        await wait_ready(client, 200, 30)
        pid = Kafka(StackSettings()).pid()
        assert pid is not None, "the local stack's Kafka is not running"
        os.kill(pid, signal.SIGSTOP)
        try:
            took, body = await wait_ready(client, 503, PROBE_BOUND_S + 2.0)
            assert took <= PROBE_BOUND_S + 1.0, took
            checks = body["checks"]
            assert isinstance(checks, dict) and checks["kafka"] is False and checks["postgres"] is True, checks
            started = time.monotonic()
            assert (await client.get("/readyz")).status_code == 503
            assert time.monotonic() - started < 2.5, "a probe during the freeze is bounded"
        finally:
            os.kill(pid, signal.SIGCONT)
        _, body = await wait_ready(client, 200, 60)
        assert body["checks"]["kafka"] is True  # type: ignore[index]
