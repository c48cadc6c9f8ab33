"""``RenjaState``, the process state of one Renja cycle folded from its events (JSON-serialisable, so
services keep it as jsonb), and ``evolve`` / ``fold``: pure, total, deterministic."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from shared.events import (
    DataCollected,
    DirectiveIssued,
    Distributed,
    DraftCreated,
    DraftReturned,
    Event,
    Initialed,
    MeetingHeld,
    ReceiptRecorded,
    RenjaCancelled,
    Signed,
)
from shared.sop.definition import STEP_NUMBERS, SopDefinition, SopStep, _SopModel

RenjaStatus = Literal["not_started", "in_progress", "cancelled", "distributed"]
CLOSED: frozenset[str] = frozenset({"cancelled", "distributed"})


class DraftInfo(_SopModel):
    """One draft version of the cycle (versions count all drafts from 1)."""

    version: int
    stage: Literal["awal", "akhir"]
    content_sha256: str
    based_on_version: int | None = None


class RenjaState(_SopModel):
    """The process state of one Renja cycle, as folded from its events. JSON round-trips exactly.

    Invariants (kept by ``evolve`` for any sequence ``decide`` accepts):
    - ``completed_steps`` are the steps done and still valid: a return drops 7-10, a new Rancangan
      Akhir drops 8-10;
    - ``due_step`` is the lowest step not completed while in progress, 1 before start, None when closed;
    - ``parafs`` are the steps (8, 9) initialed on ``akhir_version`` exactly, since it was created.
    """

    renja_id: UUID | None = None
    opd: str = ""
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


def next_step(state: RenjaState, sop: SopDefinition) -> SopStep | None:
    """The step the Renja waits for (number, role, standard...), or None when cancelled/distributed."""
    return None if state.due_step is None else sop.step(state.due_step)


def _due_after(status: RenjaStatus, completed: Iterable[int]) -> int | None:
    if status == "not_started":
        return 1
    if status in CLOSED:
        return None
    done = set(completed)
    return next((n for n in STEP_NUMBERS if n not in done), None)


def evolve(state: RenjaState, event: Event) -> RenjaState:
    """Apply one event (a fact) to the state: pure, total, deterministic.

    Tolerant by design: events are facts that other services already decided (choreography), so
    ``evolve`` never refuses one; unknown kinds only count as applied. Duplicates must be dropped by the
    caller's inbox (by ``event_id``) before folding; applying the same receipt twice is harmless anyway.
    """
    if state.status == "cancelled":
        # Cancellation is absorbing, whatever the order the services saw a race in: a command another
        # service accepted before it had consumed the RenjaCancelled (a paraf, a signature, even a
        # distribution) is kept in the log but changes nothing, so every service's fold converges.
        return state.model_copy(update={"last_event_id": event.event_id, "events_applied": state.events_applied + 1})
    upd: dict[str, Any] = {}
    add: set[int] = set()
    drop: set[int] = set()
    if state.renja_id is None:
        upd["renja_id"] = event.renja_id
    if state.correlation_id is None:
        upd["correlation_id"] = event.correlation_id
    status: RenjaStatus = state.status

    if isinstance(event, DirectiveIssued):
        add.add({"arahan": 1, "instruksi": 2, "perintah": 3}[event.level])
        if event.level == "arahan" or not state.opd:
            upd.update(opd=event.opd, fiscal_year=event.fiscal_year)
        if status == "not_started":
            status = "in_progress"
    elif isinstance(event, DataCollected):
        add.add(4)
        upd.update(
            units_delivered=tuple(u.unit for u in event.units),
            data_rows=event.rows,
            data_pagu_total=event.pagu_total,
        )
    elif isinstance(event, DraftCreated):
        draft = DraftInfo(
            version=event.version,
            stage=event.stage,
            content_sha256=event.content_sha256,
            based_on_version=event.based_on_version,
        )
        upd["drafts"] = (*state.drafts, draft)
        if event.stage == "awal":
            add.add(5)
            upd.update(awal_version=event.version, awal_sha256=event.content_sha256, awal_created_at=event.occurred_at)
        else:
            # A new Rancangan Akhir must be initialed again from step 8: older parafs do not count.
            add.add(7)
            drop.update({8, 9, 10})
            upd.update(
                akhir_version=event.version,
                akhir_sha256=event.content_sha256,
                akhir_blocking_findings=event.blocking_findings,
                akhir_warning_findings=event.warning_findings,
                parafs=(),
                signed=False,
                signed_version=None,
                signed_sha256=None,
            )
    elif isinstance(event, MeetingHeld):
        add.add(6)
        upd.update(
            meeting_id=event.meeting_id,
            meeting_draft_version=event.draft_version,
            notulen_sha256=event.notulen_sha256,
        )
    elif isinstance(event, Initialed):
        add.add(event.step)
        if event.version == state.akhir_version and event.step not in state.parafs:
            upd["parafs"] = tuple(sorted((*state.parafs, event.step)))
    elif isinstance(event, Signed):
        add.add(10)
        upd.update(signed=True, signed_version=event.version, signed_sha256=event.content_sha256)
    elif isinstance(event, DraftReturned):
        drop.update({7, 8, 9, 10})
        upd.update(
            parafs=(),
            signed=False,
            signed_version=None,
            signed_sha256=None,
            returns=state.returns + 1,
            last_return_notes=event.notes,
        )
    elif isinstance(event, RenjaCancelled):
        # Also after a Distributed this service saw first (a cancel/distribute race): cancellation wins.
        status = "cancelled"
        upd["cancel_reason"] = event.reason
    elif isinstance(event, Distributed):
        add.add(11)
        status = "distributed"
        upd.update(
            distribution_id=event.distribution_id,
            distributed_at=event.occurred_at,
            recipients=tuple(r.name for r in event.recipients),
        )
    elif isinstance(event, ReceiptRecorded) and event.recipient not in state.receipts:
        upd["receipts"] = (*state.receipts, event.recipient)

    completed = tuple(sorted((set(state.completed_steps) | add) - drop))
    due = _due_after(status, completed)
    upd.update(
        status=status,
        completed_steps=completed,
        due_step=due,
        due_since=state.due_since if due == state.due_step else (event.occurred_at if due else None),
        last_event_id=event.event_id,
        events_applied=state.events_applied + 1,
    )
    return state.model_copy(update=upd)


def fold(events: Iterable[Event], initial: RenjaState | None = None) -> RenjaState:
    """``evolve`` over ``events`` in log order, from ``initial`` (default: a not-started state)."""
    state = RenjaState() if initial is None else initial
    for event in events:
        state = evolve(state, event)
    return state
