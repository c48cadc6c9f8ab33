"""Shared pieces of the benchmarks: scratch databases and topics that are always removed, synthetic events.

Every benchmark runs against the running local stack (``RENJA_*`` environment, read through
``shared.settings.ServiceSettings``) and must leave nothing behind: a scratch database is dropped
``WITH (FORCE)`` and scratch topics are deleted even when the benchmark fails half-way.

Not a test module (no ``test_`` names): pytest never collects anything under ``bench/``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shared.db import migrate
from shared.events import Event
from shared.kafka import ensure_topics
from shared.logging import configure_logging
from shared.settings import ServiceSettings
from shared.sop import load_sop
from tests.kit.driver import cycle_events

SHAPES: tuple[dict[str, object], ...] = ({}, {"returns": (9,)}, {"cancel_before_step": 7}, {"returns": (8, 10)})
"""Cycle shapes, in turn: a clean run, a return at step 9, a cancellation before step 7, two returns."""


def bench_settings() -> ServiceSettings:
    """Connection settings of the running stack (``RENJA_*`` env or the documented defaults).

    Also quiets the plumbing's logs to warnings, so the report is readable.
    """
    configure_logging("bench", "WARNING")
    return ServiceSettings(service="bench", environment="test")


def synthetic_cycles(n: int) -> list[list[Event]]:
    """Whole decider-valid Renja cycles (``tests.kit.driver.cycle_events``) holding at least ``n`` events.

    Each inner list is one Renja's events in order (its stream); Renja ids are fresh per call, so two
    runs never collide in a database or topic that was not cleaned.
    """
    sop = load_sop()
    start = datetime(2026, 1, 5, 1, tzinfo=UTC)
    cycles: list[list[Event]] = []
    total, i = 0, 0
    while total < n:
        shape = SHAPES[i % len(SHAPES)]
        events = cycle_events(sop, uuid4(), start=start + timedelta(hours=i), opd=f"OPD {i}", **shape)  # type: ignore[arg-type]
        cycles.append(events)
        total += len(events)
        i += 1
    return cycles


def flatten(cycles: Iterable[Sequence[Event]]) -> list[Event]:
    """All events of ``cycles`` in one list, cycle after cycle."""
    return [event for cycle in cycles for event in cycle]


@contextlib.asynccontextmanager
async def scratch_database(settings: ServiceSettings, service_migrations: Path | None = None) -> AsyncIterator[str]:
    """A fresh database with the shared plumbing (and ``service_migrations``) migrated; yields its DSN.

    Dropped ``WITH (FORCE)`` on exit, whatever happened.
    """
    name = f"bench_{uuid4().hex[:10]}"
    admin = await asyncpg.connect(settings.postgres_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = settings.postgres_dsn(name)
        await migrate(dsn, service_migrations)
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def scratch_topics(settings: ServiceSettings, *partitions: int) -> AsyncIterator[list[str]]:
    """Fresh topics ``bench.<hex>.<i>`` with the given partition counts; deleted on exit."""
    stem = f"bench.{uuid4().hex[:10]}"
    names = [f"{stem}.{i}" for i in range(len(partitions))]
    await ensure_topics(settings.kafka_bootstrap, {name: (p, {}) for name, p in zip(names, partitions, strict=True)})
    try:
        yield names
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(names)
        finally:
            await admin.close()


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` items in ``seconds`` (wall clock)."""

    label: str
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        """``label: N in S s = R events/s`` for the report."""
        return f"{self.label:<52} {self.count:>8} in {self.seconds:7.2f} s = {self.per_second:>10,.0f} events/s"


def ratio_line(name: str, measured: Rate, limit: Rate, target: float | None) -> str:
    """``ratio name: 0.83 (target >= 0.70) ok`` — the measured rate over the raw limit."""
    value = measured.per_second / limit.per_second
    if target is None:
        return f"ratio {name}: {value:.2f} (no target)"
    verdict = "ok" if value >= target else "BELOW TARGET"
    return f"ratio {name}: {value:.2f} (target >= {target:.2f}) {verdict}"


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (``time.perf_counter``)."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def renja_ids(cycles: Sequence[Sequence[Event]]) -> list[UUID]:
    """The Renja id of each cycle (its stream id)."""
    return [cycle[0].renja_id for cycle in cycles]
