"""Prometheus metrics of one service: the registry, the HTTP timing middleware and ``GET /metrics``.

Invariants:
- one ``CollectorRegistry`` per app, built by ``shared.app.build_service_app`` (never the client's global
  registry: several apps run in one test process, and each must count only its own work);
- the plumbing counts in plain attributes (``CommandUnit.outcomes``, ``OutboxRelay.*_total``,
  ``ConsumerStats``) and knows nothing of Prometheus; ``RuntimeCollector`` turns them into metric
  families at scrape time;
- the outbox backlog and oldest age are read from the service's ``events`` table at scrape time (one
  query on the partial unpublished index); if the database does not answer, those series are absent
  rather than a reassuring 0;
- names follow the Prometheus conventions: ``renja_`` prefix, base units as suffixes (``_seconds``,
  ``_rows``, ``_records``), counters end in ``_total``; HTTP routes are labelled by their template
  (``/renja/{renja_id}/state``), never the raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.outbox import backlog
from shared.runtime import Runtime

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Request duration buckets in seconds (a command is one transaction: milliseconds, not seconds)."""

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The text format every Prometheus release reads (our names are all legacy-valid, so nothing is lost)."""

UNMATCHED = "unmatched"
"""The route label of a request that matched no route (a 404/405 by path: the raw path is never a label)."""


@dataclass
class OutboxSnapshot:
    """The outbox as read at the start of one scrape: unpublished rows and the oldest one's age (s)."""

    rows: int
    oldest_age_seconds: float


class RuntimeCollector(Collector):
    """The counts kept by the runtime's plumbing, as metric families (read at each scrape)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.outbox: OutboxSnapshot | None = None

    def collect(self) -> Iterator[Metric]:
        """Commands, outbox, relay, consumer and projection-lag families (see the module invariants)."""
        yield from self._commands()
        yield from self._outbox()
        yield from self._consumer()
        lag = GaugeMetricFamily(
            "renja_audit_projection_lag_records",
            "Records of the event log not yet folded into the audit projection, per partition.",
            labels=["partition"],
        )
        if self.rt.projection_lag is not None:
            for partition, behind in sorted(self.rt.projection_lag().items()):
                lag.add_metric([str(partition)], behind)
        yield lag

    def _commands(self) -> Iterator[Metric]:
        commands = CounterMetricFamily(
            "renja_commands",
            "Commands run, by command type and outcome (applied, replayed, refused with its code, conflict, error).",
            labels=["command", "outcome", "code"],
        )
        for (command, outcome, code), count in sorted(self.rt.commands.outcomes.items()):
            commands.add_metric([command, outcome, code], count)
        yield commands

    def _outbox(self) -> Iterator[Metric]:
        rows = GaugeMetricFamily("renja_outbox_backlog_rows", "Events in the outbox not yet published to Kafka.")
        age = GaugeMetricFamily(
            "renja_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest event not yet published to Kafka (0 when none waits).",
        )
        if self.outbox is not None:
            rows.add_metric([], self.outbox.rows)
            age.add_metric([], self.outbox.oldest_age_seconds)
        yield rows
        yield age
        relay = self.rt.relay
        published = CounterMetricFamily("renja_outbox_published", "Events the relay published (acknowledged).")
        failures = CounterMetricFamily(
            "renja_outbox_relay_failures", "Times the relay failed (connection or send error) and restarted."
        )
        set_aside = CounterMetricFamily(
            "renja_outbox_set_aside", "Events the broker refused for good, set aside for an operator."
        )
        if relay is not None:
            published.add_metric([], relay.published_total)
            failures.add_metric([], relay.failures_total)
            set_aside.add_metric([], relay.set_aside_total)
        yield from (published, failures, set_aside)

    def _consumer(self) -> Iterator[Metric]:
        consumer = self.rt.consumer
        applied = CounterMetricFamily("renja_consumer_events_applied", "Events applied by the consumer.")
        duplicates = CounterMetricFamily(
            "renja_consumer_duplicates_skipped", "Events skipped because their id was already in the inbox."
        )
        dead = CounterMetricFamily(
            "renja_consumer_dead_lettered", "Records sent to the dead-letter topic, by reason.", labels=["reason"]
        )
        unknown = CounterMetricFamily(
            "renja_consumer_unknown_types_skipped",
            "Records of event types this release does not know, skipped, by type.",
            labels=["event_type"],
        )
        lag = GaugeMetricFamily(
            "renja_consumer_lag_records",
            "Records behind the log end, per assigned partition (high watermark minus committed position).",
            labels=["topic", "partition"],
        )
        if consumer is not None:
            stats = consumer.stats
            applied.add_metric([], stats.applied)
            duplicates.add_metric([], stats.duplicates)
            for reason, count in sorted(stats.dead_lettered_by_reason.items()):
                dead.add_metric([reason], count)
            for event_type, count in sorted(stats.skipped_unknown.items()):
                unknown.add_metric([event_type], count)
            for partition, behind in sorted(stats.lag.items()):
                lag.add_metric([consumer.topic, str(partition)], behind)
        yield from (applied, duplicates, dead, unknown, lag)


class ServiceMetrics:
    """One app's registry: process collectors, the HTTP histogram and the runtime's counts."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.http_duration = Histogram(
            "renja_http_request_duration_seconds",
            "HTTP request duration from the first byte received to the response start, by route template.",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.runtime_collector = RuntimeCollector(rt)
        self.registry.register(self.runtime_collector)

    async def exposition(self) -> bytes:
        """The text exposition format, after reading the outbox backlog from the database."""
        self.runtime_collector.outbox = await self._read_outbox()
        return generate_latest(self.registry)

    async def _read_outbox(self) -> OutboxSnapshot | None:
        try:
            async with self.rt.require_pool().acquire(timeout=2.0) as conn:
                rows, age = await backlog(conn)
        except Exception:  # no database: the backlog series are left out, never reported as 0
            return None
        return OutboxSnapshot(rows, age)


class HttpMetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request into ``renja_http_request_duration_seconds``.

    Our own (a dozen lines) rather than an instrumentator: it needs the per-app registry and only the
    route template that Starlette leaves in ``scope["route"]`` after routing. Time is measured until the
    response starts; an exception that escapes every handler counts as 500.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        elapsed: float | None = None

        async def timed_send(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                elapsed = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            seconds = elapsed if elapsed is not None else time.perf_counter() - started
            self.metrics.http_duration.labels(scope["method"], template, str(status)).observe(seconds)


def install_metrics(app: FastAPI, rt: Runtime) -> ServiceMetrics:
    """Give ``app`` its own registry, the timing middleware and ``GET /metrics``; returns the metrics."""
    metrics = ServiceMetrics(rt)
    app.state.metrics = metrics
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    app.include_router(metrics_router())
    return metrics


def metrics_router() -> APIRouter:
    """``GET /metrics``: the Prometheus text exposition of this app's registry (no authentication)."""
    router = APIRouter()

    @router.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics: HTTP, commands, outbox, relay, consumer, process",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
    )
    async def metrics(request: Request) -> Response:
        service_metrics: ServiceMetrics = request.app.state.metrics
        return Response(await service_metrics.exposition(), media_type=CONTENT_TYPE)

    return router
