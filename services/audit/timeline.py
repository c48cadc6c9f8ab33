"""One Renja's audit timeline, rebuilt from its events: who did which SOP step when, and how long it took.

This module owns the auditor's view of the SOP "Penyusunan Rencana Kerja (Renja)" (DESIGN.md, *Who uses
it*: "each step's actual time against the SOP's time standard"):

- every event becomes a :class:`TimelineEntry` (position in the log, actor, source service, UTC time,
  draft version and content hash where the event names one);
- an event that completes a step (see :class:`StepSpec`) also gets its duration in **working minutes**
  (:class:`~services.audit.workcalendar.WorkCalendar`) from the moment its input existed, compared with
  the step's *mutu baku*;
- the cycle's status (in progress, cancelled, distributed) and the step now waiting.

When a step's input "existed" (the start of its duration):

- step *n* > first: the latest event completing the step before it (e.g. step 6 starts when the
  Rancangan Awal of step 5 was created);
- the step a return goes back to (step 7, DESIGN.md: a reviewer at 8-10 returns the final draft): the
  latest ``DraftReturned`` if it is later; the steps after it start again from the new completions,
  so a step done twice (after a return) appears twice, each with its own duration;
- the first step (the head's *arahan*) has no input in the log: the SOP's 15 minutes cover the head's
  own deliberation, which no event witnesses, so its duration is 0 by definition.

Clocks of different services may disagree slightly; a completion stamped before its input is counted
as 0 working minutes rather than refused, because the log order (not the stamps) is the causal order.

Pure: events, step table, calendar and ``as_of`` are passed in; no clock, no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import jinja2

from services.audit.workcalendar import WorkCalendar
from shared.events import Actor, DirectiveIssued, DraftReturned, Event, ReceiptRecorded, RenjaCancelled

RETURN_TO_STEP = 7
"""DESIGN.md: a final draft returned at step 8, 9 or 10 goes back to step 7 (Rancangan Akhir)."""

Status = Literal["not_started", "in_progress", "cancelled", "distributed"]


@dataclass(frozen=True)
class StepSpec:
    """One SOP step as the timeline needs it (a narrow view of the shared SOP table).

    ``event_type``: the completing event's CloudEvents type (``renja.DraftCreated.v1``) or class name
    (``DraftCreated``); ``match``: discriminator field → value that must also hold (``{"stage": "akhir"}``).
    ``standard_minutes``: the SOP's *mutu baku*, in working minutes.
    """

    number: int
    name: str
    role: str
    standard_minutes: int
    event_type: str
    match: Mapping[str, Any] = field(default_factory=dict)
    gloss: str = ""

    def completed_by(self, event: Event) -> bool:
        """True if ``event`` is the kind of event that completes this step."""
        if self.event_type not in (event.event_type, type(event).__name__):
            return False
        for name, wanted in self.match.items():
            actual = getattr(event, name, None)
            # YAML may give a discriminator as text ("8") where the model has an int, or vice versa
            if actual != wanted and str(actual) != str(wanted):
                return False
        return True


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

    @property
    def step_entries(self) -> tuple[TimelineEntry, ...]:
        """The step completions only, in log order (a step done twice appears twice)."""
        return tuple(e for e in self.entries if e.step_number is not None)

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


def _version_and_hash(event: Event) -> tuple[int | None, str | None]:
    version = getattr(event, "version", None)
    if version is None:
        version = getattr(event, "draft_version", None)
    sha = getattr(event, "content_sha256", None)
    if sha is None:
        sha = getattr(event, "draft_sha256", None)
    return version, sha


def _note(event: Event) -> str:
    if isinstance(event, DraftReturned):
        return f"Dikembalikan pada langkah {event.at_step}: {event.notes}"
    if isinstance(event, RenjaCancelled):
        return f"Dibatalkan: {event.reason}"
    if isinstance(event, ReceiptRecorded):
        return f"Diterima oleh {event.recipient}" + (f" ({event.received_by})" if event.received_by else "")
    return ""


def build_timeline(
    events: Sequence[Event],
    steps: Sequence[StepSpec],
    calendar: WorkCalendar,
    *,
    as_of: datetime | None = None,
    return_to_step: int = RETURN_TO_STEP,
) -> Timeline:
    """Rebuild one Renja's timeline from its events, in log order (the Kafka partition order).

    ``steps``: the SOP table (any order; sorted by number); ``as_of``: keep only events that occurred at
    or before it (UTC or any aware zone) and measure the waiting step's elapsed time up to it.
    Duplicate event ids (redelivery) are kept once. Positions number the log from 1 before filtering.

    Raises ``ValueError`` for events of more than one Renja, a naive ``as_of``, or an empty step table.
    """
    if not steps:
        raise ValueError("the step table is empty")
    if as_of is not None and (as_of.tzinfo is None or as_of.utcoffset() is None):
        raise ValueError("as_of must be timezone-aware")
    ordered_steps = tuple(sorted(steps, key=lambda s: s.number))
    following = {s.number: ordered_steps[i + 1] for i, s in enumerate(ordered_steps[:-1])}
    by_number = {s.number: s for s in ordered_steps}

    renja_ids = {e.renja_id for e in events}
    if len(renja_ids) > 1:
        raise ValueError(f"events of {len(renja_ids)} Renja cycles given; a timeline covers one")

    seen: set[UUID] = set()
    entries: list[TimelineEntry] = []
    enabler: dict[int, Event] = {}  # step number -> the event that made its input exist
    attempts: dict[int, int] = {}
    waiting: StepSpec | None = ordered_steps[0]
    status: Status = "not_started"
    opd: str | None = None
    fiscal_year: int | None = None
    position = 0

    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        position += 1
        if as_of is not None and event.occurred_at > as_of:
            continue
        if status == "not_started":
            status = "in_progress"
        if isinstance(event, DirectiveIssued) and opd is None:
            opd, fiscal_year = event.opd, event.fiscal_year

        version, sha = _version_and_hash(event)
        base: dict[str, Any] = {
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
        spec = next((s for s in ordered_steps if s.completed_by(event)), None)
        if spec is None:
            entries.append(TimelineEntry(**base))
            if isinstance(event, DraftReturned) and return_to_step in by_number:
                enabler[return_to_step] = event
                waiting = by_number[return_to_step]
            elif isinstance(event, RenjaCancelled):
                status, waiting = "cancelled", None
            continue

        attempts[spec.number] = attempts.get(spec.number, 0) + 1
        source_event = enabler.get(spec.number)
        if spec.number == ordered_steps[0].number:
            # the first step has no input in the log: duration 0 by definition (module docstring)
            started_at: datetime | None = event.occurred_at
            minutes: float | None = 0.0
        elif source_event is not None:
            started_at = source_event.occurred_at
            minutes = calendar.working_minutes(started_at, max(started_at, event.occurred_at))
        else:
            # a completion whose input never appeared in the log: nothing to measure from
            started_at, minutes = None, None
        entries.append(
            TimelineEntry(
                **base,
                step_number=spec.number,
                step_name=spec.name,
                started_at=started_at,
                enabled_by=str(source_event.event_id) if source_event is not None else None,
                working_minutes=minutes,
                standard_minutes=spec.standard_minutes,
                overdue=None if minutes is None else minutes > spec.standard_minutes,
                attempt=attempts[spec.number],
            )
        )
        nxt = following.get(spec.number)
        if nxt is not None:
            enabler[nxt.number] = event
        if status != "cancelled":
            if nxt is None:
                status, waiting = "distributed", None
            else:
                waiting = nxt

    current = None
    if status in ("not_started", "in_progress") and waiting is not None:
        since = enabler.get(waiting.number)
        enabled_at = since.occurred_at if since is not None else None
        elapsed = None
        if as_of is not None and enabled_at is not None:
            elapsed = calendar.working_minutes(enabled_at, max(enabled_at, as_of))
        current = OpenStep(
            number=waiting.number,
            name=waiting.name,
            role=waiting.role,
            standard_minutes=waiting.standard_minutes,
            enabled_at=enabled_at,
            elapsed_minutes=elapsed,
            overdue=None if elapsed is None else elapsed > waiting.standard_minutes,
        )
    return Timeline(
        renja_id=next(iter(renja_ids)) if renja_ids else None,
        opd=opd,
        fiscal_year=fiscal_year,
        entries=tuple(entries),
        steps=ordered_steps,
        status=status,
        current_step=current,
        as_of=as_of,
        timezone=calendar.tz.key,
    )


# --- HTML page ---------------------------------------------------------------------------------------

ROLE_LABELS = {
    "kepala_badan": "Kepala Badan",
    "sekretaris": "Sekretaris",
    "kasubag_pp": "Kasubag Perencanaan dan Pelaporan",
    "staf": "Staf",
    "auditor": "Auditor",
    "system": "Sistem",
}

STATUS_LABELS = {
    "not_started": "Belum dimulai",
    "in_progress": "Sedang berjalan",
    "cancelled": "Dibatalkan",
    "distributed": "Selesai (didistribusikan)",
}

EVENT_LABELS = {
    "DirectiveIssued": "Arahan/instruksi/perintah",
    "DataCollected": "Data terkumpul",
    "DraftCreated": "Rancangan dibuat",
    "MeetingHeld": "Rapat konsultasi",
    "Initialed": "Paraf",
    "Signed": "Tanda tangan",
    "DraftReturned": "Rancangan dikembalikan",
    "RenjaCancelled": "Renja dibatalkan",
    "Distributed": "Didistribusikan",
    "ReceiptRecorded": "Tanda terima",
}


def format_minutes(minutes: float | None) -> str:
    """Working minutes as ``"1 j 25 m"`` (jam/menit), rounded to the minute; ``"–"`` for ``None``."""
    if minutes is None:
        return "–"
    total = round(minutes)
    hours, rest = divmod(total, 60)
    if not hours:
        return f"{rest} m"
    return f"{hours} j {rest} m" if rest else f"{hours} j"


@functools.cache
def _environment() -> jinja2.Environment:
    # built on first use, not at import (STYLE.md rule 3); autoescape everything this module renders
    return jinja2.Environment(
        loader=jinja2.PackageLoader("services.audit", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _short_type(event_type: str) -> str:
    parts = event_type.split(".")
    return parts[1] if len(parts) == 3 else event_type


def _chain_view(chain: Any) -> dict[str, Any] | None:
    """The optional integrity box, with every key the template reads present (StrictUndefined)."""
    if chain is None:
        return None
    return {
        "ok": bool(_get(chain, "ok", False)),
        "reason": str(_get(chain, "reason", "") or ""),
        "position": _get(chain, "position", None) or _get(chain, "first_bad_position", None),
        "head_signed": bool(_get(chain, "head_signed", False)),
    }


def render_timeline_html(timeline: Timeline, meta: Mapping[str, Any] | None = None) -> str:
    """Render one Renja's timeline page (``templates/timeline.html``) as an HTML string.

    ``meta`` (all optional): ``title``, ``agency``, ``generated_at`` (aware datetime),
    ``chain``: the integrity result, a mapping or object (e.g. a ``hashchain.VerifyResult``) with ``ok``
    and optionally ``reason``, ``position`` (or ``first_bad_position``) and ``head_signed``.
    Times are shown in the calendar's zone (WIB) and UTC. Every value is HTML-escaped.
    """
    meta = dict(meta or {})
    tz = ZoneInfo(timeline.timezone)

    def local(value: datetime | None) -> str:
        return "–" if value is None else value.astimezone(tz).strftime("%d-%m-%Y %H:%M")

    completions: dict[int, list[TimelineEntry]] = {}
    for entry in timeline.step_entries:
        completions.setdefault(entry.step_number or 0, []).append(entry)
    rows: list[dict[str, Any]] = []
    for spec in timeline.steps:
        done = completions.get(spec.number, [])
        waiting = (
            timeline.current_step if (timeline.current_step and timeline.current_step.number == spec.number) else None
        )
        # each row has its own scale: the bars compare a step with its own standard (the marker sits at
        # half width or less), since standards range from 15 to 300 minutes
        scale = max(
            [2.0 * spec.standard_minutes, 1.0]
            + [e.working_minutes or 0.0 for e in done]
            + [(waiting.elapsed_minutes or 0.0) if waiting else 0.0]
        )
        bars = [
            {
                "label": f"ke-{e.attempt}" if len(done) > 1 else "",
                "width": 100.0 * (e.working_minutes or 0.0) / scale,
                "minutes": format_minutes(e.working_minutes),
                "overdue": bool(e.overdue),
                "actor": e.actor.name,
                "nip": e.actor.nip,
                "when": local(e.occurred_at),
                "when_utc": e.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "version": e.draft_version,
            }
            for e in done
        ]
        rows.append(
            {
                "number": spec.number,
                "name": spec.name,
                "gloss": spec.gloss,
                "role": ROLE_LABELS.get(spec.role, spec.role),
                "standard": format_minutes(spec.standard_minutes),
                "standard_pos": 100.0 * spec.standard_minutes / scale,
                "bars": bars,
                "overdue": any(b["overdue"] for b in bars),
                "waiting": waiting is not None,
                "waiting_minutes": format_minutes(waiting.elapsed_minutes) if waiting else "",
                "waiting_width": 100.0 * (waiting.elapsed_minutes or 0.0) / scale if waiting else 0.0,
                "waiting_overdue": bool(waiting.overdue) if waiting else False,
            }
        )
    log = [
        {
            "position": e.position,
            "label": EVENT_LABELS.get(_short_type(e.event_type), e.event_type),
            "event_type": e.event_type,
            "event_id": e.event_id,
            "step": e.step_number,
            "actor": e.actor.name,
            "nip": e.actor.nip,
            "role": ROLE_LABELS.get(e.actor.role, e.actor.role),
            "source": e.source,
            "when": local(e.occurred_at),
            "when_utc": e.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "version": e.draft_version,
            "sha": (e.content_sha256 or "")[:12],
            "note": e.note,
            "minutes": format_minutes(e.working_minutes) if e.step_number is not None else "",
            "overdue": bool(e.overdue),
        }
        for e in timeline.entries
    ]
    generated_at = meta.get("generated_at")
    context = {
        "title": meta.get("title") or "Linimasa Penyusunan Renja",
        "agency": meta.get("agency", ""),
        "renja_id": str(timeline.renja_id) if timeline.renja_id else "–",
        "opd": timeline.opd or "–",
        "fiscal_year": timeline.fiscal_year or "–",
        "status": timeline.status,
        "status_label": STATUS_LABELS[timeline.status],
        "current": timeline.current_step,
        "current_role": ROLE_LABELS.get(timeline.current_step.role, timeline.current_step.role)
        if timeline.current_step
        else "",
        "as_of": local(timeline.as_of) if timeline.as_of else "",
        "generated_at": local(generated_at) if isinstance(generated_at, datetime) else "",
        "timezone": timeline.timezone,
        "rows": rows,
        "log": log,
        "total": format_minutes(timeline.total_working_minutes),
        "total_standard": format_minutes(timeline.total_standard_minutes),
        "overdue_count": timeline.overdue_count,
        "chain": _chain_view(meta.get("chain")),
    }
    return _environment().get_template("timeline.html").render(**context)
