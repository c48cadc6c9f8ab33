"""Durable step timers (mutu baku) on real Postgres: planning from folded events, cancellation on completion,
return and cancellation, firing exactly once through the command unit (also with ``kill -9`` around the due
instant and with two scheduler instances), escalation mails.

Events are folded into a notifier database as the consumer folds them (``fold_consumed`` + the notifier's
reactions); the scheduler runs in-process or as ``python -m services.notifier.scheduler`` subprocesses on a
simulated clock (``shared.clock``) fast enough that timers come due within seconds. The log counted is the
notifier's event store (its transactional outbox: what the relay publishes).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from services.notifier import timers
from services.notifier.consumers import apply_events, reactions
from services.notifier.scheduler import TimerScheduler
from services.notifier.settings import NotifierSettings
from shared.command import CommandUnit
from shared.db import migrate
from shared.events import Event, StepOverdue, StepReminderDue, parse_event
from shared.process import fold_consumed
from shared.sop import load_sop
from shared.sop.anomaly import UnfoldableEvent
from shared.workcalendar import calendar_from_sop
from tests.kit.driver import CANCEL, RETURNS, STEPS, Cycle

pytestmark = pytest.mark.integration

SOP = load_sop()
CALENDAR = calendar_from_sop(SOP)
REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "services" / "notifier" / "migrations"
WIB = "+07:00"
MONDAY_0800 = datetime.fromisoformat(f"2023-05-15T08:00:00{WIB}")  # an ordinary working Monday


@dataclass
class Notifier:
    """A scratch notifier database and the settings that point at it (simulated clock)."""

    dsn: str
    database: str
    settings: NotifierSettings
    pool: asyncpg.Pool

    async def fold(self, events: list[Event]) -> None:
        """Fold ``events`` as the consumer does: state, then the notifier's reactions (timers included)."""
        for event in events:
            async with self.pool.acquire() as conn, conn.transaction():
                state = await fold_consumed(conn, event, SOP)
                await apply_events(conn, [event], state, self.settings, SOP, now=self.settings.clock().now())

    async def timer_rows(self, renja_id: UUID | None = None) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return list(
                await conn.fetch(
                    "SELECT * FROM step_timers WHERE ($1::uuid IS NULL OR renja_id = $1) ORDER BY fire_at, id",
                    renja_id,
                )
            )

    async def notices(self) -> list[tuple[StepReminderDue | StepOverdue, datetime]]:
        """Every timer notice in the event store (the outbox), with its stored ``occurred_at``."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT event_type, data::text AS data, occurred_at FROM events"
                " WHERE event_type = ANY($1::text[]) ORDER BY seq",
                [StepReminderDue.event_type, StepOverdue.event_type],
            )
        return [(_notice(parse_event(r["event_type"], r["data"])), r["occurred_at"]) for r in rows]

    def scheduler(self, instance: str = "in-process") -> TimerScheduler:
        cfg = self.settings.model_copy(update={"instance_name": instance})
        commands = CommandUnit(lambda: self.pool, service="notifier", sop=SOP, clock=cfg.clock().now)
        commands.reactions = dict(reactions(cfg, SOP))
        return TimerScheduler(
            dsn=self.dsn, pool=lambda: self.pool, settings=cfg, sop=SOP, commands=commands, clock=cfg.clock(),
            calendar=CALENDAR,
        )  # fmt: skip

    def env(self, instance: str) -> dict[str, str]:
        """The environment of a ``python -m services.notifier.scheduler`` subprocess on this database."""
        s = self.settings
        assert s.clock_start is not None and s.clock_epoch is not None
        return {
            **os.environ,
            "RENJA_ENVIRONMENT": "test",
            "RENJA_POSTGRES_DATABASE": self.database,
            "RENJA_CLOCK_START": s.clock_start.isoformat(),
            "RENJA_CLOCK_SPEED": str(s.clock_speed),
            "RENJA_CLOCK_EPOCH": s.clock_epoch.isoformat(),
            "RENJA_TIMER_POLL_SECONDS": "0.2",
            "RENJA_INSTANCE_NAME": instance,
            "RENJA_LOG_LEVEL": "WARNING",
        }


def _notice(event: Event) -> StepReminderDue | StepOverdue:
    assert isinstance(event, StepReminderDue | StepOverdue)
    return event


@pytest.fixture
async def notifier_at() -> AsyncIterator[Callable[..., Awaitable[Notifier]]]:
    """``await notifier_at(start, speed)``: a migrated scratch notifier database on a simulated clock that
    reads ``start`` now and runs ``speed`` times faster. Dropped after the test."""
    made: list[Notifier] = []

    async def make(start: datetime, speed: float = 1.0) -> Notifier:
        base = NotifierSettings(environment="test")
        name = f"t_{uuid4().hex[:10]}_timers"
        admin = await asyncpg.connect(base.postgres_dsn("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        settings = NotifierSettings(
            environment="test",
            postgres_database=name,
            clock_start=start,
            clock_speed=speed,
            clock_epoch=datetime.now(UTC),
            timer_poll_seconds=0.2,
        )
        dsn = settings.postgres_dsn()
        await migrate(dsn, MIGRATIONS)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=6)
        made.append(Notifier(dsn, name, settings, pool))
        return made[-1]

    yield make
    admin = await asyncpg.connect(NotifierSettings(environment="test").postgres_dsn("postgres"))
    try:
        for n in made:
            await n.pool.close()
            if not os.environ.get("RENJA_KEEP_TEST_DB"):
                await admin.execute(f'DROP DATABASE IF EXISTS "{n.database}" WITH (FORCE)')
    finally:
        await admin.close()


def cycle_until(step: int, *, start: datetime, gap: timedelta = timedelta(minutes=1)) -> Cycle:
    """A cycle driven in-process until ``step`` is due (its events in ``.events``), clock from ``start``."""
    cycle = Cycle(SOP, clock=start.astimezone(UTC), gap=gap)
    while cycle.state.due_step is not None and cycle.state.due_step < step:
        cycle.run(STEPS[cycle.state.due_step])
    return cycle


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last value: {value!r}")
        await asyncio.sleep(0.2)


# --- planning -------------------------------------------------------------------------------------------


async def test_friday_afternoon_before_a_monday_holiday_is_due_on_tuesday(
    notifier_at: Callable[..., Awaitable[Notifier]],
) -> None:
    """Hand-computed: step 4 (staf, 300 working minutes) due since Friday 13 Sep 2024 15:30 WIB. Friday's
    office ends 16:30 (60 min); Sat, Sun off; Monday 16 Sep 2024 is Maulid Nabi (a public holiday);
    Tuesday opens 07:30: the reminder (80 % = 240 min) is due Tue 10:30 WIB, the deadline Tue 11:30 WIB."""
    n = await notifier_at(datetime.fromisoformat(f"2024-09-13T15:35:00{WIB}"))
    cycle = cycle_until(4, start=datetime.fromisoformat(f"2024-09-13T15:28:00{WIB}"))
    assert cycle.state.due_since == datetime.fromisoformat(f"2024-09-13T15:30:00{WIB}")
    await n.fold(cycle.events)
    rows = [r for r in await n.timer_rows(cycle.renja_id) if r["cancelled_at"] is None]
    assert [(r["step"], r["kind"], r["role"]) for r in rows] == [(4, "reminder", "staf"), (4, "overdue", "staf")]
    assert rows[0]["fire_at"] == datetime.fromisoformat(f"2024-09-17T10:30:00{WIB}")
    assert rows[1]["fire_at"] == rows[1]["due_at"] == datetime.fromisoformat(f"2024-09-17T11:30:00{WIB}")
    # the audit's calculation agrees: exactly the standard lies between due_since and the deadline
    assert CALENDAR.working_minutes(cycle.state.due_since, rows[1]["due_at"]) == 300.0


async def test_a_completed_step_cancels_its_timers_and_plans_the_next(
    notifier_at: Callable[..., Awaitable[Notifier]],
) -> None:
    n = await notifier_at(MONDAY_0800)
    cycle = cycle_until(3, start=MONDAY_0800)
    await n.fold(cycle.events)
    cycle.run(STEPS[3])
    await n.fold(cycle.events[-1:])
    rows = await n.timer_rows(cycle.renja_id)
    by = {(r["step"], r["kind"]): r for r in rows}
    assert {k for k, r in by.items() if r["cancelled_at"] is None and r["fired_at"] is None} == {
        (4, "reminder"),
        (4, "overdue"),
    }
    assert {by[(s, k)]["cancel_reason"] for s in (2, 3) for k in ("reminder", "overdue")} == {"completed"}
    # a replay that got past the inbox's de-duplication is refused before any reaction: nothing planned
    with pytest.raises(UnfoldableEvent):
        await n.fold(cycle.events)
    assert len(await n.timer_rows(cycle.renja_id)) == len(rows)


async def test_a_return_at_step_8_cancels_its_timer_and_plans_step_7_again(
    notifier_at: Callable[..., Awaitable[Notifier]],
) -> None:
    n = await notifier_at(MONDAY_0800)
    cycle = cycle_until(8, start=MONDAY_0800, gap=timedelta(minutes=2))
    await n.fold(cycle.events)
    first_7 = [r for r in await n.timer_rows(cycle.renja_id) if r["step"] == 7]
    cycle.run(RETURNS[8])
    await n.fold(cycle.events[-1:])
    rows = await n.timer_rows(cycle.renja_id)
    step8 = [r for r in rows if r["step"] == 8]
    assert {(r["kind"], r["cancel_reason"]) for r in step8} == {("reminder", "returned"), ("overdue", "returned")}
    open_7 = [r for r in rows if r["step"] == 7 and r["cancelled_at"] is None]
    assert {r["kind"] for r in open_7} == {"reminder", "overdue"}
    assert all(r["due_since"] == cycle.state.due_since for r in open_7)  # a new occurrence of step 7
    assert all(r["due_since"] < cycle.state.due_since for r in first_7)
    assert {r["cancel_reason"] for r in rows if r["id"] in {f["id"] for f in first_7}} == {"completed"}


async def test_a_cancellation_cancels_every_pending_timer(notifier_at: Callable[..., Awaitable[Notifier]]) -> None:
    n = await notifier_at(MONDAY_0800)
    cycle = cycle_until(5, start=MONDAY_0800)
    await n.fold(cycle.events)
    cycle.run(CANCEL)
    await n.fold(cycle.events[-1:])
    rows = await n.timer_rows(cycle.renja_id)
    assert [r for r in rows if r["cancelled_at"] is None and r["fired_at"] is None] == []
    assert {r["cancel_reason"] for r in rows if r["step"] == 5} == {"cancelled"}


async def test_a_calendar_change_replans_pending_timers(notifier_at: Callable[..., Awaitable[Notifier]]) -> None:
    """A new cuti bersama on the day a pending deadline falls moves it to the next working day; fired and
    cancelled timers keep their instants."""
    n = await notifier_at(MONDAY_0800)
    cycle = cycle_until(4, start=MONDAY_0800)  # step 4: 300 min from Mon 08:02 → Mon 13:02 WIB
    await n.fold(cycle.events)
    pending = [r for r in await n.timer_rows(cycle.renja_id) if r["cancelled_at"] is None]
    assert pending[1]["due_at"] == datetime.fromisoformat(f"2023-05-15T13:02:00{WIB}")
    leave = calendar_from_sop(SOP)
    leave.extra_days_off = frozenset({MONDAY_0800.date()})
    async with n.pool.acquire() as conn:
        assert await timers.replan_pending(conn, leave) == 2
    moved = [r for r in await n.timer_rows(cycle.renja_id) if r["cancelled_at"] is None]
    # Monday is off: 300 min from Tuesday 07:30 → Tuesday 12:30 WIB
    assert moved[1]["due_at"] == datetime.fromisoformat(f"2023-05-16T12:30:00{WIB}")
    assert moved[0]["fire_at"] == datetime.fromisoformat(f"2023-05-16T11:30:00{WIB}")


# --- firing ---------------------------------------------------------------------------------------------


async def test_due_timers_fire_once_with_escalation_mails(notifier_at: Callable[..., Awaitable[Notifier]]) -> None:
    """Step 4 (staf) due since Mon 08:02: the simulated clock reads 13:10, past both timers. One pass
    fires both; firing again (a second scheduler with a stale row) adds nothing. The reminder mails the
    staf; the overdue notice the staf and the kasubag_pp (escalation)."""
    n = await notifier_at(datetime.fromisoformat(f"2023-05-15T13:10:00{WIB}"))
    cycle = cycle_until(4, start=MONDAY_0800)
    await n.fold(cycle.events)
    stale = await timers_due(n)
    scheduler = n.scheduler()
    async with n.pool.acquire() as conn:
        assert await scheduler.fire_due(conn) == 2
        assert await scheduler.fire_due(conn) == 0
    for row in stale:  # a second instance that read the rows before the first fired them
        assert await n.scheduler("other").fire(row) == 0
    notices = await n.notices()
    assert [type(e).__name__ for e, _ in notices] == ["StepReminderDue", "StepOverdue"]
    reminder, overdue = (e for e, _ in notices)
    assert isinstance(overdue, StepOverdue) and isinstance(reminder, StepReminderDue)
    assert (overdue.step, overdue.role, overdue.escalated_to) == (4, "staf", "kasubag_pp")
    assert overdue.due_at == datetime.fromisoformat(f"2023-05-15T13:02:00{WIB}")
    for event, occurred_at in notices:
        assert occurred_at >= event.due_at if isinstance(event, StepOverdue) else occurred_at >= event.reminder_at
        # the audit's numbers: working minutes on the same calendar, due_since → occurred_at
        assert event.working_minutes == pytest.approx(CALENDAR.working_minutes(event.due_since, occurred_at), abs=0.01)
    async with n.pool.acquire() as conn:
        mails = await conn.fetch(
            "SELECT kind, recipient, subject FROM outbound_messages WHERE kind LIKE 'step_%' ORDER BY id"
        )
    assert [(m["kind"], m["recipient"].split("<")[1].split("@")[0]) for m in mails] == [
        ("step_reminder", "staf.perencanaan"),
        ("step_overdue", "staf.perencanaan"),
        ("step_overdue", "kasubag.pp"),
    ]
    assert "TERLAMBAT" in mails[2]["subject"]
    rows = [r for r in await n.timer_rows(cycle.renja_id) if r["step"] == 4]
    assert all(r["fired_at"] is not None and r["fired_by"] == "in-process" for r in rows)


async def timers_due(n: Notifier) -> list[asyncpg.Record]:
    async with n.pool.acquire() as conn:
        return await timers.due_timers(conn, n.settings.clock().now(), limit=100)


async def test_a_timer_whose_step_was_done_meanwhile_is_cancelled_not_fired(
    notifier_at: Callable[..., Awaitable[Notifier]],
) -> None:
    n = await notifier_at(datetime.fromisoformat(f"2023-05-15T13:10:00{WIB}"))
    cycle = cycle_until(4, start=MONDAY_0800)
    await n.fold(cycle.events)
    rows = await timers_due(n)
    cycle.run(STEPS[4])
    await n.fold(cycle.events[-1:])
    for row in rows:
        assert await n.scheduler().fire(row) == 0
    assert await n.notices() == []


# --- crashes and leaders (subprocesses) -----------------------------------------------------------------


def spawn(n: Notifier, instance: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.notifier.scheduler"],
        cwd=REPO,
        env=n.env(instance),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


async def staggered_renjas(n: Notifier, count: int, *, every: timedelta) -> list[Cycle]:
    """``count`` Renjas whose step 2 (sekretaris, 15 min) became due ``every`` apart from Monday 08:01."""
    cycles = []
    for i in range(count):
        cycle = cycle_until(2, start=MONDAY_0800 + every * i)
        await n.fold(cycle.events)
        cycles.append(cycle)
    return cycles


def wall_of(n: Notifier, instant: datetime) -> float:
    """The ``time.time()`` at which the simulated clock reads ``instant``."""
    s = n.settings
    assert s.clock_start is not None and s.clock_epoch is not None
    return s.clock_epoch.timestamp() + (instant - s.clock_start).total_seconds() / s.clock_speed


async def sleep_until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


async def assert_exactly_once(n: Notifier, expected: int) -> list[asyncpg.Record]:
    """Every planned timer fired exactly once, none before its instant, each notice naming its timer."""
    rows = [r for r in await n.timer_rows() if r["cancelled_at"] is None]
    assert len(rows) == expected
    notices = await n.notices()
    keys = [(e.renja_id, e.step, e.due_since, timers.kind_of(e)) for e, _ in notices]
    assert len(keys) == len(set(keys)) == expected, "a timer fired twice or not at all"
    by_key = {(r["renja_id"], r["step"], r["due_since"], r["kind"]): r for r in rows}
    for (event, occurred_at), key in zip(notices, keys, strict=True):
        row = by_key[key]
        assert occurred_at >= row["fire_at"], f"{key} fired early: {occurred_at} < {row['fire_at']}"
        assert row["fired_event_id"] == event.event_id
    return rows


async def test_kill_9_just_before_and_after_timers_are_due_fires_each_exactly_once(
    notifier_at: Callable[..., Awaitable[Notifier]],
) -> None:
    """Four Renjas, eight timers due about every 2-4 wall seconds; the scheduler is killed with SIGKILL
    0.3 s before and 0.3 s after each of the first timers is due and restarted at once. Afterwards every
    timer has exactly one notice on the log, none earlier than its instant, none lost."""
    start = datetime.fromisoformat(f"2023-05-15T08:12:00{WIB}")
    n = await notifier_at(start, speed=60.0)  # one simulated minute per wall second
    await staggered_renjas(n, 4, every=timedelta(minutes=4))
    rows = await n.timer_rows()
    assert len(rows) == 8
    proc = spawn(n, "crashy-0")
    kills = 0
    try:
        for i, row in enumerate(rows[:5]):
            due_wall = wall_of(n, row["fire_at"])
            for offset in (-0.3, 0.3):
                await sleep_until(due_wall + offset)
                kill9(proc)
                kills += 1
                proc = spawn(n, f"crashy-{i}{offset:+}")
        await eventually(lambda: _all_fired(n), timeout_s=120)
    finally:
        kill9(proc)
    assert kills == 10
    await assert_exactly_once(n, 8)


async def _all_fired(n: Notifier) -> bool:
    rows = await n.timer_rows()
    return all(r["fired_at"] is not None or r["cancelled_at"] is not None for r in rows)


async def test_two_schedulers_one_fires_and_the_other_takes_over_when_it_is_killed(
    notifier_at: Callable[..., Awaitable[Notifier]],
) -> None:
    start = datetime.fromisoformat(f"2023-05-15T08:11:00{WIB}")
    n = await notifier_at(start, speed=60.0)
    await staggered_renjas(n, 4, every=timedelta(minutes=5))
    a, b = spawn(n, "instance-a"), spawn(n, "instance-b")
    procs = {"instance-a": a, "instance-b": b}
    try:
        first = await eventually(lambda: _fired_by(n), timeout_s=120)
        leader = first[0]
        assert set(first) == {leader}, "two instances fired while both were alive"
        kill9(procs[leader])
        await eventually(lambda: _all_fired(n), timeout_s=120)
        fired_by = await _fired_by(n)
        other = "instance-b" if leader == "instance-a" else "instance-a"
        assert fired_by[-1] == other, "the standby never took over"
    finally:
        kill9(a)
        kill9(b)
    await assert_exactly_once(n, 8)


async def _fired_by(n: Notifier) -> list[str]:
    rows = sorted((r for r in await n.timer_rows() if r["fired_at"]), key=lambda r: r["fired_at"])
    return [r["fired_by"] for r in rows]
