"""Reading a service's ``GET /metrics`` in tests: the exposition parsed into samples."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""``(sample name, labels) -> value``, e.g. ``("renja_commands_total", {("outcome", "applied"), …})``."""


def parse(exposition: str) -> Samples:
    """Every sample of a text exposition, keyed by name and label set."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one sample ``name`` with exactly ``labels`` (None if absent)."""
    return samples.get((name, frozenset(labels.items())))


async def scrape(client: httpx.AsyncClient) -> Samples:
    """``GET /metrics`` parsed (asserts a 200 in the Prometheus text format)."""
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return parse(r.text)


async def wait_metric(
    client: httpx.AsyncClient, until: Callable[[Samples], bool], *, timeout_s: float = 30.0
) -> Samples:
    """Scrape every 0.2 s until ``until(samples)`` holds; fails with the last samples after ``timeout_s``."""
    samples: Samples = {}
    for _ in range(int(timeout_s / 0.2)):
        samples = await scrape(client)
        if until(samples):
            return samples
        await asyncio.sleep(0.2)
    renja = {k: v for k, v in samples.items() if k[0].startswith("renja_")}
    raise AssertionError(f"metrics never satisfied the condition; last renja_* samples: {renja}")
