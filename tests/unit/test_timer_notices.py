"""The timer notices' pure side: the step timers' instants on the shared calendar, the escalation chain,
the notice's numbers (the audit's working minutes), and the audit timeline showing a notice as an
informational entry that completes no step and changes no state."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from uuid import uuid4

import pytest

from services.audit.timeline import build_timeline, steps_from_sop
from services.notifier.timers import SUPERIOR, notice, notice_event_id, plan_step
from shared.events import StepOverdue
from shared.sop import load_sop
from shared.workcalendar import calendar_from_sop
from tests.kit.driver import STEPS, Cycle

pytestmark = pytest.mark.unit

SOP = load_sop()
CALENDAR = calendar_from_sop(SOP)
FRIDAY_1530 = datetime.fromisoformat("2024-09-13T15:30:00+07:00")  # before Monday 16 Sep 2024, Maulid Nabi


def test_step_4_due_friday_afternoon_before_a_monday_holiday() -> None:
    reminder, deadline = plan_step(uuid4(), SOP.step(4), FRIDAY_1530, CALENDAR, 0.8)
    assert reminder.fire_at == datetime.fromisoformat("2024-09-17T10:30:00+07:00")  # 60 Fri + 180 Tue
    assert deadline.fire_at == deadline.due_at == datetime.fromisoformat("2024-09-17T11:30:00+07:00")
    assert (reminder.kind, deadline.kind, deadline.role) == ("reminder", "overdue", "staf")


def test_the_overdue_notice_escalates_up_the_sop_hierarchy() -> None:
    assert [SUPERIOR[r] for r in ("staf", "kasubag_pp", "sekretaris", "kepala_badan")] == [
        "kasubag_pp",
        "sekretaris",
        "kepala_badan",
        None,
    ]


def test_the_notice_carries_the_audit_timelines_numbers_and_shows_on_it() -> None:
    cycle = Cycle(SOP, clock=FRIDAY_1530 - timedelta(minutes=2))
    while cycle.state.due_step is not None and cycle.state.due_step < 4:
        cycle.run(STEPS[cycle.state.due_step])
    assert cycle.state.due_since == FRIDAY_1530
    (_, deadline) = plan_step(cycle.renja_id, SOP.step(4), FRIDAY_1530, CALENDAR, 0.8)
    fired_at = deadline.fire_at + timedelta(minutes=5)
    row = dataclasses.asdict(deadline)
    event = notice(row, correlation_id=cycle.renja_id, now=fired_at, calendar=CALENDAR)
    assert isinstance(event, StepOverdue)
    assert event.event_id == notice_event_id(cycle.renja_id, 4, FRIDAY_1530, "overdue")
    assert (event.escalated_to, event.working_minutes) == ("kasubag_pp", 305.0)
    before = build_timeline(cycle.events, steps_from_sop(SOP), CALENDAR, sop=SOP, as_of=fired_at)
    after = build_timeline([*cycle.events, event], steps_from_sop(SOP), CALENDAR, sop=SOP, as_of=fired_at)
    entry = after.entries[-1]
    assert entry.step_number is None and "Terlambat: langkah 4" in entry.note and "kasubag_pp" in entry.note
    assert after.overdue_count == before.overdue_count
    open_step = after.current_step
    assert open_step is not None and open_step.number == 4 and open_step.overdue  # the timeline agrees
