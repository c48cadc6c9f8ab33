"""``shared.sop.classify``: one test per anomaly kind, none on any cycle the decider produces, and the
services' ``ensure_foldable`` (refuse what would move the state, fold what ``evolve`` absorbs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from shared.events import Event
from shared.sop import RenjaState, UnfoldableEvent, classify, ensure_foldable, fold, load_sop
from tests.kit.driver import cycle_events

pytestmark = pytest.mark.unit

SOP = load_sop()
START = datetime(2026, 8, 3, 1, 0, tzinfo=UTC)


def full(**kw: object) -> list[Event]:
    return cycle_events(SOP, uuid4(), start=START, **kw)  # type: ignore[arg-type]


def kinds_along(events: list[Event]) -> list[str | None]:
    state = RenjaState()
    found: list[str | None] = []
    for ev in events:
        anomaly = classify(state, ev, SOP)
        found.append(None if anomaly is None else anomaly.kind)
        state = fold([ev], state, SOP)
    return found


@pytest.mark.parametrize(
    "script",
    [
        {},
        {"returns": (8, 9, 10), "receipts": 4},
        {"cancel_before_step": 2},
        {"cancel_before_step": 9},
        {"cancel_before_step": 11},
    ],
)
def test_no_cycle_the_decider_makes_has_an_anomaly(script: dict[str, object]) -> None:
    assert kinds_along(full(**script)) == [None] * len(full(**script))


def test_an_instruksi_for_a_renja_no_arahan_opened_is_an_unknown_renja() -> None:
    events = full()
    anomaly = classify(RenjaState(), events[1], SOP)  # step 2 (instruksi) alone: the phantom cycle
    assert anomaly is not None and anomaly.kind == "unknown_renja" and anomaly.step == 2


def test_a_step_by_another_role_is_a_wrong_role() -> None:
    events = full()
    state = fold(events[:1], sop=SOP)
    forged = events[1].model_copy(update={"actor": events[0].actor})  # instruksi by the kepala_badan
    anomaly = classify(state, forged, SOP)
    assert anomaly is not None and anomaly.kind == "wrong_role" and "kepala_badan" in anomaly.message


def test_a_step_that_is_not_due_is_out_of_order() -> None:
    events = full()
    state = fold(events[:3], sop=SOP)  # step 4 due
    anomaly = classify(state, events[7], SOP)  # the first paraf (step 8)
    assert anomaly is not None and (anomaly.kind, anomaly.step) == ("out_of_order", 8)
    assert "step 4" in anomaly.message


def test_a_receipt_before_the_distribution_is_out_of_order() -> None:
    events = full()
    receipt = events[-1]
    anomaly = classify(fold(events[:5], sop=SOP), receipt, SOP)
    assert anomaly is not None and anomaly.kind == "out_of_order"


def test_a_step_done_twice_is_a_second_completion() -> None:
    events = full()
    state = fold(events[:4], sop=SOP)
    again = events[0].model_copy(update={"event_id": uuid4()})  # a second arahan
    anomaly = classify(state, again, SOP)
    assert anomaly is not None and (anomaly.kind, anomaly.step) == ("second_completion", 1)
    distributed = fold(events[:-1], sop=SOP)
    twice = events[-2].model_copy(update={"event_id": uuid4()})  # a second distribution
    assert (found := classify(distributed, twice, SOP)) is not None and found.kind == "second_completion"


def test_anything_but_a_receipt_after_a_cancellation_is_flagged() -> None:
    cancelled = full(cancel_before_step=8)
    state = fold(cancelled, sop=SOP)
    paraf = full()[7].model_copy(update={"renja_id": cancelled[0].renja_id})
    anomaly = classify(state, paraf, SOP)
    assert anomaly is not None and anomaly.kind == "after_cancellation"
    receipt = full()[-1].model_copy(update={"renja_id": cancelled[0].renja_id})
    assert classify(state, receipt, SOP) is None


def test_a_cancellation_after_the_distribution_is_out_of_order_but_folded() -> None:
    events = full()
    distributed = fold(events[:-1], sop=SOP)
    cancel = full(cancel_before_step=2)[-1].model_copy(
        update={"renja_id": events[0].renja_id, "occurred_at": START + timedelta(days=2)}
    )
    anomaly = ensure_foldable(distributed, cancel, SOP)  # the cancel/distribute race: cancellation wins
    assert anomaly is not None and anomaly.kind == "out_of_order"


def test_services_refuse_an_out_of_order_transition_and_fold_what_evolve_absorbs() -> None:
    events = full()
    with pytest.raises(UnfoldableEvent) as refused:
        ensure_foldable(RenjaState(), events[1], SOP)
    assert refused.value.dlq_reason == "out_of_order" and refused.value.anomaly.kind == "unknown_renja"
    with pytest.raises(UnfoldableEvent):
        ensure_foldable(fold(events[:3], sop=SOP), events[7], SOP)
    cancelled = fold(full(cancel_before_step=8), sop=SOP)
    late = events[7].model_copy(update={"renja_id": cancelled.renja_id})
    absorbed = ensure_foldable(cancelled, late, SOP)
    assert absorbed is not None and absorbed.kind == "after_cancellation"
    assert ensure_foldable(fold(events[:7], sop=SOP), events[7], SOP) is None
