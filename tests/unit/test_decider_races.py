"""Choreography races: services fold the same events in different orders and still agree.

Two services may each accept a command on their own view before consuming the other's event (the head
cancels in ``directive`` while the head signs in ``approvals``; or cancels while ``notifier``
distributes). Cancellation is absorbing in ``evolve``, so every order gives the same status.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from shared.events import Actor, RenjaCancelled
from shared.sop import fold, load_sop
from tests.kit.driver import cycle_events

pytestmark = pytest.mark.unit

SOP = load_sop()
KEPALA = Actor(user_id="k", name="Kepala (fiktif)", nip="197501012000031001", role="kepala_badan")


def cancel_of(renja_id, at: datetime) -> RenjaCancelled:  # type: ignore[no-untyped-def]
    return RenjaCancelled(
        event_id=uuid4(),
        renja_id=renja_id,
        source="directive",
        actor=KEPALA,
        occurred_at=at,
        correlation_id=renja_id,
        reason="Siklus diganti",
    )


@pytest.mark.parametrize("racing_type", ["renja.Signed.v1", "renja.Distributed.v1", "renja.Initialed.v1"])
def test_cancellation_racing_any_command_converges_to_cancelled(racing_type: str) -> None:
    renja_id = uuid4()
    events = cycle_events(SOP, renja_id, start=datetime(2026, 3, 2, 1, 0, tzinfo=UTC), receipts=0)
    cut = next(i for i, e in enumerate(events) if e.event_type == racing_type)
    before, racing = events[:cut], events[cut]
    cancel = cancel_of(renja_id, racing.occurred_at)
    outcomes = {fold([*before, *order]).status for order in itertools.permutations([racing, cancel])}
    assert outcomes == {"cancelled"}
    # And the racing command leaves no trace in the state once the cancellation is in.
    assert fold([*before, cancel, racing]).completed_steps == fold([*before, cancel]).completed_steps


def test_nothing_after_cancellation_changes_the_state_except_the_count() -> None:
    renja_id = uuid4()
    events = cycle_events(SOP, renja_id, start=datetime(2026, 3, 2, 1, 0, tzinfo=UTC), receipts=2)
    cancelled = fold([*events[:3], cancel_of(renja_id, events[2].occurred_at)])
    after = fold(events[3:], cancelled)
    assert after.status == "cancelled" and after.due_step is None
    assert after.model_dump(exclude={"last_event_id", "events_applied"}) == cancelled.model_dump(
        exclude={"last_event_id", "events_applied"}
    )
    assert after.events_applied == cancelled.events_applied + len(events) - 3
