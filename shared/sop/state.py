"""``RenjaState``, the process state of one Renja cycle folded from its events (JSON-serialisable, so
services keep it as jsonb), and ``evolve`` / ``fold``: pure, total, deterministic."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events import (
    DataCollected,
    DirectiveIssued,
    Distributed,
    DraftCreated,
    DraftReturned,
    Event,
    Initialed,
    MeetingHeld,
    OpdIdentity,
    ReceiptRecorded,
    Recipient,
    RenjaCancelled,
    Signed,
)
from shared.sop.definition import SHIPPED_PLAN, SopDefinition, SopStep, StepPlan, Unit

RenjaStatus = Literal["not_started", "in_progress", "cancelled", "distributed"]
CLOSED: frozenset[str] = frozenset({"cancelled", "distributed"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DraftInfo(_Frozen):
    """One draft version of the cycle (versions count all drafts from 1)."""

    version: int
    stage: Literal["awal", "akhir"]
    content_sha256: str
    based_on_version: int | None = None


class RenjaState(_Frozen):
    """The process state of one Renja cycle, as folded from its events. JSON round-trips exactly.

    Invariants (kept by ``evolve`` for any sequence ``decide`` accepts):
    - ``completed_steps`` are the steps done and still valid: a return drops the Rancangan Akhir and
      its review steps (7-10 in the shipped SOP), a new Rancangan Akhir drops the review steps (8-10);
    - ``due_step`` is the lowest step not completed while in progress, 1 before start, None when closed;
    - ``parafs`` are the paraf steps (8, 9) initialed on ``akhir_version`` exactly, since it was created.
    """

    renja_id: UUID | None = None
    opd: str = ""
    opd_code: str | None = Field(default=None, description="the OPD's SIPD unit code the cycle was opened with")
    opd_identity: OpdIdentity | None = Field(
        default=None, description="the OPD/region snapshot the arahan recorded (None before the registry)"
    )
    fiscal_year: int | None = None
    correlation_id: UUID | None = None
    status: RenjaStatus = "not_started"
    completed_steps: tuple[int, ...] = ()
    due_step: int | None = 1
    due_since: datetime | None = Field(default=None, description="UTC; when the due step became due")
    units_delivered: tuple[str, ...] = ()
    data_rows: int = 0
    data_pagu_total: int = Field(default=0, description="rupiah")
    drafts: tuple[DraftInfo, ...] = ()
    awal_version: int | None = None
    awal_sha256: str | None = None
    awal_created_at: datetime | None = Field(
        default=None, description="UTC; when the Rancangan Awal was created (its DraftCreated's occurred_at)"
    )
    meeting_id: UUID | None = None
    meeting_draft_version: int | None = None
    notulen_sha256: str | None = None
    akhir_version: int | None = None
    akhir_sha256: str | None = None
    akhir_blocking_findings: int = 0
    akhir_warning_findings: int = 0
    parafs: tuple[int, ...] = ()
    signed: bool = False
    signed_version: int | None = None
    signed_sha256: str | None = None
    returns: int = 0
    last_return_notes: str | None = None
    cancel_reason: str | None = None
    distribution_id: UUID | None = None
    distributed_at: datetime | None = Field(default=None, description="UTC; when the Renja was distributed")
    recipients: tuple[str, ...] = ()
    receipts: tuple[str, ...] = ()
    last_event_id: UUID | None = None
    events_applied: int = 0

    @property
    def is_closed(self) -> bool:
        """Cancelled or distributed: only receipts may follow."""
        return self.status in CLOSED

    @property
    def latest_draft_version(self) -> int:
        """Highest draft version so far (0 before any draft)."""
        return max((d.version for d in self.drafts), default=0)

    def next_draft_version(self) -> int:
        """The version a new draft (step 5 or 7) must carry."""
        return self.latest_draft_version + 1


def cycle_units(state: RenjaState, sop: SopDefinition) -> tuple[Unit, ...]:
    """The units that deliver data at step 4 of the cycle: its OPD's (the identity snapshot the arahan
    recorded), else, for a cycle opened before the registry, the SOP file's."""
    if state.opd_identity is not None and state.opd_identity.units:
        return tuple(Unit(code=u.code, name=u.name) for u in state.opd_identity.units)
    return sop.units


def cycle_distribution(state: RenjaState, sop: SopDefinition) -> tuple[Recipient, ...]:
    """The recipients of the cycle's signed Renja at step 11: its OPD's (the identity snapshot the arahan
    recorded), else, for a cycle opened before the registry, the SOP file's list."""
    if state.opd_identity is not None and state.opd_identity.distribution:
        return state.opd_identity.distribution
    return tuple(r.to_event_recipient() for r in sop.distribution)


def next_step(state: RenjaState, sop: SopDefinition) -> SopStep | None:
    """The step the Renja waits for (number, role, standard...), or None when cancelled/distributed."""
    return None if state.due_step is None else sop.step(state.due_step)


@dataclass(frozen=True)
class _Change:
    """What one event changes besides the step it completes: fields, steps undone, a new status."""

    fields: dict[str, Any] = field(default_factory=dict)
    undo: frozenset[int] = frozenset()
    status: RenjaStatus | None = None


_UNREVIEWED: dict[str, Any] = {"parafs": (), "signed": False, "signed_version": None, "signed_sha256": None}
"""The review of a Rancangan Akhir undone (a new version, or a return)."""


def _on_directive(state: RenjaState, event: DirectiveIssued, plan: StepPlan) -> _Change:
    started = event.level == "arahan" or not state.opd
    fields: dict[str, Any] = {}
    if started:
        fields = {"opd": event.opd, "opd_code": event.opd_code, "fiscal_year": event.fiscal_year}
        if event.opd_identity is not None:
            fields["opd_identity"] = event.opd_identity
    return _Change(fields, status="in_progress" if state.status == "not_started" else None)


def _on_data(state: RenjaState, event: DataCollected, plan: StepPlan) -> _Change:
    units = tuple(u.unit for u in event.units)
    return _Change({"units_delivered": units, "data_rows": event.rows, "data_pagu_total": event.pagu_total})


def _on_draft(state: RenjaState, event: DraftCreated, plan: StepPlan) -> _Change:
    draft = DraftInfo(
        version=event.version,
        stage=event.stage,
        content_sha256=event.content_sha256,
        based_on_version=event.based_on_version,
    )
    drafts = (*state.drafts, draft)
    if event.stage == "awal":
        version, sha, at = event.version, event.content_sha256, event.occurred_at
        return _Change({"drafts": drafts, "awal_version": version, "awal_sha256": sha, "awal_created_at": at})
    # A new Rancangan Akhir must be initialed again from the first paraf: older parafs do not count.
    fields = {
        "drafts": drafts,
        "akhir_version": event.version,
        "akhir_sha256": event.content_sha256,
        "akhir_blocking_findings": event.blocking_findings,
        "akhir_warning_findings": event.warning_findings,
        **_UNREVIEWED,
    }
    return _Change(fields, undo=plan.review_steps)


def _on_meeting(state: RenjaState, event: MeetingHeld, plan: StepPlan) -> _Change:
    fields = {
        "meeting_id": event.meeting_id,
        "meeting_draft_version": event.draft_version,
        "notulen_sha256": event.notulen_sha256,
    }
    return _Change(fields)


def _on_initialed(state: RenjaState, event: Initialed, plan: StepPlan) -> _Change:
    if event.version == state.akhir_version and event.step not in state.parafs:
        return _Change({"parafs": tuple(sorted((*state.parafs, event.step)))})
    return _Change()


def _on_signed(state: RenjaState, event: Signed, plan: StepPlan) -> _Change:
    return _Change({"signed": True, "signed_version": event.version, "signed_sha256": event.content_sha256})


def _on_returned(state: RenjaState, event: DraftReturned, plan: StepPlan) -> _Change:
    fields = {**_UNREVIEWED, "returns": state.returns + 1, "last_return_notes": event.notes}
    return _Change(fields, undo=plan.review_steps | {plan.number("rancangan_akhir")})


def _on_cancelled(state: RenjaState, event: RenjaCancelled, plan: StepPlan) -> _Change:
    # Also after a Distributed this service saw first (a cancel/distribute race): cancellation wins.
    return _Change({"cancel_reason": event.reason}, status="cancelled")


def _on_distributed(state: RenjaState, event: Distributed, plan: StepPlan) -> _Change:
    fields = {
        "distribution_id": event.distribution_id,
        "distributed_at": event.occurred_at,
        "recipients": tuple(r.name for r in event.recipients),
    }
    return _Change(fields, status="distributed")


def _on_receipt(state: RenjaState, event: ReceiptRecorded, plan: StepPlan) -> _Change:
    if event.recipient in state.receipts:
        return _Change()  # the same receipt twice is harmless
    return _Change({"receipts": (*state.receipts, event.recipient)})


_Evolver = Callable[[RenjaState, Any, StepPlan], _Change]

EVOLVERS: dict[type[Event], _Evolver] = {
    DirectiveIssued: _on_directive,
    DataCollected: _on_data,
    DraftCreated: _on_draft,
    MeetingHeld: _on_meeting,
    Initialed: _on_initialed,
    Signed: _on_signed,
    DraftReturned: _on_returned,
    RenjaCancelled: _on_cancelled,
    Distributed: _on_distributed,
    ReceiptRecorded: _on_receipt,
}
"""Each event class's change to the state. The step an event completes is not here: it is the SOP
file's ``completed_by`` (``StepPlan.completed_by``)."""


def _due_after(status: RenjaStatus, completed: Iterable[int], plan: StepPlan) -> int | None:
    if status == "not_started":
        return 1
    if status in CLOSED:
        return None
    done = set(completed)
    return next((n for n in plan.numbers if n not in done), None)


def evolve(state: RenjaState, event: Event, sop: SopDefinition | None = None) -> RenjaState:
    """Apply one event (a fact) to the state: pure, total, deterministic.

    ``sop`` says which step each event completes (``completed_by``); None folds by the shipped SOP's
    eleven steps (``SHIPPED_PLAN``), which is what every SOP file with two parafs amounts to.
    Tolerant by design: events are facts that other services already decided (choreography), so
    ``evolve`` never refuses one; unknown kinds only count as applied. Duplicates must be dropped by the
    caller's inbox (by ``event_id``) before folding; applying the same receipt twice is harmless anyway.
    """
    if state.status == "cancelled":
        # Cancellation is absorbing, whatever the order the services saw a race in: a command another
        # service accepted before it had consumed the RenjaCancelled (a paraf, a signature, even a
        # distribution) is kept in the log but changes nothing, so every service's fold converges.
        return state.model_copy(update={"last_event_id": event.event_id, "events_applied": state.events_applied + 1})
    plan = SHIPPED_PLAN if sop is None else sop.plan
    evolver = EVOLVERS.get(type(event))
    change = _Change() if evolver is None else evolver(state, event, plan)
    step = plan.completed_by(event)
    status = change.status or state.status
    done = set(state.completed_steps) if step is None else {*state.completed_steps, step}
    completed = tuple(sorted(done - change.undo))
    due = _due_after(status, completed, plan)
    return state.model_copy(
        update={
            **change.fields,
            "renja_id": state.renja_id or event.renja_id,
            "correlation_id": state.correlation_id or event.correlation_id,
            "status": status,
            "completed_steps": completed,
            "due_step": due,
            "due_since": state.due_since if due == state.due_step else (event.occurred_at if due else None),
            "last_event_id": event.event_id,
            "events_applied": state.events_applied + 1,
        }
    )


def fold(events: Iterable[Event], initial: RenjaState | None = None, sop: SopDefinition | None = None) -> RenjaState:
    """``evolve`` over ``events`` in log order, from ``initial`` (default: a not-started state), by ``sop``'s
    steps (default: the shipped SOP's)."""
    state = RenjaState() if initial is None else initial
    for event in events:
        state = evolve(state, event, sop)
    return state
