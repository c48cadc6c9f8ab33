"""One fold: the audit timeline and ``shared.sop.evolve`` agree on every log, races and redeliveries included.

The logs are whole or partial cycles driven through the decider by the kit (``tests.kit.driver.Cycle``),
with returns at the review steps, cancellations, and the races the services tolerate: commands another
service accepted before it had consumed the ``RenjaCancelled`` (a paraf, a signature, a new draft, a
distribution and its receipts), a cancellation that raced the distribution, and records delivered
twice. At every position of the log the timeline of that prefix must show what ``evolve`` folds from it
(the services' inboxes drop a redelivered record by its event id before folding; the timeline too).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.audit.logreader import decode_batch
from services.audit.projector import BatchResult, Projector
from services.audit.store import EVENT_COLUMNS
from services.audit.timeline import IGNORED_NOTE, Timeline, build_timeline, steps_from_sop
from services.audit.workcalendar import WorkCalendar
from shared.cloudevents import to_kafka
from shared.events import Event, Initialed, RenjaCancelled
from shared.sop import CommandContext, RenjaState, SopDefinition, decide, evolve, fold, load_sop
from tests.kit import commands
from tests.kit.driver import CANCEL, RECEIPT, RETURNS, STEPS, Cycle, Step, cycle_events
from tests.kit.people import actor
from tests.kit.signing import legacy_trust

pytestmark = pytest.mark.unit

SOP = load_sop()
SPECS = steps_from_sop(SOP)
CALENDAR = WorkCalendar()
RENJA = UUID("5e0f7c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b")
START = datetime(2026, 8, 3, 1, 0, tzinfo=UTC)  # Monday 08:00 WIB


# --- random logs ----------------------------------------------------------------------------------------


def _row(draw: st.DrawFn, cycle: Cycle) -> Step | None:
    """The next action on ``cycle``: mostly its due step, sometimes a return at a review step."""
    due = cycle.state.due_step
    if due is None:
        unreceived = cycle.state.status == "distributed" and len(cycle.state.receipts) < len(cycle.state.recipients)
        return RECEIPT if unreceived and draw(st.booleans()) else None
    if due in RETURNS and draw(st.integers(0, 7)) == 0:
        return RETURNS[due]
    return STEPS[due]


def _race(draw: st.DrawFn, before: Cycle, log: list[Event], clock: datetime) -> list[Event]:
    """Commands decided on ``before`` (a service that has not consumed the last events of ``log`` yet)
    and appended to ``log``: up to four actions, none by the service that decided the last event."""
    shadow = replace(before, events=list(log), clock=clock)
    last_source = log[-1].source
    for _ in range(draw(st.integers(0, 4))):
        row = _row(draw, shadow)
        if row is None or row.service == last_source:
            break
        shadow.run(row)
    return shadow.events


@st.composite
def racy_logs(draw: st.DrawFn) -> list[Event]:
    """A cycle's log: steps, returns, at most one cancellation (racing later commands, or racing the
    distribution), receipts, then a few records delivered again further on."""
    gap = timedelta(minutes=draw(st.sampled_from([1, 25, 90, 400])))
    cycle = Cycle(SOP, RENJA, clock=START, gap=gap, chained=True)
    for _ in range(draw(st.integers(0, 40))):
        due = cycle.state.due_step
        pick = draw(st.integers(0, 99))
        if due is not None and due > 1 and pick < (20 if due >= 8 else 4):  # the races of interest: 8-11
            before = replace(cycle, events=list(cycle.events))
            cycle.run(CANCEL)
            return _redeliver(draw, _race(draw, before, cycle.events, cycle.clock))
        if due == 11 and pick < 40:
            return _redeliver(draw, _distribution_race(draw, cycle))
        row = _row(draw, cycle)
        if row is None:
            break
        cycle.run(row)
    return _redeliver(draw, cycle.events)


def _distribution_race(draw: st.DrawFn, cycle: Cycle) -> list[Event]:
    """The notifier distributes while the head, who has not seen it yet, cancels; receipts may follow."""
    before = replace(cycle, events=list(cycle.events))
    cycle.run(STEPS[11])
    cancelled = replace(before, events=list(cycle.events), clock=cycle.clock)
    cancelled.run(CANCEL)
    return _race(draw, cycle, cancelled.events, cancelled.clock)


def _redeliver(draw: st.DrawFn, log: list[Event]) -> list[Event]:
    """``log`` with up to three of its records delivered again at later positions."""
    out = list(log)
    for _ in range(draw(st.integers(0, 3)) if out else 0):
        source = draw(st.integers(0, len(out) - 1))
        out.insert(draw(st.integers(source + 1, len(out))), out[source])
    return out


# --- what evolve says, position by position ----------------------------------------------------------


def evolve_history(log: list[Event]) -> list[tuple[Event, RenjaState, RenjaState]]:
    """``(event, state before, state after)`` for each distinct event of ``log``, in log order."""
    seen: set[UUID] = set()
    state = RenjaState()
    history = []
    for e in log:
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        after = evolve(state, e, SOP)
        history.append((e, state, after))
        state = after
    return history


def assert_one_fold(log: list[Event]) -> Timeline:
    """The timeline of every prefix of ``log`` shows what ``evolve`` folds from that prefix."""
    history = evolve_history(log)
    timeline = build_timeline(log, SPECS, CALENDAR, sop=SOP)
    assert len(timeline.entries) == len(history)
    for entry, (e, before, after) in zip(timeline.entries, history, strict=True):
        assert entry.event_id == str(e.event_id)
        added = set(after.completed_steps) - set(before.completed_steps)
        # a step entry exactly where evolve completes that step; the duration runs from when it was due
        assert entry.step_number == (min(added) if added else None), f"position {entry.position}"
        if entry.step_number is not None and entry.step_number > 1:
            assert before.due_step == entry.step_number
            assert entry.started_at == before.due_since
    for cut in range(len(log) + 1):
        prefix = log[:cut]
        state = fold({e.event_id: e for e in prefix}.values(), sop=SOP)
        shown = build_timeline(prefix, SPECS, CALENDAR, sop=SOP)
        assert shown.state == state
        assert shown.status == state.status
        assert shown.completed_steps == state.completed_steps
        assert set(shown.completed_steps) <= {e.step_number for e in shown.step_entries}
        due = shown.current_step
        assert ((due.number, due.enabled_at) if due else None) == (
            (state.due_step, state.due_since) if state.due_step is not None else None
        )
    return timeline


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=racy_logs())
def test_the_timeline_shows_what_evolve_folds_at_every_position(log: list[Event]) -> None:
    timeline = assert_one_fold(log)
    cancelled = next((i for i, e in enumerate(timeline.entries) if e.event_type == RenjaCancelled.event_type), None)
    event(f"status: {timeline.status}")
    if cancelled is not None and cancelled + 1 < len(timeline.entries):
        late = timeline.entries[cancelled + 1 :]
        event("commands raced the cancellation")
        for kind in sorted({e.event_type.split(".")[1] for e in late}):
            event(f"raced the cancellation: {kind}")
        assert all(e.step_number is None and e.note.startswith(IGNORED_NOTE) for e in late)
    if len({e.event_id for e in log}) < len(log):
        event("redelivered records")


# --- the race of the issue, and others by hand ---------------------------------------------------------


def cancelled_before_step_9(*, race: tuple[int, ...]) -> list[Event]:
    """Steps 1-8 done; the head cancels; then the ``race`` steps that approvals accepted before it had
    consumed the cancellation (decided on the state before it)."""
    cycle = Cycle(SOP, RENJA, clock=START, gap=timedelta(minutes=20), chained=True)
    cycle.run_until(8)
    before = replace(cycle, events=list(cycle.events))
    cycle.run(CANCEL)
    shadow = replace(before, events=list(cycle.events), clock=cycle.clock)
    for number in race:
        shadow.run(STEPS[number])
    return shadow.events


def test_a_paraf_that_raced_the_cancellation_does_not_show_step_9_done() -> None:
    log = cancelled_before_step_9(race=(9,))
    assert isinstance(log[-1], Initialed) and log[-1].step == 9
    assert isinstance(log[-2], RenjaCancelled)
    timeline = build_timeline(log, SPECS, CALENDAR, sop=SOP)
    assert [e.step_number for e in timeline.step_entries] == list(range(1, 9))
    late = timeline.entries[-1]
    assert (late.event_type, late.step_number, late.working_minutes) == (Initialed.event_type, None, None)
    assert late.note == IGNORED_NOTE
    assert (timeline.status, timeline.current_step, timeline.completed_steps) == (
        "cancelled",
        None,
        fold(log).completed_steps,
    )
    assert 9 not in timeline.completed_steps


def test_a_signature_that_raced_the_cancellation_completes_nothing() -> None:
    log = cancelled_before_step_9(race=(9, 10))
    timeline = assert_one_fold(log)
    assert [(e.event_type, e.step_number) for e in timeline.entries[-2:]] == [
        ("renja.Initialed.v1", None),
        ("renja.Signed.v1", None),
    ]
    assert timeline.step_entries[-1].step_number == 8
    assert (timeline.status, timeline.completed_steps) == ("cancelled", tuple(range(1, 9)))


def test_a_cancellation_that_raced_the_distribution_keeps_step_11_and_ignores_later_receipts() -> None:
    cycle = Cycle(SOP, RENJA, clock=START, gap=timedelta(minutes=20), chained=True)
    cycle.run_until(10)
    before = replace(cycle, events=list(cycle.events))
    cycle.run(STEPS[11])
    cancelled = replace(before, events=list(cycle.events), clock=cycle.clock)
    cancelled.run(CANCEL)
    late = replace(cycle, events=list(cancelled.events), clock=cancelled.clock)
    late.run(RECEIPT)
    timeline = assert_one_fold(late.events)
    assert timeline.status == "cancelled"
    assert timeline.step_entries[-1].step_number == 11
    assert timeline.entries[-1].note.startswith(IGNORED_NOTE + " (Diterima oleh ")


def test_a_cycle_returned_twice_is_one_fold_and_measures_step_7_from_each_return() -> None:
    log = cycle_events(SOP, RENJA, start=START, returns=(9, 10), receipts=2)
    timeline = assert_one_fold(log)
    returns = [e for e in timeline.entries if e.event_type.endswith("DraftReturned.v1")]
    redone = [e for e in timeline.step_entries if e.step_number == 7][1:]
    assert [r.event_id for r in returns] == [e.enabled_by for e in redone]
    assert [e.attempt for e in timeline.step_entries if e.step_number == 8] == [1, 2, 3]


def test_the_timeline_folds_by_the_sop_it_is_given(tmp_path: Path) -> None:
    # the shipped file with a third paraf (staf) as step 10: signature 11, distribution 12
    sop = _twelve_steps(tmp_path)
    log = _up_to_third_paraf(sop)
    timeline = build_timeline(log, steps_from_sop(sop), CALENDAR, sop=sop)
    assert [e.step_number for e in timeline.step_entries] == list(range(1, 11))
    assert timeline.step_entries[-1].step_name == "Paraf staf"
    assert timeline.current_step is not None and timeline.current_step.number == 11
    assert timeline.state == fold(log, sop=sop)
    with pytest.raises(ValueError, match="numbers"):
        build_timeline(log, SPECS, CALENDAR, sop=sop)


def _twelve_steps(tmp_path: Path) -> SopDefinition:
    shipped = Path(__file__).resolve().parents[2] / "shared" / "sop.yaml"
    text = shipped.read_text(encoding="utf-8")
    text = text.replace("  - number: 11\n", "  - number: 12\n").replace("  - number: 10\n", "  - number: 11\n")
    text = text.replace("    step: 10\n", "    step: 11\n")
    third = (
        "  - number: 10\n    name: Paraf staf\n    activity: Paraf lampiran\n    gloss: Staff initial\n    role: staf\n"
        "    input: Rancangan Akhir Renja\n    output: Rancangan Akhir Renja (paraf)\n    standard_minutes: 15\n"
        "    completed_by: {event_type: renja.Initialed.v1, match: {step: 10}}\n"
    )
    at = text.index("  - number: 11\n")
    path = tmp_path / "sop.yaml"
    path.write_text(text[:at] + third + text[at:], encoding="utf-8")
    return load_sop(path)


def _up_to_third_paraf(sop: SopDefinition) -> list[Event]:
    """Steps 1-10 of the twelve-step SOP through ``decide`` and ``evolve`` (both given ``sop``)."""
    cycle = Cycle(sop, RENJA, clock=START, chained=True)
    for number in range(1, 11):
        build = commands.initial(10) if number == 10 else STEPS[number].command
        role = "staf" if number == 10 else STEPS[number].role
        ctx = CommandContext(
            renja_id=RENJA,
            actor=actor(role),
            source="approvals",
            event_id=UUID(int=number),
            correlation_id=RENJA,
            now=START + timedelta(minutes=10 * number),
        )
        (new,) = decide(cycle.state, build(cycle), ctx, sop)
        cycle.state = evolve(cycle.state, new, sop)
        cycle.events.append(new)
    return cycle.events


def test_the_stored_step_of_a_raced_paraf_is_none_as_on_the_page() -> None:
    """The audit's stored rows (``audit_events.step_number``) follow the same fold as the timeline."""
    log = cancelled_before_step_9(race=(9,))
    records = [to_kafka(event) for event in log]
    consumed = [
        ConsumerRecord(
            topic="renja.events", partition=0, offset=i, timestamp=0, timestamp_type=0, key=r.key, value=r.value,
            checksum=None, serialized_key_size=-1, serialized_value_size=-1, headers=tuple(r.headers),
        )
        for i, r in enumerate(records)
    ]  # fmt: skip
    batch = decode_batch(consumed, legacy_trust())
    rows, _, _ = Projector(SOP, Ed25519PrivateKey.generate())._fold(batch.events, {}, BatchResult())
    column = EVENT_COLUMNS.index("step_number")
    assert [row[column] for row in rows] == [*range(1, 9), None, None]  # …, RenjaCancelled, the raced paraf
