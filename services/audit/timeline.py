"""One Renja's audit timeline, rebuilt from its events: who did which SOP step when, and how long it took.

This module owns the auditor's view of the SOP "Penyusunan Rencana Kerja (Renja)" (DESIGN.md, *Who uses
it*: "each step's actual time against the SOP's time standard"):

- every event becomes a :class:`TimelineEntry` (position in the log, actor, source service, UTC time,
  draft version and content hash where the event names one);
- an event that completes a step also gets its duration in **working minutes**
  (:class:`~services.audit.workcalendar.WorkCalendar`) from the moment its input existed, compared with
  the step's *mutu baku*;
- the cycle's status (in progress, cancelled, distributed) and the step now waiting.

Which event completes which step, and when a step's input "existed" (the start of its duration), are
read off ``shared.sop.evolve``, the fold every service keeps (one fold: the auditor's page and the
services cannot disagree). The timeline folds the log event by event and reads each entry off the
state transition:

- an event completes step *n* when *n* enters ``completed_steps``; a step done twice (after a return)
  appears twice, each with its own duration and ``attempt``;
- its duration runs from ``due_since``, the moment step *n* became due: the completion of the step
  before it (e.g. step 6 starts when the Rancangan Awal of step 5 was created), or the ``DraftReturned``
  that sent the final draft back to the Rancangan Akhir (DESIGN.md: a reviewer at 8-10 returns it);
- the first step (the head's *arahan*) has no input in the log: the SOP's 15 minutes cover the head's
  own deliberation, which no event witnesses, so its duration is 0 by definition;
- cancellation is absorbing: a paraf, signature or distribution that raced the cancellation (accepted
  by a service before it had consumed ``RenjaCancelled``) stays in the log as an entry marked
  :data:`IGNORED_NOTE`, and completes nothing;
- the status and the step now waiting are the fold's ``status``, ``due_step`` and ``due_since``.

Clocks of different services may disagree slightly; a completion stamped before its input is counted
as 0 working minutes rather than refused, because the log order (not the stamps) is the causal order.

Pure: events, step table, SOP, calendar and ``as_of`` are passed in; no clock, no I/O. The page that
shows a timeline is ``services.audit.page``; the JSON/CSV shapes are in ``services.audit.schemas``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from services.audit.workcalendar import WorkCalendar
from shared.events import (
    Actor,
    DraftReturned,
    Event,
    ReceiptRecorded,
    RenjaCancelled,
    StepOverdue,
    StepReminderDue,
)
from shared.sop import SHIPPED_PLAN, RenjaState, SopDefinition, evolve

IGNORED_NOTE = "Tidak berlaku: Renja sudah dibatalkan"
"""The note of an event that came after the cancellation (a race): ``evolve`` ignores it."""

Status = Literal["not_started", "in_progress", "cancelled", "distributed"]


@dataclass(frozen=True)
class StepSpec:
    """One SOP step as the timeline needs it (a narrow view of the shared SOP table).

    ``event_type``: the completing event's CloudEvents type (``renja.DraftCreated.v1``) or class name
    (``DraftCreated``); ``match``: discriminator field → value (``{"stage": "akhir"}``). Both describe
    the step as the SOP file does; which event completes a step is ``shared.sop.evolve``'s to say.
    ``standard_minutes``: the SOP's *mutu baku*, in working minutes.
    """

    number: int
    name: str
    role: str
    standard_minutes: int
    event_type: str
    match: Mapping[str, Any] = field(default_factory=dict)
    gloss: str = ""


def steps_from_sop(sop: Any) -> list[StepSpec]:
    """Adapt the shared SOP definition (``shared.sop.load_sop()``) to :class:`StepSpec`, by duck typing.

    Reads ``sop.steps``; per step ``number``, ``name`` (else ``activity``), ``role``, ``standard_minutes``,
    ``gloss`` and the completing event from ``completed_by`` (or ``completes``), which may be an object
    or mapping with ``event_type`` (or ``event``/``type``) and ``match`` (or ``discriminator``), or a bare
    event type string. Raises ``ValueError`` if a step names no completing event.
    """
    specs: list[StepSpec] = []
    for step in _get(sop, "steps"):
        event_type: Any
        match: Any
        completes = _get(step, "completed_by", None)
        if completes is None:
            completes = _get(step, "completes", None)
        if isinstance(completes, str):
            event_type, match = completes, {}
        elif completes is not None:
            event_type = _first(completes, ("event_type", "event", "type"))
            match = _first(completes, ("match", "discriminator"), default={}) or {}
        else:
            event_type, match = None, {}
        number = int(_get(step, "number"))
        if not event_type:
            raise ValueError(f"SOP step {number} names no completing event")
        name = _get(step, "name", None) or _get(step, "activity")
        specs.append(
            StepSpec(
                number=number,
                name=str(name),
                role=str(_get(step, "role")),
                standard_minutes=int(_get(step, "standard_minutes")),
                event_type=str(event_type),
                match=dict(match),
                gloss=str(_get(step, "gloss", "") or ""),
            )
        )
    return sorted(specs, key=lambda spec: spec.number)


_MISSING = object()


def _get(obj: Any, name: str, default: Any = _MISSING) -> Any:
    value = obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)
    if value is _MISSING:
        raise AttributeError(f"{type(obj).__name__} has no {name!r}")
    return value


def _first(obj: Any, names: Sequence[str], default: Any = None) -> Any:
    for name in names:
        value = _get(obj, name, None)
        if value is not None:
            return value
    return default


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of the Renja, in log order; the step fields are set only for a step completion.

    ``position``: 1-based position in the Renja's log (same numbering as the hash chain).
    ``working_minutes``: from ``started_at`` (when the step's input existed) to ``occurred_at``.
    ``attempt``: 1 for the first completion of the step, 2 after one return, ….
    ``note``: return notes, cancellation reason, or the recipient of a receipt.
    """

    position: int
    event_id: str
    event_type: str
    actor: Actor
    source: str
    occurred_at: datetime
    step_number: int | None = None
    step_name: str | None = None
    draft_version: int | None = None
    content_sha256: str | None = None
    started_at: datetime | None = None
    enabled_by: str | None = None
    working_minutes: float | None = None
    standard_minutes: int | None = None
    overdue: bool | None = None
    attempt: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class OpenStep:
    """The step now waiting: its input appeared at ``enabled_at`` (``None`` for the first step);
    ``elapsed_minutes`` (working minutes up to ``as_of``) only when the timeline was built with ``as_of``."""

    number: int
    name: str
    role: str
    standard_minutes: int
    enabled_at: datetime | None
    elapsed_minutes: float | None
    overdue: bool | None


@dataclass(frozen=True, slots=True)
class Timeline:
    """One Renja's rebuilt timeline (see the module docstring for how durations are measured)."""

    renja_id: UUID | None
    opd: str | None
    fiscal_year: int | None
    entries: tuple[TimelineEntry, ...]
    steps: tuple[StepSpec, ...]
    status: Status
    current_step: OpenStep | None
    as_of: datetime | None
    timezone: str
    state: RenjaState = field(default_factory=RenjaState)
    """The fold (``shared.sop.evolve``) of the events shown: the state every service keeps."""

    @property
    def step_entries(self) -> tuple[TimelineEntry, ...]:
        """The step completions only, in log order (a step done twice appears twice)."""
        return tuple(e for e in self.entries if e.step_number is not None)

    @property
    def completed_steps(self) -> tuple[int, ...]:
        """The steps done and still valid (``RenjaState.completed_steps``): a return undoes the Rancangan
        Akhir and its reviews (7-10 in the shipped SOP)."""
        return self.state.completed_steps

    @property
    def total_working_minutes(self) -> float:
        """Sum of the completed steps' working minutes."""
        return sum(e.working_minutes or 0.0 for e in self.step_entries)

    @property
    def total_standard_minutes(self) -> int:
        """Sum of the SOP standards of all steps (1365 working minutes for the Bogor SOP)."""
        return sum(s.standard_minutes for s in self.steps)

    @property
    def overdue_count(self) -> int:
        """How many step completions exceeded their standard."""
        return sum(1 for e in self.step_entries if e.overdue)


_VERSION_FIELDS = ("version", "draft_version")
_SHA_FIELDS = ("content_sha256", "draft_sha256")
_DRAFT_FIELDS: dict[type[Event], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def version_and_hash(event: Event) -> tuple[int | None, str | None]:
    """The draft version and content hash an event names, or None each: ``version`` else
    ``draft_version``; ``content_sha256`` else ``draft_sha256``.

    Answered from the fields each event class declares (cached per class), without ``getattr`` misses:
    on a pydantic model a missing attribute costs an exception, and the projector calls this per event.
    """
    names = _DRAFT_FIELDS.get(type(event))
    if names is None:
        fields = type(event).model_fields
        names = _DRAFT_FIELDS[type(event)] = (
            tuple(n for n in _VERSION_FIELDS if n in fields),
            tuple(n for n in _SHA_FIELDS if n in fields),
        )
    version: int | None = None
    for name in names[0]:
        version = getattr(event, name)
        if version is not None:
            break
    sha: str | None = None
    for name in names[1]:
        sha = getattr(event, name)
        if sha is not None:
            break
    return version, sha


def _note(event: Event) -> str:
    if isinstance(event, DraftReturned):
        return f"Dikembalikan pada langkah {event.at_step}: {event.notes}"
    if isinstance(event, RenjaCancelled):
        return f"Dibatalkan: {event.reason}"
    if isinstance(event, ReceiptRecorded):
        return f"Diterima oleh {event.recipient}" + (f" ({event.received_by})" if event.received_by else "")
    # The notifier's timer notices are informational: they complete no step and change no state.
    if isinstance(event, StepReminderDue):
        return (
            f"Pengingat: langkah {event.step} ({event.role}) sudah {event.working_minutes:.0f} dari "
            f"{event.standard_minutes} menit kerja mutu baku"
        )
    if isinstance(event, StepOverdue):
        escalated = f"; diteruskan ke {event.escalated_to}" if event.escalated_to else ""
        return (
            f"Terlambat: langkah {event.step} ({event.role}) melewati mutu baku {event.standard_minutes} menit "
            f"kerja ({event.working_minutes:.0f} menit kerja){escalated}"
        )
    return ""


def _entry_fields(event: Event, position: int) -> dict[str, Any]:
    """The :class:`TimelineEntry` fields every event has (the step fields are added for a completion)."""
    version, sha = version_and_hash(event)
    return {
        "position": position,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "actor": event.actor,
        "source": event.source,
        "occurred_at": event.occurred_at,
        "draft_version": version,
        "content_sha256": sha,
        "note": _note(event),
    }


@dataclass
class _Walk:
    """:func:`build_timeline`'s walk: folds the log with ``shared.sop.evolve``, one event at a time, and
    reads each entry off the state transition the event makes (see the module docstring).

    ``state``: the fold so far; ``due_event``: the event at which ``state.due_step`` became due (None for
    the first step, or once closed); ``attempts``: step number → how many completions so far.
    """

    steps: dict[int, StepSpec]
    first_step: int
    calendar: WorkCalendar
    sop: SopDefinition | None
    state: RenjaState = field(default_factory=RenjaState)
    entries: list[TimelineEntry] = field(default_factory=list)
    due_event: Event | None = None
    attempts: dict[int, int] = field(default_factory=dict)

    def take(self, event: Event, position: int) -> None:
        """Fold the event at log ``position`` and add its entry to the timeline."""
        before = self.state
        after = self.state = evolve(before, event, self.sop)
        base = _entry_fields(event, position)
        if before.status == "cancelled":
            # cancellation is absorbing (evolve): a command that raced it is in the log but counts for nothing
            base["note"] = IGNORED_NOTE + (f" ({base['note']})" if base["note"] else "")
        added = set(after.completed_steps) - set(before.completed_steps)
        if added:
            self.entries.append(self._completion(event, min(added), base, before))
        else:
            self.entries.append(TimelineEntry(**base))
        if after.due_step != before.due_step:
            self.due_event = event if after.due_step is not None else None

    def _completion(self, event: Event, number: int, base: dict[str, Any], before: RenjaState) -> TimelineEntry:
        """The entry of a step completion, measured from when the step became due (``before.due_since``)."""
        spec = self.steps[number]
        self.attempts[number] = self.attempts.get(number, 0) + 1
        enabler = self.due_event if before.due_step == number else None
        started_at, minutes = self._duration(number, event, None if enabler is None else before.due_since)
        return TimelineEntry(
            **base,
            step_number=number,
            step_name=spec.name,
            started_at=started_at,
            enabled_by=str(enabler.event_id) if enabler is not None else None,
            working_minutes=minutes,
            standard_minutes=spec.standard_minutes,
            overdue=None if minutes is None else minutes > spec.standard_minutes,
            attempt=self.attempts[number],
        )

    def _duration(self, number: int, event: Event, since: datetime | None) -> tuple[datetime | None, float | None]:
        """``(started_at, working minutes)`` of one completion of step ``number``, due since ``since``."""
        if number == self.first_step:
            # the first step has no input in the log: duration 0 by definition (module docstring)
            return event.occurred_at, 0.0
        if since is not None:
            return since, self.calendar.working_minutes(since, max(since, event.occurred_at))
        # a completion of a step that was not due (never in a log decide wrote): nothing to measure from
        return None, None

    def open_step(self, as_of: datetime | None) -> OpenStep | None:
        """The step now due (``state.due_step``), if the cycle is open; its elapsed time up to ``as_of``."""
        return open_step(self.state, self.steps, self.calendar, as_of)


def open_step(
    state: RenjaState, steps: Mapping[int, StepSpec], calendar: WorkCalendar, as_of: datetime | None
) -> OpenStep | None:
    """The step a folded cycle waits for (``state.due_step``; None when closed), and how long it has waited.

    ``elapsed_minutes``: working minutes (``calendar``) from ``state.due_since`` to ``as_of`` (0 if
    ``as_of`` is earlier); None without ``as_of`` or ``due_since``. ``overdue``: elapsed above the step's
    mutu baku (``steps[n].standard_minutes``). The one rule of "waiting time" and "overdue": the timeline
    and the region-wide page (``services.audit.region``) both call it. Raises ``KeyError`` for a due step
    missing from ``steps``.
    """
    number = state.due_step
    if number is None:
        return None
    waiting = steps[number]
    enabled_at = state.due_since
    elapsed = None
    if as_of is not None and enabled_at is not None:
        elapsed = calendar.working_minutes(enabled_at, max(enabled_at, as_of))
    return OpenStep(
        number=waiting.number,
        name=waiting.name,
        role=waiting.role,
        standard_minutes=waiting.standard_minutes,
        enabled_at=enabled_at,
        elapsed_minutes=elapsed,
        overdue=None if elapsed is None else elapsed > waiting.standard_minutes,
    )


def _step_table(steps: Sequence[StepSpec], sop: SopDefinition | None) -> dict[int, StepSpec]:
    """The step table by number, in order; ``ValueError`` unless it numbers exactly the SOP's steps."""
    if not steps:
        raise ValueError("the step table is empty")
    table = {s.number: s for s in sorted(steps, key=lambda s: s.number)}
    numbers = (SHIPPED_PLAN if sop is None else sop.plan).numbers
    if tuple(table) != numbers:
        raise ValueError(f"the step table numbers {tuple(table)}, the SOP {numbers}")
    return table


def build_timeline(
    events: Sequence[Event],
    steps: Sequence[StepSpec],
    calendar: WorkCalendar,
    *,
    as_of: datetime | None = None,
    sop: SopDefinition | None = None,
) -> Timeline:
    """Rebuild one Renja's timeline from its events, in log order (the Kafka partition order).

    ``steps``: the SOP table (any order; sorted by number) for names and standards; ``sop``: the SOP
    ``shared.sop.evolve`` folds by (which event completes which step; None: the shipped SOP's plan, as
    for ``evolve``). ``as_of``: keep only events that occurred at or before it (UTC or any aware zone)
    and measure the waiting step's elapsed time up to it. Duplicate event ids (redelivery) are kept
    once. Positions number the log from 1 before filtering.

    Raises ``ValueError`` for events of more than one Renja, a naive ``as_of``, or a step table that is
    empty or does not number the SOP's steps.
    """
    table = _step_table(steps, sop)
    if as_of is not None and (as_of.tzinfo is None or as_of.utcoffset() is None):
        raise ValueError("as_of must be timezone-aware")
    renja_ids = {e.renja_id for e in events}
    if len(renja_ids) > 1:
        raise ValueError(f"events of {len(renja_ids)} Renja cycles given; a timeline covers one")
    walk = _Walk(table, next(iter(table)), calendar, sop)
    seen: set[UUID] = set()
    position = 0
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        position += 1
        if as_of is not None and event.occurred_at > as_of:
            continue
        walk.take(event, position)
    state = walk.state
    return Timeline(
        renja_id=next(iter(renja_ids)) if renja_ids else None,
        opd=state.opd or None,
        fiscal_year=state.fiscal_year,
        entries=tuple(walk.entries),
        steps=tuple(table.values()),
        status=state.status,
        current_step=walk.open_step(as_of),
        as_of=as_of,
        timezone=calendar.tz.key,
        state=state,
    )
