"""Durable step timers: the SOP's time standards (*mutu baku*) as a reminder and a deadline per due step.

When a folded event makes a step due (``RenjaState.due_step`` / ``due_since``), two timers are planned in
the same transaction (``plan``): a reminder when ``share`` of the step's standard has elapsed and the
deadline itself, both in working minutes on the agency calendar (``shared.workcalendar``, the calendar the
audit timeline measures with: the timer and the timeline's overdue flag are one calculation). A step that
is completed, returned or cancelled before a timer fires cancels it; a step due again (step 7 after a
return) is a new occurrence and gets new timers.

A timer fires as an event (``StepReminderDue`` / ``StepOverdue``) appended through the notifier's command
unit and outbox (``scheduler``). Exactly once per timer, without a lock:
- the notice's event id is derived from the timer's unique key (``notice_event_id``), and the event store
  refuses a second event with the same id (``UNIQUE(event_id)``), whichever instance or restart tries;
- the timer row is marked fired in the transaction that appends the notice (the reaction ``mark_fired``),
  so a committed notice is never fired again, and a crash before commit leaves both undone;
- a notice consumed from the log (a notifier rebuilt from the log) marks its timer fired too.

Timer instants are those of the service clock (``shared.clock``): simulated in development and tests.
The pure part (planning, notices, escalation) takes everything in; the SQL part takes a connection that
the caller holds in a transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5

import asyncpg

from shared.events import Actor, DraftReturned, Event, RenjaCancelled, StepOverdue, StepReminderDue
from shared.sop import RenjaState, SopDefinition, SopStep, next_step
from shared.workcalendar import WorkCalendar

TimerKind = Literal["reminder", "overdue"]

SUPERIOR: dict[str, str | None] = {
    "staf": "kasubag_pp",
    "kasubag_pp": "sekretaris",
    "sekretaris": "kepala_badan",
    "kepala_badan": None,
}
"""The SOP's hierarchy (*Pelaksana*, bottom up): whom an overdue notice escalates to."""

TIMER_ACTOR = Actor(user_id="notifier-timers", name="Penjadwal mutu baku", nip="-", role="system")
"""The actor of every timer notice."""


@dataclass(frozen=True, slots=True)
class PlannedTimer:
    """One timer of one step occurrence (``step`` due since ``due_since``), instants in UTC."""

    renja_id: UUID
    step: int
    due_since: datetime
    kind: TimerKind
    role: str
    standard_minutes: int
    share: float
    fire_at: datetime
    due_at: datetime


def plan_step(
    renja_id: UUID, step: SopStep, due_since: datetime, calendar: WorkCalendar, share: float
) -> list[PlannedTimer]:
    """The reminder (at ``share`` of the standard, 0 < share < 1) and the deadline of one step occurrence.

    ``due_at = calendar.add_working_minutes(due_since, standard)``; the reminder is left out when ``share``
    is 1 or more (the deadline is the reminder). A step with a 0-minute standard is due at once.
    """
    due_at = calendar.add_working_minutes(due_since, step.standard_minutes)
    timers = []
    if 0 < share < 1:
        remind_at = calendar.add_working_minutes(due_since, step.standard_minutes * share)
        timers.append(
            PlannedTimer(
                renja_id, step.number, due_since, "reminder", step.role, step.standard_minutes, share, remind_at, due_at
            )
        )
    timers.append(
        PlannedTimer(
            renja_id, step.number, due_since, "overdue", step.role, step.standard_minutes, share, due_at, due_at
        )
    )
    return timers


def notice_event_id(renja_id: UUID, step: int, due_since: datetime, kind: str) -> UUID:
    """The id of a timer's notice: derived from the timer's unique key, so a second firing is a duplicate."""
    return uuid5(renja_id, f"step-timer:{kind}:{step}:{due_since.timestamp():.6f}")


def cancel_reason(event: Event) -> str:
    """Why a pending timer of another occurrence ends after ``event``: returned, cancelled or completed."""
    if isinstance(event, RenjaCancelled):
        return "cancelled"
    if isinstance(event, DraftReturned):
        return "returned"
    return "completed"


def still_due(state: RenjaState, sop: SopDefinition, step: int, due_since: datetime) -> bool:
    """True while ``step`` is the step due since ``due_since`` (the timer's occurrence is still open)."""
    due = next_step(state, sop)
    return due is not None and due.number == step and state.due_since == due_since


def notice(
    row: Mapping[str, Any], *, correlation_id: UUID, now: datetime, calendar: WorkCalendar
) -> StepReminderDue | StepOverdue:
    """The event a due timer row fires at ``now`` (``working_minutes`` from its ``due_since`` to ``now``)."""
    kind = str(row["kind"])
    renja_id: UUID = row["renja_id"]
    step = int(row["step"])
    due_since: datetime = row["due_since"]
    role = str(row["role"])
    common = {
        "event_id": notice_event_id(renja_id, step, due_since, kind),
        "renja_id": renja_id,
        "source": "notifier",
        "actor": TIMER_ACTOR,
        "occurred_at": now,
        "correlation_id": correlation_id,
        "step": step,
        "role": role,
        "due_since": due_since,
        "standard_minutes": int(row["standard_minutes"]),
        "due_at": row["due_at"],
        "working_minutes": round(calendar.working_minutes(due_since, max(now, due_since)), 3),
    }
    if kind == "reminder":
        return StepReminderDue.model_validate({**common, "share": row["share"], "reminder_at": row["fire_at"]})
    return StepOverdue.model_validate({**common, "escalated_to": SUPERIOR.get(role)})


def kind_of(event: StepReminderDue | StepOverdue) -> TimerKind:
    return "reminder" if isinstance(event, StepReminderDue) else "overdue"


# --- SQL -------------------------------------------------------------------------------------------------

PENDING = "fired_at IS NULL AND cancelled_at IS NULL"


async def plan(
    conn: asyncpg.Connection,
    event: Event,
    state: RenjaState,
    sop: SopDefinition,
    calendar: WorkCalendar,
    *,
    share: float,
    now: datetime,
) -> int:
    """After ``event`` was folded into ``state``: cancel the Renja's pending timers of any other occurrence
    (``cancel_reason``), and plan the timers of the step now due (idempotent). Returns how many were new."""
    step = next_step(state, sop)
    due_since = state.due_since if step is not None else None
    await conn.execute(
        f"UPDATE step_timers SET cancelled_at = $4, cancel_reason = $5 WHERE renja_id = $1 AND {PENDING}"
        " AND (step IS DISTINCT FROM $2 OR due_since IS DISTINCT FROM $3)",
        event.renja_id,
        step.number if step is not None else None,
        due_since,
        now,
        cancel_reason(event),
    )
    if step is None or due_since is None or isinstance(event, StepReminderDue | StepOverdue):
        return 0
    rows = [
        (
            t.renja_id,
            t.step,
            t.due_since,
            t.kind,
            t.role,
            t.standard_minutes,
            t.share,
            t.fire_at,
            t.due_at,
            event.event_id,
        )
        for t in plan_step(event.renja_id, step, due_since, calendar, share)
    ]
    inserted = 0
    for row in rows:
        done = await conn.fetchval(
            "INSERT INTO step_timers (renja_id, step, due_since, kind, role, standard_minutes, share, fire_at,"
            " due_at, planned_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT ON CONSTRAINT step_timer_once DO NOTHING RETURNING 1",
            *row,
        )
        inserted += done is not None
    return inserted


async def mark_fired(
    conn: asyncpg.Connection, event: StepReminderDue | StepOverdue, *, fired_by: str, now: datetime
) -> None:
    """Record that ``event`` is the notice of its timer (its own append, or one consumed from the log);
    the row is created if the timer was never planned here (a log replayed into a fresh notifier)."""
    await conn.execute(
        "INSERT INTO step_timers (renja_id, step, due_since, kind, role, standard_minutes, share, fire_at, due_at,"
        " planned_by, fired_at, fired_event_id, fired_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $12)"
        " ON CONFLICT ON CONSTRAINT step_timer_once DO UPDATE SET fired_at = coalesce(step_timers.fired_at, $11),"
        " fired_event_id = coalesce(step_timers.fired_event_id, $10),"
        " fired_by = coalesce(step_timers.fired_by, $12), cancelled_at = NULL, cancel_reason = NULL",
        event.renja_id,
        event.step,
        event.due_since,
        kind_of(event),
        event.role,
        event.standard_minutes,
        event.share if isinstance(event, StepReminderDue) else 1.0,
        event.reminder_at if isinstance(event, StepReminderDue) else event.due_at,
        event.due_at,
        event.event_id,
        now,
        fired_by,
    )


async def due_timers(conn: asyncpg.Connection, now: datetime, *, limit: int) -> list[asyncpg.Record]:
    """Pending timers whose instant has come (``fire_at <= now``), earliest first."""
    return list(
        await conn.fetch(
            f"SELECT * FROM step_timers WHERE {PENDING} AND fire_at <= $1 ORDER BY fire_at, id LIMIT $2", now, limit
        )
    )


async def cancel_stale(conn: asyncpg.Connection, timer_id: int, now: datetime) -> None:
    """End a timer whose occurrence is no longer open (found while firing)."""
    await conn.execute(
        f"UPDATE step_timers SET cancelled_at = $2, cancel_reason = 'stale' WHERE id = $1 AND {PENDING}",
        timer_id,
        now,
    )


async def counts(conn: asyncpg.Connection, now: datetime, late_after: timedelta) -> tuple[int, int]:
    """(pending timers, pending timers whose instant passed more than ``late_after`` ago)."""
    row = await conn.fetchrow(
        f"SELECT count(*) AS pending, count(*) FILTER (WHERE fire_at < $1) AS late FROM step_timers WHERE {PENDING}",
        now - late_after,
    )
    return int(row["pending"]), int(row["late"])


async def listing(conn: asyncpg.Connection, *, fired: bool, limit: int = 200) -> list[asyncpg.Record]:
    """Pending timers (earliest first), or fired notices (latest first), for operators."""
    if fired:
        sql = "SELECT * FROM step_timers WHERE fired_at IS NOT NULL ORDER BY fired_at DESC, id DESC LIMIT $1"
    else:
        sql = f"SELECT * FROM step_timers WHERE {PENDING} ORDER BY fire_at, id LIMIT $1"
    return list(await conn.fetch(sql, limit))


async def replan_pending(conn: asyncpg.Connection, calendar: WorkCalendar) -> int:
    """Recompute every pending timer's instants on ``calendar`` (a new cuti bersama day, changed office
    hours); returns how many moved. Fired and cancelled timers keep their history."""
    rows = await conn.fetch(
        f"SELECT id, kind, due_since, standard_minutes, share, fire_at FROM step_timers WHERE {PENDING}"
    )
    moved = 0
    for r in rows:
        due_at = calendar.add_working_minutes(r["due_since"], r["standard_minutes"])
        fire_at = (
            calendar.add_working_minutes(r["due_since"], r["standard_minutes"] * r["share"])
            if r["kind"] == "reminder"
            else due_at
        )
        if fire_at != r["fire_at"]:
            moved += 1
        await conn.execute("UPDATE step_timers SET fire_at = $2, due_at = $3 WHERE id = $1", r["id"], fire_at, due_at)
    return moved
