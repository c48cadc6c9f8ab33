"""The readiness probe of Kafka is bounded and cached (``shared.runtime.KafkaProbe``)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from shared.runtime import KafkaProbe

pytestmark = pytest.mark.unit


async def test_a_broker_that_never_answers_is_reported_within_the_bound() -> None:
    # a listening socket that never accepts: TCP connects (the kernel's backlog), Kafka never answers,
    # as with a frozen broker
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        probe = KafkaProbe(f"127.0.0.1:{port}", "renja.events", timeout_s=0.5, cache_s=60)
        started = time.monotonic()
        ok, why = await probe.check()
        took = time.monotonic() - started
        await probe.close()
    assert ok is False and why, why
    assert took < 1.5, took


async def test_answers_are_cached_and_concurrent_probes_share_one_request() -> None:
    probe = KafkaProbe("127.0.0.1:1", "renja.events", timeout_s=0.5, cache_s=60)
    asked = 0

    async def ask() -> tuple[bool, str | None]:
        nonlocal asked
        asked += 1
        await asyncio.sleep(0.05)
        return True, None

    probe._ask = ask  # type: ignore[method-assign]
    answers = await asyncio.gather(*(probe.check() for _ in range(20)))
    assert answers == [(True, None)] * 20
    assert asked == 1
    probe.cache_s = 0
    await probe.check()
    assert asked == 2
