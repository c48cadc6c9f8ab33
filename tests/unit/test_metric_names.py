"""``GET /metrics`` follows the Prometheus naming conventions, and each app has a registry of its own.

The app is built and never started (no Postgres, no Kafka); its runtime gets a relay, a consumer and a
projection whose counts are set by hand, so that every ``renja_`` family has samples to check.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.directive.main import create_app
from services.directive.settings import DirectiveSettings
from shared.inbox import IdempotentConsumer
from shared.outbox import OutboxRelay
from shared.runtime import Runtime

pytestmark = pytest.mark.unit

BASE_UNITS = ("_seconds", "_bytes", "_rows", "_records", "_ratio", "_info")
"""Unit suffixes allowed on a ``renja_`` gauge or histogram (base units only; rows and records are counts)."""

NOT_BASE_UNITS = re.compile(
    r"_(milli|micro|nano)?(ms|us|ns|milliseconds|microseconds|minutes|hours|days|kilobytes|mb)(_|$)"
)

EXPECTED = {
    "renja_http_request_duration_seconds": "histogram",
    "renja_commands": "counter",
    "renja_outbox_backlog_rows": "gauge",
    "renja_outbox_oldest_unpublished_age_seconds": "gauge",
    "renja_outbox_published": "counter",
    "renja_outbox_relay_failures": "counter",
    "renja_outbox_set_aside": "counter",
    "renja_consumer_events_applied": "counter",
    "renja_consumer_duplicates_skipped": "counter",
    "renja_consumer_dead_lettered": "counter",
    "renja_consumer_unknown_types_skipped": "counter",
    "renja_consumer_lag_records": "gauge",
    "renja_audit_projection_lag_records": "gauge",
}


def busy_app() -> FastAPI:
    settings = DirectiveSettings(environment="test")
    app = create_app(settings)
    rt: Runtime = app.state.runtime
    rt.relay = OutboxRelay(dsn="postgresql://unused", service="directive", bootstrap="unused:1", topic="t")
    rt.relay.published_total = 3
    rt.consumer = IdempotentConsumer(
        pool=None,  # type: ignore[arg-type]
        bootstrap="unused:1",
        topic="t",
        group_id="g",
        dlq_topic="t.dlq",
        handler=None,  # type: ignore[arg-type]
    )
    rt.consumer.stats.dead_lettered_by_reason["bad_schema"] = 1
    rt.consumer.stats.skipped_unknown["renja.Unknown.v9"] = 2
    rt.consumer.stats.lag[0] = 5
    rt.commands.outcomes[("IssueArahan", "applied", "")] = 1
    rt.projection_lag = lambda: {0: 7}
    return app


async def scrape(app: FastAPI, *, first: str | None = None) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        if first is not None:
            await client.get(first)
        r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_every_renja_family_is_exposed_with_its_type_and_samples() -> None:
    found = families(await scrape(busy_app(), first="/healthz"))
    assert {name: found[name].type for name in EXPECTED if name in found} == EXPECTED
    empty = [name for name in EXPECTED if not found[name].samples and not name.startswith("renja_outbox_")]
    assert empty == []
    # without a database the backlog is absent, never a reassuring 0
    assert found["renja_outbox_backlog_rows"].samples == []


async def test_names_and_units_follow_the_prometheus_conventions() -> None:
    found = families(await scrape(busy_app(), first="/healthz"))
    # ``*_created`` gauges are the client's companions of counters and histograms (start timestamps)
    renja = {name: f for name, f in found.items() if name.startswith("renja_") and not name.endswith("_created")}
    assert renja
    for name, family in renja.items():
        assert re.fullmatch(r"renja_[a-z][a-z0-9_]*[a-z0-9]", name), name
        assert not NOT_BASE_UNITS.search(name), f"{name}: use base units (seconds, bytes)"
        if family.type == "counter":
            assert not name.endswith("_total"), name  # the family name; its samples carry the suffix
            assert all(s.name in (f"{name}_total", f"{name}_created") for s in family.samples), family.samples
        else:
            assert name.endswith(BASE_UNITS), f"{name} ({family.type}) names no base unit"
    for sample in renja["renja_http_request_duration_seconds"].samples:
        assert "{" not in sample.labels.get("route", ""), "route templates only are labels"
    process = [name for name in found if name.startswith("process_")]
    assert "process_cpu_seconds" in process and "process_resident_memory_bytes" in process


async def test_the_http_route_label_is_the_template_and_unmatched_paths_share_one_label() -> None:
    app = busy_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        await client.get("/renja/00000000-0000-0000-0000-000000000001/state")
        await client.get("/no/such/path/123")
    samples = families(await scrape(app))["renja_http_request_duration_seconds"].samples
    routes = {(s.labels["route"], s.labels["status"]) for s in samples if s.name.endswith("_count")}
    assert ("/renja/{renja_id}/state", "401") in routes
    assert ("unmatched", "404") in routes
    assert not any("0000" in route for route, _ in routes)


async def test_two_apps_in_one_process_count_separately() -> None:
    one, two = busy_app(), busy_app()
    await scrape(one, first="/healthz")
    samples = families(await scrape(two))["renja_http_request_duration_seconds"].samples
    assert not any(s.labels.get("route") == "/healthz" for s in samples)
