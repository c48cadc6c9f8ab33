"""Anomalies: events that are facts on the log but that the SOP would never have decided on the state they
follow (an event for a Renja no *arahan* opened, by the wrong role, for a step not due, a second
completion of a step, anything but a receipt after a cancellation). Pure: state, event and SOP in.

``classify(state, event, sop)`` names the first anomaly of ``event`` folded on ``state`` (or None); the
audit records each one next to the event, which stays in its hash chain (the log is the log).
``ensure_foldable`` is the services' side: it raises ``UnfoldableEvent`` (dead-letter reason
``out_of_order``) for an anomaly that would move the state, so no service folds such a transition
silently. An anomaly that ``evolve`` absorbs is folded as before: anything after a cancellation (it
changes nothing) and a cancellation after a distribution (the design's race rule: cancellation wins).

Duplicate event ids with different bytes are the audit's own check (it keeps the bytes); the kind is
listed here so every reader names it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.events import (
    DirectiveIssued,
    DraftReturned,
    Event,
    ReceiptRecorded,
    RenjaCancelled,
)
from shared.sop.definition import SopDefinition
from shared.sop.state import EVOLVERS, RenjaState

AnomalyKind = Literal[
    "unknown_renja", "wrong_role", "out_of_order", "second_completion", "after_cancellation", "duplicate_id"
]

ANOMALY_KINDS: tuple[AnomalyKind, ...] = (
    "unknown_renja",
    "wrong_role",
    "out_of_order",
    "second_completion",
    "after_cancellation",
    "duplicate_id",
)
"""Every kind, in the order ``classify`` checks them (``duplicate_id`` is the audit's byte check)."""

DLQ_REASON = "out_of_order"
"""The dead-letter reason of an event a service refuses to fold (``UnfoldableEvent.dlq_reason``)."""


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomaly: its ``kind``, the SOP ``step`` the event claims (None if none), and a message in
    English for the auditor (what happened, what the SOP expected)."""

    kind: AnomalyKind
    step: int | None
    message: str


class UnfoldableEvent(Exception):
    """An event a service must not fold: its ``anomaly`` would move the state outside the SOP.

    ``dlq_reason`` (``out_of_order``) is the dead-letter reason ``shared.inbox`` gives the record.
    """

    dlq_reason = DLQ_REASON

    def __init__(self, anomaly: Anomaly) -> None:
        super().__init__(f"{anomaly.kind}: {anomaly.message}")
        self.anomaly = anomaly


def _claimed_step(event: Event, sop: SopDefinition) -> int | None:
    """The step an event completes (``completed_by``), or for a return the review step it acts at."""
    if isinstance(event, DraftReturned):
        return event.at_step
    return sop.plan.completed_by(event)


def _expected_role(event: Event, step: int | None, sop: SopDefinition) -> tuple[str, ...]:
    """The roles that may have produced ``event`` (empty: any)."""
    if isinstance(event, RenjaCancelled):
        return ("kepala_badan",)
    if isinstance(event, ReceiptRecorded):
        return (sop.step(sop.plan.number("distribution")).role, "system")
    if step is not None and step in sop.plan.numbers:
        return (sop.step(step).role,)
    return ()


def _opens(event: Event) -> bool:
    return isinstance(event, DirectiveIssued) and event.level == "arahan"


def classify(state: RenjaState, event: Event, sop: SopDefinition) -> Anomaly | None:
    """The first anomaly of folding ``event`` on ``state`` (the fold of the Renja's earlier events), or None.

    Checked in this order: ``unknown_renja`` (the Renja was never opened by an *arahan* and this is not
    one), ``wrong_role`` (the actor's role is not the step's; a cancellation is the head's, a receipt the
    distributor's or the system's), ``after_cancellation`` (anything but a receipt after
    ``RenjaCancelled``), ``second_completion`` (a step already done and still valid, e.g. a second
    *arahan*), ``out_of_order`` (a step that is not due, a receipt before the distribution, a cancellation
    after it). Event types ``evolve`` does not fold (e.g. a later release's) are never anomalies.
    """
    if type(event) not in EVOLVERS:
        return None
    step = _claimed_step(event, sop)
    if state.status == "not_started" and not _opens(event):
        return Anomaly("unknown_renja", step, f"{event.event_type} for a Renja that no arahan opened")
    roles = _expected_role(event, step, sop)
    if roles and event.actor.role not in roles:
        who = " or ".join(roles)
        return Anomaly("wrong_role", step, f"{event.event_type} by {event.actor.role}; the SOP says {who}")
    if state.status == "cancelled":
        if isinstance(event, ReceiptRecorded):
            return None
        return Anomaly("after_cancellation", step, f"{event.event_type} after the Renja was cancelled")
    if isinstance(event, RenjaCancelled):
        if state.status == "distributed":
            return Anomaly("out_of_order", None, "RenjaCancelled after the Renja was distributed")
        return None
    if isinstance(event, ReceiptRecorded):
        if state.status != "distributed":
            return Anomaly("out_of_order", None, "ReceiptRecorded before the Renja was distributed")
        return None
    if step is None:
        return None
    if not isinstance(event, DraftReturned) and step in state.completed_steps:
        return Anomaly("second_completion", step, f"step {step} completed again by {event.event_type}")
    if state.due_step != step:
        due = "no step" if state.due_step is None else f"step {state.due_step}"
        return Anomaly("out_of_order", step, f"{event.event_type} for step {step} while {due} was due")
    return None


def absorbed(state: RenjaState, event: Event, anomaly: Anomaly) -> bool:
    """Whether ``evolve`` resolves ``anomaly`` without a transition outside the SOP: anything after a
    cancellation changes nothing, and a cancellation after a distribution wins (a documented race)."""
    if state.status == "cancelled":
        return True
    return isinstance(event, RenjaCancelled) and anomaly.kind == "out_of_order"


def ensure_foldable(state: RenjaState, event: Event, sop: SopDefinition) -> Anomaly | None:
    """Raise ``UnfoldableEvent`` if folding ``event`` on ``state`` is an anomaly ``evolve`` does not
    absorb (``absorbed``); else return the absorbed anomaly, if any (for the caller's log)."""
    anomaly = classify(state, event, sop)
    if anomaly is None:
        return None
    if absorbed(state, event, anomaly):
        return anomaly
    raise UnfoldableEvent(anomaly)


__all__ = [
    "ANOMALY_KINDS",
    "DLQ_REASON",
    "Anomaly",
    "AnomalyKind",
    "UnfoldableEvent",
    "absorbed",
    "classify",
    "ensure_foldable",
]
