"""The test kit's cycle table agrees with the SOP file, and one table drives whole cycles in-process."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from uuid import UUID

import pytest

from shared.events import Distributed, DraftReturned, RenjaCancelled
from shared.sop import fold, load_sop
from tests.kit.driver import CANCEL, RECEIPT, RETURNS, STEPS, Cycle, cycle_events
from tests.kit.people import PEOPLE
from tests.kit.rows import load_rows, rows_by_unit

pytestmark = pytest.mark.unit

SOP = load_sop()
RENJA = UUID("5d0c2a1e-7b3f-4e8a-9c6d-1f2e3a4b5c6d")
START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


def test_every_step_row_is_taken_by_the_role_the_sop_file_names() -> None:
    assert sorted(STEPS) == [s.number for s in SOP.steps]
    for number, row in STEPS.items():
        assert (row.number, row.role) == (number, SOP.step(number).role)
    for number, row in RETURNS.items():
        assert (row.number, row.role, row.service) == (number, SOP.step(number).role, "approvals")
    assert (CANCEL.role, RECEIPT.role) == ("kepala_badan", "staf")
    assert set(PEOPLE) >= {row.role for row in STEPS.values()}


def test_a_cycle_driven_row_by_row_is_distributed_and_owned_by_each_steps_service() -> None:
    cycle = Cycle(SOP, RENJA, clock=START)
    cycle.run_until(11)
    cycle.run(RECEIPT)
    assert cycle.state.status == "distributed" and cycle.state.receipts == (SOP.distribution[0].name,)
    assert [e.source for e in cycle.events[:11]] == [STEPS[n].service for n in range(1, 12)]
    assert [e.actor.role for e in cycle.events[:11]] == [SOP.step(n).role for n in range(1, 12)]


def test_cycle_events_returns_and_cancels_where_asked_and_chains_ids() -> None:
    events = cycle_events(SOP, RENJA, start=START, returns=(9,), receipts=2)
    assert [type(e) for e in events].count(DraftReturned) == 1
    assert isinstance(events[-3], Distributed) and fold(events).receipts == tuple(r.name for r in SOP.distribution[:2])
    assert all(b.causation_id == a.event_id for a, b in pairwise(events))
    assert events == cycle_events(SOP, RENJA, start=START, returns=(9,), receipts=2)  # deterministic
    cancelled = cycle_events(SOP, RENJA, start=START, cancel_before_step=8)
    assert isinstance(cancelled[-1], RenjaCancelled) and fold(cancelled).status == "cancelled"


def test_the_sample_rows_split_over_every_unit_of_the_sop_file() -> None:
    by_unit = rows_by_unit(load_rows(), SOP)
    assert list(by_unit) == list(SOP.unit_codes) and all(by_unit.values())
