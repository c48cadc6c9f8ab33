"""An operator's scrape of the running stack after a demo cycle: every service's ``/metrics`` shows the
commands counted, events consumed, the outbox drained, no consumer lag, and the audit caught up.

Needs the local stack (``renja up``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from deploy.local.settings import StackSettings
from shared.manifest import SERVICE_NAMES
from tests.e2e.test_demo import run_demo
from tests.kit.metrics import Samples, parse

pytestmark = pytest.mark.e2e


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def settled(name: str, samples: Samples) -> bool:
    """Outbox drained and nothing behind on the log (the audit: its projection; the others: their consumer)."""
    lag_name = "renja_audit_projection_lag_records" if name == "audit" else "renja_consumer_lag_records"
    lags = series(samples, lag_name)
    outbox = series(samples, "renja_outbox_backlog_rows")
    return bool(lags) and set(lags.values()) == {0} and set(outbox.values()) == {0}


async def scrape_all(stack: StackSettings) -> dict[str, Samples]:
    async with httpx.AsyncClient(timeout=10) as http:
        pages = await asyncio.gather(*(http.get(f"{stack.service_url(n)}/metrics") for n in SERVICE_NAMES))
    assert all(p.status_code == 200 for p in pages), [p.status_code for p in pages]
    return {name: parse(page.text) for name, page in zip(SERVICE_NAMES, pages, strict=True)}


async def test_after_a_demo_cycle_every_service_reports_commands_no_backlog_no_lag(tmp_path: Path) -> None:
    stack = StackSettings()
    await asyncio.to_thread(run_demo, tmp_path / "demo")
    deadline = time.monotonic() + 60
    scraped = await scrape_all(stack)
    while not all(settled(n, s) for n, s in scraped.items()) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        scraped = await scrape_all(stack)
    assert {n: settled(n, s) for n, s in scraped.items()} == dict.fromkeys(SERVICE_NAMES, True), {
        n: {k: v for k, v in s.items() if "lag" in k[0] or "backlog" in k[0]} for n, s in scraped.items()
    }
    applied = {
        name: sum(v for labels, v in series(s, "renja_commands_total").items() if ("outcome", "applied") in labels)
        for name, s in scraped.items()
    }
    assert applied["directive"] >= 1 and applied["documents"] >= 1 and applied["approvals"] >= 1, applied
    for name in SERVICE_NAMES:
        if name != "audit":
            assert sum(series(scraped[name], "renja_consumer_events_applied_total").values()) >= 1, name
