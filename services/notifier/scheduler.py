"""The step-timer scheduler: fires due timers (``services.notifier.timers``) as events, on one leader.

Invariants:
- one active scheduler per notifier database: leadership is a session-level ``pg_try_advisory_lock``
  (like the outbox relay); another instance waits and takes over when the leader's connection is gone;
- leadership only saves work: exactly-once rests on the notice's derived event id (``UNIQUE(event_id)``)
  and the timer row marked fired in the notice's own transaction, so two schedulers, a restart or a
  crash between append and commit never give a timer two notices;
- a timer never fires before its instant on the service clock (``fire_at <= clock.now()``, and the
  notice's ``occurred_at`` is read after that check); one that is late (the notifier was down) fires as
  soon as a scheduler runs;
- a timer whose step occurrence is no longer open when it fires (completed meanwhile) is cancelled, not
  fired;
- Postgres going away is survived: the loop backs off and reconnects.

``python -m services.notifier.scheduler`` runs the scheduler alone (``NotifierSettings`` from the
environment), as a second instance or in the crash tests; the service runs it as a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from services.notifier import timers
from services.notifier.settings import NotifierSettings
from shared.clock import Clock, speed_of
from shared.command import CommandCall, CommandUnit
from shared.events import Event
from shared.eventstore import DuplicateEvent
from shared.retry import keep_running
from shared.sop import CommandContext, RenjaState, SopDefinition
from shared.workcalendar import WorkCalendar

log = structlog.get_logger(__name__)


def advisory_key(service: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``step timers <service>`` (not the relay's)."""
    digest = hashlib.sha256(f"renja step timers {service}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class TimerSnapshot:
    """What the last pass saw, for ``/metrics`` and ``/timers/health``: pending and late-to-fire timers."""

    pending: int = 0
    late: int = 0


class TimerScheduler:
    """Fire due step timers through ``commands`` (the notifier's ``CommandUnit``); see the module invariants."""

    def __init__(
        self,
        *,
        dsn: str,
        pool: Callable[[], asyncpg.Pool],
        settings: NotifierSettings,
        sop: SopDefinition,
        commands: CommandUnit,
        clock: Clock,
        calendar: WorkCalendar,
    ) -> None:
        self.dsn = dsn
        self.pool = pool
        self.settings = settings
        self.sop = sop
        self.commands = commands
        self.clock = clock
        self.calendar = calendar
        self.is_leader = False
        self.fired_total = 0
        self.snapshot = TimerSnapshot()

    @property
    def late_after(self) -> timedelta:
        """``timer_late_seconds`` wall seconds, in the clock's (maybe simulated) time."""
        return timedelta(seconds=self.settings.timer_late_seconds * speed_of(self.clock))

    async def run(self) -> None:
        """Run until cancelled: take leadership, then fire due timers every ``timer_poll_seconds``."""

        def restarting(error: BaseException, wait_s: float) -> None:
            self.is_leader = False
            log.warning("timer_scheduler_restarting", error=repr(error), backoff_s=wait_s)

        await keep_running(self._lead_and_fire, retry_on=(Exception,), on_retry=restarting)

    async def _lead_and_fire(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        try:
            key = advisory_key(self.settings.service)
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                await self._observe(conn)
                await asyncio.sleep(self.settings.timer_poll_seconds)
            self.is_leader = True
            log.info("timer_scheduler_leader", instance=self.settings.instance_name)
            while True:
                await self.fire_due(conn)
                await self._observe(conn)
                await asyncio.sleep(self.settings.timer_poll_seconds)
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)

    async def _observe(self, conn: asyncpg.Connection) -> None:
        pending, late = await timers.counts(conn, self.clock.now(), self.late_after)
        self.snapshot = TimerSnapshot(pending, late)

    async def fire_due(self, conn: asyncpg.Connection) -> int:
        """Fire every timer due now, batch after batch; returns how many notices were appended."""
        fired = 0
        while True:
            rows = await timers.due_timers(conn, self.clock.now(), limit=self.settings.timer_batch_max)
            for row in rows:
                fired += await self.fire(row)
            if len(rows) < self.settings.timer_batch_max:
                return fired

    async def fire(self, row: asyncpg.Record) -> int:
        """Append the notice of one due timer (1), or cancel it if its occurrence closed meanwhile (0)."""
        step, due_since, kind = int(row["step"]), row["due_since"], str(row["kind"])
        calendar = self.calendar

        def notice_if_still_due(state: RenjaState, ctx: CommandContext) -> Sequence[Event]:
            if not timers.still_due(state, self.sop, step, due_since):
                return []
            return [timers.notice(row, correlation_id=ctx.correlation_id, now=ctx.now, calendar=calendar)]

        async def close_stale(conn: asyncpg.Connection, events: Sequence[Event], _: RenjaState) -> None:
            if not events:
                await timers.cancel_stale(conn, int(row["id"]), self.clock.now())

        notice_if_still_due.__name__ = f"fire_{kind}"
        call = CommandCall(actor=timers.TIMER_ACTOR, renja_id=row["renja_id"])
        try:
            result = await self.commands.run(call, notice_if_still_due, effect=close_stale, respond=_no_body)
        except DuplicateEvent:
            # Fired before (its notice is in the store) but the row did not say so: e.g. a store restored
            # from the log. The unique event id refused the second notice; record the first.
            async with self.pool().acquire() as conn:
                await conn.execute(
                    "UPDATE step_timers SET fired_at = coalesce(fired_at, $2), fired_by = coalesce(fired_by, $3),"
                    " fired_event_id = coalesce(fired_event_id, $4) WHERE id = $1",
                    row["id"],
                    self.clock.now(),
                    "duplicate",
                    timers.notice_event_id(row["renja_id"], step, due_since, kind),
                )
            log.info("timer_already_fired", renja_id=str(row["renja_id"]), step=step, kind=kind)
            return 0
        if not result.events:
            log.info("timer_stale_cancelled", renja_id=str(row["renja_id"]), step=step, kind=kind)
            return 0
        self.fired_total += 1
        log.info(
            "timer_fired",
            renja_id=str(row["renja_id"]),
            step=step,
            kind=kind,
            fire_at=row["fire_at"].isoformat(),
            event_id=str(result.events[0].event_id),
        )
        return 1


def _no_body(events: Sequence[Event], _: RenjaState) -> dict[str, Any]:
    return {"events": [str(e.event_id) for e in events]}


async def run_alone(settings: NotifierSettings | None = None) -> None:
    """The scheduler without the HTTP service: a pool, the notifier's command unit and reactions, one loop.

    Migrates nothing: the database must have been migrated by the service. Runs until cancelled.
    """
    from services.notifier.consumers import reactions
    from shared.logging import configure_logging
    from shared.sop import load_sop
    from shared.workcalendar import calendar_from_sop

    cfg = settings or NotifierSettings()
    configure_logging(f"{cfg.service}-scheduler", cfg.log_level)
    sop = load_sop(cfg.sop_file)
    dsn = cfg.postgres_dsn()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        commands = CommandUnit(lambda: pool, service=cfg.service, sop=sop, clock=cfg.clock().now)
        commands.reactions = dict(reactions(cfg, sop))
        scheduler = TimerScheduler(
            dsn=dsn,
            pool=lambda: pool,
            settings=cfg,
            sop=sop,
            commands=commands,
            clock=cfg.clock(),
            calendar=calendar_from_sop(sop),
        )
        await scheduler.run()
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(run_alone())
