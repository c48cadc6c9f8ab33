"""The SOP file: its schema (``SopDefinition`` and its parts) and ``load_sop``, which refuses a broken file
at start-up with ``SopFileError`` naming the file and line. ``default_sop_path`` is the one place that
reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date, time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.events import (
    EVENT_TYPES,
    DataCollected,
    DirectiveIssued,
    Distributed,
    DraftCreated,
    Event,
    Initialed,
    MeetingHeld,
    Recipient,
    Signed,
)

SOP_FILE_ENV = "RENJA_SOP_FILE"
"""Environment variable that may point to another agency's SOP file (read by ``default_sop_path`` only)."""

StepRole = Literal["kepala_badan", "sekretaris", "kasubag_pp", "staf"]
"""The SOP's four *Pelaksana*; only these may act on a step (never ``auditor``)."""

STEP_NUMBERS: tuple[int, ...] = tuple(range(1, 12))

CANONICAL_COMPLETIONS: dict[int, tuple[str, dict[str, str | int]]] = {
    1: (DirectiveIssued.event_type, {"level": "arahan"}),
    2: (DirectiveIssued.event_type, {"level": "instruksi"}),
    3: (DirectiveIssued.event_type, {"level": "perintah"}),
    4: (DataCollected.event_type, {}),
    5: (DraftCreated.event_type, {"stage": "awal"}),
    6: (MeetingHeld.event_type, {}),
    7: (DraftCreated.event_type, {"stage": "akhir"}),
    8: (Initialed.event_type, {"step": 8}),
    9: (Initialed.event_type, {"step": 9}),
    10: (Signed.event_type, {}),
    11: (Distributed.event_type, {}),
}
"""Which event completes which step: the decider's contract. ``load_sop`` refuses a file that differs,
because ``decide``/``evolve`` below are written against exactly this mapping."""


class _SopModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Agency(_SopModel):
    """The agency running the SOP (e.g. Bappeda Kota Bogor)."""

    name: str = Field(min_length=1)
    short_name: str = Field(min_length=1)
    city: str = ""


class Completion(_SopModel):
    """The event that completes a step; ``match`` selects by field values where one type completes several."""

    event_type: str = Field(min_length=1)
    match: dict[str, str | int] = Field(default_factory=dict)

    def matches(self, event: Event) -> bool:
        """True if ``event`` is of this type and every ``match`` field has the given value."""
        if event.event_type != self.event_type:
            return False
        return all(getattr(event, key, None) == value for key, value in self.match.items())


class SopStep(_SopModel):
    """One row of the SOP table: ``standard_minutes`` is the *mutu baku* in working minutes."""

    number: int = Field(ge=1)
    name: str = Field(min_length=1, description="short Indonesian step name used in messages")
    activity: str = Field(min_length=1, description="the SOP's activity text (Indonesian)")
    gloss: str = Field(min_length=1, description="English gloss")
    role: StepRole
    input: str | None = None
    output: str = Field(min_length=1)
    standard_minutes: int = Field(gt=0, description="working minutes")
    completed_by: Completion

    @property
    def label(self) -> str:
        """``Step 8 (Memeriksa dan paraf Rancangan Akhir)`` — how messages name a step."""
        return f"Step {self.number} ({self.name})"


class Unit(_SopModel):
    """A unit that delivers data at step 4 (Sekretariat or a Bidang)."""

    code: str = Field(min_length=1, pattern=r"^[A-Z0-9_]+$")
    name: str = Field(min_length=1)


class DistributionRecipient(_SopModel):
    """A configured recipient of the signed Renja at step 11."""

    name: str = Field(min_length=1)
    unit: str = ""
    email: str = ""
    copies: int = Field(default=1, ge=1)

    def to_event_recipient(self) -> Recipient:
        """The same recipient as the event model ``shared.events.Recipient``."""
        return Recipient(name=self.name, unit=self.unit, email=self.email, copies=self.copies)


class Record(_SopModel):
    """A record the SOP says to keep (*Pencatatan dan Pendataan*) and the step that produces it."""

    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    step: int = Field(ge=1, le=11)


class DayHours(_SopModel):
    """Office hours of one weekday, local time of ``OfficeHours.timezone``."""

    start: time
    end: time


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


class OfficeHours(_SopModel):
    """The working calendar for the time standards: days not listed, public holidays and
    ``cuti_bersama`` (collective leave) dates are non-working."""

    timezone: str = Field(min_length=1)
    days: dict[Weekday, DayHours]
    cuti_bersama: tuple[date, ...] = ()

    def hours_for(self, day: date) -> DayHours | None:
        """The hours of ``day``'s weekday, or None on a weekend or ``cuti_bersama`` day (public holidays
        are the caller's business: the ``holidays`` package knows them)."""
        if day in self.cuti_bersama:
            return None
        return self.days.get(WEEKDAYS[day.weekday()])


class SopDefinition(_SopModel):
    """The whole SOP file; see ``shared/sop.yaml`` for the meaning of every field."""

    title: str = Field(min_length=1)
    agency: Agency
    legal_basis: tuple[str, ...] = Field(min_length=1)
    related_sops: tuple[str, ...] = ()
    warning: str = ""
    qualifications: tuple[str, ...] = ()
    equipment: tuple[str, ...] = ()
    records: tuple[Record, ...] = ()
    units: tuple[Unit, ...] = Field(min_length=1)
    distribution: tuple[DistributionRecipient, ...] = Field(min_length=1)
    office_hours: OfficeHours
    steps: tuple[SopStep, ...]

    def step(self, number: int) -> SopStep:
        """The step with this number (1..11); ``KeyError`` if there is none."""
        for step in self.steps:
            if step.number == number:
                return step
        raise KeyError(number)

    def step_for_event(self, event: Event) -> SopStep | None:
        """The step ``event`` completes, or None (returns, cancellation, receipts complete no step)."""
        for step in self.steps:
            if step.completed_by.matches(event):
                return step
        return None

    @property
    def total_standard_minutes(self) -> int:
        """Sum of the steps' time standards in working minutes (1365 for the shipped SOP)."""
        return sum(step.standard_minutes for step in self.steps)

    @property
    def unit_codes(self) -> tuple[str, ...]:
        return tuple(unit.code for unit in self.units)


class SopFileError(ValueError):
    """The SOP file cannot be used; the message names the file and the line (1-based)."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


def default_sop_path(environ: Mapping[str, str] | None = None) -> Path:
    """The SOP file to load: ``$RENJA_SOP_FILE`` if set, else ``shared/sop.yaml`` (beside this package).

    The one place that reads the environment, so that ``load_sop`` and the decider stay pure.
    """
    env = os.environ if environ is None else environ
    override = env.get(SOP_FILE_ENV, "").strip()
    return Path(override) if override else Path(__file__).parent.parent / "sop.yaml"


def _node_at(root: yaml.Node, loc: Sequence[int | str]) -> yaml.Node:
    """The deepest YAML node along a pydantic error location (stops where the path leaves the tree)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        else:
            child = None
        if child is None:
            break
        node = child
    return node


def _semantic_problems(sop: SopDefinition) -> list[tuple[tuple[int | str, ...], str]]:
    """Rules the schema alone cannot state, each with the location of the offending value."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    for index, step in enumerate(sop.steps):
        expected = index + 1
        if expected > len(STEP_NUMBERS):
            problems.append((("steps", index), f"the SOP has {len(STEP_NUMBERS)} steps; this is one too many"))
            break
        if step.number != expected:
            problems.append(
                (("steps", index, "number"), f"step number {step.number} found where step {expected} belongs")
            )
            break
        completion = step.completed_by
        if completion.event_type not in EVENT_TYPES:
            problems.append(
                (
                    ("steps", index, "completed_by", "event_type"),
                    f"unknown event type {completion.event_type!r}",
                )
            )
            continue
        canonical_type, canonical_match = CANONICAL_COMPLETIONS[expected]
        if (completion.event_type, completion.match) != (canonical_type, canonical_match):
            problems.append(
                (
                    ("steps", index, "completed_by"),
                    f"step {expected} must be completed by {canonical_type} with match {canonical_match}",
                )
            )
    if not problems and len(sop.steps) != len(STEP_NUMBERS):
        problems.append((("steps",), f"expected 11 steps, found {len(sop.steps)}"))
    for kind, codes in (
        ("unit code", [u.code for u in sop.units]),
        ("recipient name", [r.name for r in sop.distribution]),
    ):
        seen: set[str] = set()
        for index, code in enumerate(codes):
            if code in seen:
                field = "units" if kind == "unit code" else "distribution"
                problems.append(((field, index), f"duplicate {kind} {code!r}"))
            seen.add(code)
    for name, hours in sop.office_hours.days.items():
        if hours.end <= hours.start:
            problems.append((("office_hours", "days", name), "office hours end before they start"))
    return problems


def load_sop(path: Path | None = None) -> SopDefinition:
    """Read and validate the SOP file (default: ``default_sop_path()``).

    Checks: the schema; 11 steps numbered 1..11 in order; roles among the four *Pelaksana*; positive
    time standards; every completing event type registered in ``shared.events.EVENT_TYPES`` and equal
    to ``CANONICAL_COMPLETIONS``; unique unit codes and recipient names.

    Raises ``SopFileError`` (file and 1-based line in the message) for unreadable or invalid files.
    """
    path = default_sop_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SopFileError(path, None, f"cannot read the SOP file: {exc}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SopFileError(path, line, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML parse error is marked
        raise SopFileError(path, None, f"invalid YAML: {exc}") from exc
    if root is None or not isinstance(data, dict):
        raise SopFileError(path, 1, "the SOP file must be a YAML mapping")
    try:
        sop = SopDefinition.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = _node_at(root, loc).start_mark.line + 1
        dotted = ".".join(str(p) for p in loc)
        raise SopFileError(path, line, f"{dotted}: {first['msg']}") from exc
    problems = _semantic_problems(sop)
    if problems:
        loc, message = problems[0]
        line = _node_at(root, loc).start_mark.line + 1
        raise SopFileError(path, line, message)
    return sop
