"""``renja republish``'s order (``cli.republish.merge``): per Renja, every service's own ``seq`` order is
kept; across services the audit's chain positions decide, else the recorded time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from cli.republish import StoredEvent, merge, out_of_order
from shared.cloudevents import KafkaRecord

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def stored(service: str, seq: int, renja: UUID, minute: int) -> StoredEvent:
    at = T0 + timedelta(minutes=minute)
    return StoredEvent(service, seq, uuid4(), renja, at, at, KafkaRecord(str(renja).encode(), b"{}", []))


def test_without_the_audit_the_recorded_time_interleaves_the_services() -> None:
    r = uuid4()
    d1, d2 = stored("directive", 1, r, 0), stored("directive", 2, r, 1)
    a1, a2 = stored("approvals", 7, r, 2), stored("approvals", 9, r, 3)
    d3 = stored("directive", 5, r, 4)
    assert merge([a2, d3, a1, d2, d1], {}) == [d1, d2, a1, a2, d3]


def test_audit_positions_decide_across_services_but_never_reorder_one_service() -> None:
    r = uuid4()
    d1, d2 = stored("directive", 1, r, 0), stored("directive", 2, r, 5)  # d2 recorded late (clock), logged 2nd
    a1 = stored("approvals", 1, r, 1)
    positions = {d1.event_id: 1, d2.event_id: 2, a1.event_id: 3}
    assert merge([a1, d2, d1], positions) == [d1, d2, a1]
    # a position that contradicts a service's own seq order cannot reorder it: seq order wins
    backwards = {d1.event_id: 2, d2.event_id: 1}
    assert merge([d2, d1], backwards) == [d1, d2]


def test_events_the_audit_never_saw_come_after_those_it_chained() -> None:
    r = uuid4()
    d1 = stored("directive", 1, r, 3)
    a1 = stored("approvals", 1, r, 0)  # earlier recorded, but the audit has not chained it
    assert merge([a1, d1], {d1.event_id: 1}) == [d1, a1]


def test_renjas_are_kept_apart_and_the_first_recorded_goes_first() -> None:
    late, early = uuid4(), uuid4()
    x = stored("directive", 2, late, 5)
    y = stored("directive", 1, early, 0)
    z = stored("meetings", 1, early, 9)
    assert merge([x, z, y], {}) == [y, z, x]


def test_a_renja_whose_present_events_are_not_a_prefix_is_named() -> None:
    r, ok = uuid4(), uuid4()
    e1, e2, e3 = stored("directive", 1, r, 0), stored("directive", 2, r, 1), stored("directive", 3, r, 2)
    f1, f2 = stored("directive", 4, ok, 3), stored("directive", 5, ok, 4)
    merged = merge([e1, e2, e3, f1, f2], {})
    assert out_of_order(merged, {e1.event_id: "directive", e3.event_id: "directive", f1.event_id: "d"}) == [r]
    assert out_of_order(merged, {e1.event_id: "directive", e2.event_id: "directive"}) == []
