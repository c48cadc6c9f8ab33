"""The SOP file: its schema (``SopDefinition`` and its parts) and ``load_sop``, which refuses a broken file
at start-up with ``SopFileError`` naming the file and line. ``default_sop_path`` is the one place that
reads the environment.

Also owns the *kinds* of step (``StepKind``): a step's kind is read from the event that completes it
(``completed_by``), ``KIND_ORDER`` says which kinds may follow which (only parafs repeat), and
``StepPlan`` is what ``decide``/``evolve`` need of a file: each step's number and kind. So a new step of
an existing kind (a third paraf) is an edit of ``shared/sop.yaml``, not of the decider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from functools import cached_property
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
from shared.yamlnodes import YamlFileError, node_at

SOP_FILE_ENV = "RENJA_SOP_FILE"
"""Environment variable that may point to another agency's SOP file (read by ``default_sop_path`` only)."""

StepRole = Literal["kepala_badan", "sekretaris", "kasubag_pp", "staf"]
"""The SOP's four *Pelaksana*; only these may act on a step (never ``auditor``)."""

StepKind = Literal[
    "arahan",
    "instruksi",
    "perintah",
    "data_collection",
    "rancangan_awal",
    "meeting",
    "rancangan_akhir",
    "paraf",
    "signature",
    "distribution",
]
"""What a step does, read from the event that completes it (``completed_by``). The decider has one rule
per kind and takes step numbers and roles from the file, so a new step of a kind that may repeat (a
``paraf``) is a change to the SOP file, not to the code."""

_FIXED_COMPLETIONS: dict[StepKind, tuple[str, dict[str, str | int]]] = {
    "arahan": (DirectiveIssued.event_type, {"level": "arahan"}),
    "instruksi": (DirectiveIssued.event_type, {"level": "instruksi"}),
    "perintah": (DirectiveIssued.event_type, {"level": "perintah"}),
    "data_collection": (DataCollected.event_type, {}),
    "rancangan_awal": (DraftCreated.event_type, {"stage": "awal"}),
    "meeting": (MeetingHeld.event_type, {}),
    "rancangan_akhir": (DraftCreated.event_type, {"stage": "akhir"}),
    "signature": (Signed.event_type, {}),
    "distribution": (Distributed.event_type, {}),
}

KIND_ORDER: dict[StepKind | None, tuple[StepKind, ...]] = {
    None: ("arahan",),
    "arahan": ("instruksi",),
    "instruksi": ("perintah",),
    "perintah": ("data_collection",),
    "data_collection": ("rancangan_awal",),
    "rancangan_awal": ("meeting",),
    "meeting": ("rancangan_akhir",),
    "rancangan_akhir": ("paraf",),
    "paraf": ("paraf", "signature"),
    "signature": ("distribution",),
    "distribution": (),
}
"""The kinds that may follow a step of each kind (``None``: the first step). Only ``paraf`` repeats: one
or more parafs, by any of the four roles, between the Rancangan Akhir and the signature."""


def kind_completion(kind: StepKind, number: int) -> tuple[str, dict[str, str | int]]:
    """The ``completed_by`` (event type, match) that a step of ``kind`` numbered ``number`` declares.

    A paraf names its own step (``Initialed.step``); every other kind is completed by one event shape.
    """
    if kind == "paraf":
        return Initialed.event_type, {"step": number}
    return _FIXED_COMPLETIONS[kind]


SHIPPED_KINDS: tuple[StepKind, ...] = (
    "arahan",
    "instruksi",
    "perintah",
    "data_collection",
    "rancangan_awal",
    "meeting",
    "rancangan_akhir",
    "paraf",
    "paraf",
    "signature",
    "distribution",
)
"""The kinds of the shipped SOP's eleven steps, in order."""

CANONICAL_COMPLETIONS: dict[int, tuple[str, dict[str, str | int]]] = {
    number: kind_completion(kind, number) for number, kind in enumerate(SHIPPED_KINDS, start=1)
}
"""Which event completes which step in the shipped SOP (``shared/sop.yaml``). Another file may differ by
the steps ``KIND_ORDER`` lets repeat; ``evolve`` folds by this shape when it is given no SOP."""


@dataclass(frozen=True)
class StepPlan:
    """The steps as ``decide`` and ``evolve`` use them: each step's number and kind, in order.

    Built from a loaded file (``SopDefinition.plan``), or ``SHIPPED_PLAN`` for the shipped eleven steps.
    """

    kinds: tuple[tuple[int, StepKind], ...]

    @cached_property
    def numbers(self) -> tuple[int, ...]:
        """Every step number, in order (1..n)."""
        return tuple(number for number, _ in self.kinds)

    @cached_property
    def paraf_steps(self) -> tuple[int, ...]:
        """The paraf steps, in order (8 and 9 in the shipped SOP)."""
        return tuple(number for number, kind in self.kinds if kind == "paraf")

    @cached_property
    def review_steps(self) -> frozenset[int]:
        """The steps that review one Rancangan Akhir (parafs and signature: 8-10 in the shipped SOP): a new
        Rancangan Akhir or a return undoes them, and the reviewer due at one may return the draft."""
        return frozenset(number for number, kind in self.kinds if kind in ("paraf", "signature"))

    @cached_property
    def _by_event_type(self) -> dict[str, tuple[tuple[int, dict[str, str | int]], ...]]:
        index: dict[str, list[tuple[int, dict[str, str | int]]]] = {}
        for number, kind in self.kinds:
            event_type, match = kind_completion(kind, number)
            index.setdefault(event_type, []).append((number, match))
        return {event_type: tuple(steps) for event_type, steps in index.items()}

    def number(self, kind: StepKind) -> int:
        """The (first) step of ``kind``; ``KeyError`` if the SOP has none."""
        for number, each in self.kinds:
            if each == kind:
                return number
        raise KeyError(kind)

    def completed_by(self, event: Event) -> int | None:
        """The step ``event`` completes, or None (returns, cancellation, receipts complete no step)."""
        for number, match in self._by_event_type.get(event.event_type, ()):
            if all(getattr(event, key, None) == value for key, value in match.items()):
                return number
        return None


SHIPPED_PLAN = StepPlan(tuple(enumerate(SHIPPED_KINDS, start=1)))
"""The shipped SOP's plan, for callers that fold without a ``SopDefinition`` at hand."""


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

    @property
    def kind(self) -> StepKind | None:
        """What the step does, read from ``completed_by`` (None if no kind matches: ``load_sop`` refuses it)."""
        declared = (self.completed_by.event_type, dict(self.completed_by.match))
        return next((k for k in KIND_ORDER if k is not None and kind_completion(k, self.number) == declared), None)


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
    step: int = Field(ge=1, description="a step number of this SOP")


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
        """The step with this number (1..n, 11 in the shipped SOP); ``KeyError`` if there is none."""
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

    @cached_property
    def plan(self) -> StepPlan:
        """The steps' numbers and kinds for ``decide``/``evolve``; ``ValueError`` for a step of no kind
        (impossible after ``load_sop``)."""
        kinds: list[tuple[int, StepKind]] = []
        for step in self.steps:
            if step.kind is None:
                raise ValueError(f"{step.label} is completed by no known kind of step; load the file with load_sop")
            kinds.append((step.number, step.kind))
        return StepPlan(tuple(kinds))


class SopFileError(YamlFileError):
    """The SOP file cannot be used; the message names the file and the line (1-based)."""


def default_sop_path(environ: Mapping[str, str] | None = None) -> Path:
    """The SOP file to load: ``$RENJA_SOP_FILE`` if set, else ``shared/sop.yaml`` (beside this package).

    The one place that reads the environment, so that ``load_sop`` and the decider stay pure.
    """
    env = os.environ if environ is None else environ
    override = env.get(SOP_FILE_ENV, "").strip()
    return Path(override) if override else Path(__file__).parent.parent / "sop.yaml"


Problem = tuple[tuple[int | str, ...], str]
"""Where in the file (a pydantic-style location) and what is wrong."""


def _step_problems(steps: Sequence[SopStep]) -> list[Problem]:
    """The first problem with the steps: numbering, event types, and the order of their kinds."""
    previous: StepKind | None = None
    for index, step in enumerate(steps):
        expected = index + 1
        allowed = KIND_ORDER[previous]
        if not allowed:
            return [(("steps", index), f"the SOP has {index} steps; this is one too many")]
        if step.number != expected:
            return [(("steps", index, "number"), f"step number {step.number} found where step {expected} belongs")]
        completion = step.completed_by
        if completion.event_type not in EVENT_TYPES:
            return [(("steps", index, "completed_by", "event_type"), f"unknown event type {completion.event_type!r}")]
        if step.kind not in allowed:
            wanted = " or ".join(f"{t} with match {m}" for t, m in (kind_completion(k, expected) for k in allowed))
            return [(("steps", index, "completed_by"), f"step {expected} must be completed by {wanted}")]
        previous = step.kind
    if previous != "distribution":
        missing = 0
        while KIND_ORDER[previous]:
            previous, missing = KIND_ORDER[previous][-1], missing + 1
        return [(("steps",), f"expected {len(steps) + missing} steps, found {len(steps)}")]
    return []


def _semantic_problems(sop: SopDefinition) -> list[Problem]:
    """Rules the schema alone cannot state, each with the location of the offending value."""
    problems = _step_problems(sop.steps)
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
    numbers = {step.number for step in sop.steps}
    for index, record in enumerate(sop.records):
        if record.step not in numbers:
            problems.append(
                (
                    ("records", index, "step"),
                    f"record {record.code!r} names step {record.step}, which the SOP does not have",
                )
            )
    for name, hours in sop.office_hours.days.items():
        if hours.end <= hours.start:
            problems.append((("office_hours", "days", name), "office hours end before they start"))
    return problems


def load_sop(path: Path | None = None) -> SopDefinition:
    """Read and validate the SOP file (default: ``default_sop_path()``).

    Checks: the schema; steps numbered 1..n in order; every completing event type registered in
    ``shared.events.EVENT_TYPES``; the steps' kinds (read from ``completed_by``, see ``kind_completion``)
    in ``KIND_ORDER`` — arahan, instruksi, perintah, data collection, Rancangan Awal, meeting, Rancangan
    Akhir, one or more parafs, signature, distribution (the shipped file: ``CANONICAL_COMPLETIONS``);
    roles among the four *Pelaksana*; positive time standards; unique unit codes and recipient names;
    records naming existing steps.

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
        line = node_at(root, loc).start_mark.line + 1
        dotted = ".".join(str(p) for p in loc)
        raise SopFileError(path, line, f"{dotted}: {first['msg']}") from exc
    problems = _semantic_problems(sop)
    if problems:
        loc, message = problems[0]
        line = node_at(root, loc).start_mark.line + 1
        raise SopFileError(path, line, message)
    return sop
