"""Composition root of the notifier service (SOP step 11 and every outbound message)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.notifier.api import router
from services.notifier.consumers import reactions
from services.notifier.dispatch import run_mail_dispatcher, run_webhook_dispatcher
from services.notifier.scheduler import TimerScheduler
from services.notifier.service import NotifierService
from services.notifier.settings import NotifierSettings
from shared.app import build_service_app
from shared.runtime import Runtime
from shared.workcalendar import calendar_from_sop


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    """Build the app: ``uvicorn services.notifier.main:create_app --factory``.

    Every event type gets the same reaction (webhooks, projection, next-actor mail; ``consumers``); the
    ``NotifierService`` (``deps.NotifierDep``) runs the routes' use cases; two dispatcher tasks send what
    the transactions queued and are cancelled with the other runtime tasks on shutdown.
    """
    cfg = settings or NotifierSettings()

    async def start_dispatchers(rt: Runtime) -> None:
        pool = rt.require_pool()
        rt.tasks.append(asyncio.create_task(run_mail_dispatcher(pool, cfg), name="mail-dispatcher"))
        rt.tasks.append(asyncio.create_task(run_webhook_dispatcher(pool, cfg), name="webhook-dispatcher"))
        scheduler = TimerScheduler(
            dsn=cfg.postgres_dsn(),
            pool=rt.require_pool,
            settings=cfg,
            sop=rt.sop,
            commands=rt.commands,
            clock=cfg.clock(),
            calendar=calendar_from_sop(rt.sop),
        )
        app.state.notifier.scheduler = scheduler
        if cfg.timers_enabled:
            rt.tasks.append(asyncio.create_task(scheduler.run(), name="timer-scheduler"))

    app = build_service_app(
        cfg,
        title="Renja — notifier",
        description=(
            "Step 11 of the SOP Penyusunan Renja (distribution, archive reference, proof of receipt) and every "
            "outbound message: next-actor e-mails and signed webhooks (Standard Webhooks)."
        ),
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        reactions=lambda rt: reactions(cfg, rt.sop),
        on_startup=start_dispatchers,
    )
    rt: Runtime = app.state.runtime
    app.state.notifier = NotifierService(cfg, rt.sop, rt.require_pool, rt.commands)
    app.state.metrics.registry.register(TimerCollector(app.state.notifier))
    return app


class TimerCollector(Collector):
    """``renja_timers_pending`` and ``renja_timers_late`` from the scheduler's last pass (every
    ``timer_poll_seconds``; a standby instance counts too)."""

    def __init__(self, notifier: NotifierService) -> None:
        self.notifier = notifier

    def collect(self) -> Iterator[Metric]:
        scheduler = self.notifier.scheduler
        if scheduler is None:
            return
        pending = GaugeMetricFamily("renja_timers_pending", "Step timers (mutu baku) planned and not yet fired.")
        pending.add_metric([], scheduler.snapshot.pending)
        late = GaugeMetricFamily(
            "renja_timers_late",
            "Step timers due longer than RENJA_TIMER_LATE_SECONDS ago and still not fired (should be 0).",
        )
        late.add_metric([], scheduler.snapshot.late)
        fired = CounterMetricFamily("renja_timers_fired", "Timer notices appended by this instance since start.")
        fired.add_metric([], scheduler.fired_total)
        yield from (pending, late, fired)
