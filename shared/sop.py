"""The SOP "Penyusunan Rencana Kerja (Renja)" as data, and the pure decider every service shares.

This module owns:

- the SOP file's schema (``SopDefinition`` and its parts) and ``load_sop``, which refuses a broken file at
  start-up with ``SopFileError`` naming the file and line;
- the commands (imperative, frozen requests) and ``CommandContext`` (who, which service, ids, clock);
- ``RenjaState``, the process state of one Renja cycle, folded from the event log (JSON-serialisable so
  services can keep it as jsonb);
- ``decide(state, command, ctx, sop) -> list[Event]`` (or a ``DomainError``), and
  ``evolve(state, event) -> RenjaState`` / ``fold(events)``.

Everything below ``load_sop`` is pure: no clock, no random ids, no environment, no I/O. Ids and "now"
come in through ``CommandContext``. The step order, roles and time standards come from the SOP table
(shared/DESIGN.md); rules beyond the form (return for revision from steps 8-10 back to 7, cancellation by
the head, version binding of approvals) are the design's additions and are marked as such below.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid5

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.events import (
    EVENT_TYPES,
    Actor,
    DataCollected,
    DirectiveIssued,
    Distributed,
    DraftCreated,
    DraftReturned,
    Event,
    Initialed,
    MeetingHeld,
    ReceiptRecorded,
    Recipient,
    RenjaCancelled,
    RequestedChange,
    ServiceName,
    Signed,
    UnitDelivery,
)
from shared.events.models import Attendee, Sha256Hex, UtcDatetime

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


# ======================================================================================================
# The SOP file
# ======================================================================================================


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
    """The SOP file to load: ``$RENJA_SOP_FILE`` if set, else ``sop.yaml`` beside this module.

    The one place that reads the environment, so that ``load_sop`` and the decider stay pure.
    """
    env = os.environ if environ is None else environ
    override = env.get(SOP_FILE_ENV, "").strip()
    return Path(override) if override else Path(__file__).with_name("sop.yaml")


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


# ======================================================================================================
# Domain errors
# ======================================================================================================


class DomainError(Exception):
    """A command refused by the SOP's rules. ``code`` is stable (for clients), ``message`` is for people.

    ``due_step``/``due_role`` say what the Renja is waiting for, when anything.
    """

    code: ClassVar[str] = "domain_error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, due_step: int | None = None, due_role: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.due_step = due_step
        self.due_role = due_role


class WrongRole(DomainError):
    """The actor's role may not do this step (only the step's role may; auditors never)."""

    code = "wrong_role"
    http_status = 403


class OutOfOrder(DomainError):
    """The command is for a step that is not the one due."""

    code = "out_of_order"
    http_status = 409


class StaleVersion(DomainError):
    """The command names a draft version or hash that is not the current one (design: versions bind)."""

    code = "stale_version"
    http_status = 409


class AlreadyStarted(DomainError):
    """An *arahan* for a Renja cycle that has already started."""

    code = "already_started"
    http_status = 409


class RenjaClosed(DomainError):
    """The cycle is cancelled or distributed: nothing but a receipt may follow."""

    code = "renja_closed"
    http_status = 409


class BlockingFindings(DomainError):
    """The current Rancangan Akhir has blocking validation findings; it cannot be initialed."""

    code = "blocking_findings"
    http_status = 409


class AlreadyRecorded(DomainError):
    """A receipt for this recipient was already recorded (step 11's proof is once per recipient)."""

    code = "already_recorded"
    http_status = 409


class InvalidCommand(DomainError):
    """The command's content is wrong for the SOP (missing units, unknown recipient, bad signature...)."""

    code = "invalid_command"
    http_status = 422


# ======================================================================================================
# Commands
# ======================================================================================================


MAX_TEXT = 10_000
"""Characters allowed in one free-text field of a command (an arahan, a note, a reason): far above any
real directive, far below what would make an event too large for the log (``shared.eventstore``)."""


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IssueArahan(_Command):
    """Step 1 (kepala_badan): direct the secretary; starts the cycle for one OPD and plan year (n+1)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "opd": "Badan Perencanaan Pembangunan Daerah Kota Bogor",
                    "fiscal_year": 2026,
                    "text": "Agar segera disusun Rencana Kerja (Renja) Bappeda Tahun 2026 yang selaras dengan "
                    "Renstra 2025-2029 dan RKPD Kota Bogor; Rancangan Akhir disampaikan paling lambat "
                    "akhir bulan ini.",
                    "addressee_name": "Ir. Ratna Sari Dewi, M.T. (fiktif)",
                }
            ]
        },
    )

    opd: str = Field(min_length=1, max_length=300)
    fiscal_year: int = Field(ge=2000, le=2100)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    addressee_name: str = Field(default="", max_length=200)


class IssueInstruksi(_Command):
    """Step 2 (sekretaris): instruct the head of the planning and reporting subdivision."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "Menindaklanjuti arahan Kepala Badan, mohon Kasubag Perencanaan dan Pelaporan "
                    "mengoordinasikan penyusunan Renja 2026 dan pengumpulan data dari Sekretariat dan "
                    "seluruh Bidang.",
                    "addressee_name": "Agus Prasetyo, S.E., M.M. (fiktif)",
                }
            ]
        },
    )

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    addressee_name: str = Field(default="", max_length=200)


class IssuePerintah(_Command):
    """Step 3 (kasubag_pp): order the staff."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "Kumpulkan data program, kegiatan dan sub kegiatan beserta pagu indikatif dari "
                    "Sekretariat dan setiap Bidang, teliti kelengkapannya, lalu susun Rancangan Awal Renja.",
                    "addressee_name": "Dewi Lestari, S.Kom. (fiktif)",
                }
            ]
        },
    )

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    addressee_name: str = Field(default="", max_length=200)


class CompleteDataCollection(_Command):
    """Step 4 (staf): every configured unit's delivery (by unit code), checked."""

    units: tuple[UnitDelivery, ...] = Field(min_length=1)


class CreateRancanganAwal(_Command):
    """Step 5 (staf): the initial draft; ``version`` must be the next draft version of the cycle."""

    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    rows: int = Field(ge=0)
    pagu_total: int = Field(ge=0, description="rupiah")
    blocking_findings: int = Field(default=0, ge=0)
    warning_findings: int = Field(default=0, ge=0)


class RecordMeeting(_Command):
    """Step 6 (staf): the consultation meeting on the current Rancangan Awal (version and hash)."""

    meeting_id: UUID
    draft_version: int = Field(ge=1)
    draft_sha256: Sha256Hex
    held_at: UtcDatetime
    attendees: tuple[Attendee, ...] = Field(min_length=1)
    points: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    requested_changes: tuple[RequestedChange, ...] = ()
    notulen_sha256: Sha256Hex
    place: str = ""


class CreateRancanganAkhir(_Command):
    """Step 7 (staf): the final draft applying the meeting's notulen (or a reviewer's return notes)."""

    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    based_on_version: int = Field(ge=1)
    meeting_id: UUID
    notulen_sha256: Sha256Hex
    rows: int = Field(ge=0)
    pagu_total: int = Field(ge=0, description="rupiah")
    blocking_findings: int = Field(default=0, ge=0)
    warning_findings: int = Field(default=0, ge=0)


class Initial(_Command):
    """Step 8 (kasubag_pp) or 9 (sekretaris): *paraf* on the current Rancangan Akhir version and hash."""

    step: Literal[8, 9]
    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    warnings_acknowledged: tuple[str, ...] = ()
    note: str = ""


class Sign(_Command):
    """Step 10 (kepala_badan): Ed25519 signature over the UTF-8 bytes of ``content_sha256``."""

    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    key_id: str = Field(min_length=1)
    public_key_b64: str = Field(min_length=1)
    signature_b64: str = Field(min_length=1)


class ReturnDraft(_Command):
    """Design addition: the reviewer due at step 8, 9 or 10 returns the Rancangan Akhir to step 7."""

    at_step: Literal[8, 9, 10]
    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    notes: str = Field(min_length=1, max_length=MAX_TEXT)


class CancelRenja(_Command):
    """Design addition: the head cancels a started cycle, with a reason (before distribution)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason": "Siklus dimulai dengan tahun anggaran yang salah (2025); diganti siklus baru "
                    "untuk tahun anggaran 2026."
                }
            ]
        },
    )

    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class Distribute(_Command):
    """Step 11 (staf): copy, archive and send the signed version to (at least) the configured list."""

    distribution_id: UUID
    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    archive_ref: str = Field(min_length=1)
    recipients: tuple[Recipient, ...] = Field(min_length=1)


class RecordReceipt(_Command):
    """Step 11's proof: one listed recipient acknowledged receipt (once per recipient)."""

    distribution_id: UUID
    recipient: str = Field(min_length=1)
    received_at: UtcDatetime
    received_by: str = ""


Command = (
    IssueArahan
    | IssueInstruksi
    | IssuePerintah
    | CompleteDataCollection
    | CreateRancanganAwal
    | RecordMeeting
    | CreateRancanganAkhir
    | Initial
    | Sign
    | ReturnDraft
    | CancelRenja
    | Distribute
    | RecordReceipt
)


class CommandContext(_Command):
    """Everything impure a decision needs, passed in: the Renja, who acts, which service, ids and clock.

    ``event_id`` is the id of the (first) event the decision emits. Every command today emits exactly one
    event; should one emit more, event *i* > 0 gets ``uuid5(event_id, str(i))`` (``derive_event_id``),
    so a retried command with the same ``event_id`` yields the same ids.
    ``causation_id`` is the request or event that caused the command; ``now`` is UTC.
    """

    renja_id: UUID
    actor: Actor
    source: ServiceName
    event_id: UUID
    correlation_id: UUID
    causation_id: UUID | None = None
    now: UtcDatetime


def derive_event_id(ctx: CommandContext, index: int) -> UUID:
    """Id of the ``index``-th event of one decision: ``ctx.event_id`` itself for 0, else uuid5 of it."""
    return ctx.event_id if index == 0 else uuid5(ctx.event_id, str(index))


# ======================================================================================================
# State
# ======================================================================================================

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


# ======================================================================================================
# The decider
# ======================================================================================================

_COMMAND_STEP: dict[type[_Command], int] = {
    IssueArahan: 1,
    IssueInstruksi: 2,
    IssuePerintah: 3,
    CompleteDataCollection: 4,
    CreateRancanganAwal: 5,
    RecordMeeting: 6,
    CreateRancanganAkhir: 7,
    Sign: 10,
    Distribute: 11,
}


def command_step(command: Command) -> int | None:
    """The SOP step a command performs (None for cancellation and receipts, which complete no step)."""
    if isinstance(command, Initial):
        return command.step
    if isinstance(command, ReturnDraft):
        return command.at_step
    return _COMMAND_STEP.get(type(command))


def _due_text(state: RenjaState, sop: SopDefinition) -> str:
    step = next_step(state, sop)
    if step is None:
        return f"no step is due (the Renja is {state.status})"
    return f"{step.label} is due, by {step.role}"


def _err(cls: type[DomainError], message: str, state: RenjaState, sop: SopDefinition) -> DomainError:
    step = next_step(state, sop)
    return cls(
        message,
        due_step=step.number if step else None,
        due_role=step.role if step else None,
    )


def _check_turn(state: RenjaState, number: int, ctx: CommandContext, sop: SopDefinition) -> SopStep:
    """Refuse unless step ``number`` is due and the actor holds its role. Order: closed, role, turn."""
    step = sop.step(number)
    role = ctx.actor.role
    if state.is_closed:
        raise _err(
            RenjaClosed,
            f"This Renja is {state.status}; {step.label} can no longer be done.",
            state,
            sop,
        )
    if role != step.role:
        raise _err(
            WrongRole,
            f"{step.label} is done by {step.role}; you are {role}. Now {_due_text(state, sop)}.",
            state,
            sop,
        )
    if state.due_step != number:
        raise _err(
            OutOfOrder,
            f"{step.label} is not due: {_due_text(state, sop)}; you are {role}.",
            state,
            sop,
        )
    return step


def _check_version(
    state: RenjaState,
    sop: SopDefinition,
    step: SopStep,
    version: int,
    sha256: str,
    current_version: int | None,
    current_sha256: str | None,
    what: str,
) -> None:
    # Design rule "versions bind approvals": the exact version AND its content hash.
    if version != current_version or sha256 != current_sha256:
        raise _err(
            StaleVersion,
            f"{step.label}: you named {what} version {version} (sha256 {sha256[:12]}…), but the current "
            f"one is version {current_version} (sha256 {(current_sha256 or '')[:12]}…). Reload and retry.",
            state,
            sop,
        )


def _verify_signature(command: Sign) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(command.public_key_b64, validate=True))
        key.verify(base64.b64decode(command.signature_b64, validate=True), command.content_sha256.encode("utf-8"))
    except (ValueError, binascii.Error, InvalidSignature):
        return False
    return True


def decide(state: RenjaState, command: Command, ctx: CommandContext, sop: SopDefinition) -> list[Event]:
    """Decide a command against the state and the SOP: the events to append, or a ``DomainError``.

    Shapes: returns a list of one event today (ids per ``CommandContext``); ``occurred_at = ctx.now``.
    Raises (checked in this order): ``InvalidCommand`` if ``ctx.renja_id`` is not this Renja;
    ``RenjaClosed`` after cancellation or distribution (except receipts after distribution);
    ``AlreadyStarted`` for a second *arahan*; ``WrongRole`` unless the actor holds the step's role
    (auditors never act); ``OutOfOrder`` unless the step is the one due; ``StaleVersion`` unless a
    paraf, signature, return or distribution names the current draft version and its exact SHA-256;
    ``BlockingFindings`` for a paraf at step 8 on a Rancangan Akhir with blocking findings;
    ``InvalidCommand`` for content the SOP refuses (missing unit at step 4, bad signature, unknown
    recipient...) or times that cannot be (a meeting held in the future or before the Rancangan Awal it
    discusses existed, a receipt before the distribution); ``AlreadyRecorded`` for a second receipt from
    one recipient.
    """
    if state.renja_id is not None and ctx.renja_id != state.renja_id:
        raise InvalidCommand(f"This command is for Renja {ctx.renja_id}, but the state is of {state.renja_id}.")
    base: dict[str, Any] = {
        "event_id": derive_event_id(ctx, 0),
        "renja_id": ctx.renja_id,
        "source": ctx.source,
        "actor": ctx.actor,
        "occurred_at": ctx.now,
        "causation_id": ctx.causation_id,
        "correlation_id": ctx.correlation_id,
    }
    role = ctx.actor.role

    if isinstance(command, RecordReceipt):
        return [_decide_receipt(state, command, sop, base, role)]

    if isinstance(command, CancelRenja):
        # Design addition: only the head cancels, and only a started, still open cycle.
        if state.is_closed:
            raise _err(RenjaClosed, f"This Renja is already {state.status}; it cannot be cancelled.", state, sop)
        if role != "kepala_badan":
            raise _err(WrongRole, f"Only kepala_badan may cancel a Renja; you are {role}.", state, sop)
        if state.status == "not_started":
            raise _err(OutOfOrder, "This Renja has not started; there is nothing to cancel.", state, sop)
        return [RenjaCancelled(**base, reason=command.reason)]

    if isinstance(command, IssueArahan) and state.status == "in_progress":
        raise _err(
            AlreadyStarted,
            f"The Renja {state.opd} {state.fiscal_year} has already started; {_due_text(state, sop)}.",
            state,
            sop,
        )

    number = command_step(command)
    assert number is not None  # every remaining command performs a step
    step = _check_turn(state, number, ctx, sop)

    if isinstance(command, IssueArahan):
        return [
            DirectiveIssued(
                **base,
                level="arahan",
                text=command.text,
                addressee_role=sop.step(2).role,
                addressee_name=command.addressee_name,
                opd=command.opd,
                fiscal_year=command.fiscal_year,
            )
        ]
    if isinstance(command, IssueInstruksi | IssuePerintah):
        level: Literal["instruksi", "perintah"] = "instruksi" if number == 2 else "perintah"
        assert state.fiscal_year is not None
        return [
            DirectiveIssued(
                **base,
                level=level,
                text=command.text,
                addressee_role=sop.step(number + 1).role,
                addressee_name=command.addressee_name,
                opd=state.opd,
                fiscal_year=state.fiscal_year,
            )
        ]
    if isinstance(command, CompleteDataCollection):
        return [_decide_data(state, command, sop, step, base)]
    if isinstance(command, CreateRancanganAwal):
        _check_new_version(state, sop, step, command.version)
        return [
            DraftCreated(
                **base,
                stage="awal",
                version=command.version,
                content_sha256=command.content_sha256,
                rows=command.rows,
                pagu_total=command.pagu_total,
                blocking_findings=command.blocking_findings,
                warning_findings=command.warning_findings,
            )
        ]
    if isinstance(command, RecordMeeting):
        _check_version(
            state, sop, step, command.draft_version, command.draft_sha256,
            state.awal_version, state.awal_sha256, "Rancangan Awal",
        )  # fmt: skip
        if command.held_at > ctx.now:
            raise _err(InvalidCommand, f"{step.label}: the meeting cannot be held in the future.", state, sop)
        if state.awal_created_at is not None and command.held_at < state.awal_created_at:
            # The meeting discusses the Rancangan Awal (step 6 needs step 5's output): it cannot predate it.
            raise _err(
                InvalidCommand,
                f"{step.label}: held_at {command.held_at.isoformat()} is before Rancangan Awal version "
                f"{state.awal_version} existed ({state.awal_created_at.isoformat()}).",
                state,
                sop,
            )
        return [
            MeetingHeld(
                **base,
                meeting_id=command.meeting_id,
                draft_version=command.draft_version,
                draft_sha256=command.draft_sha256,
                held_at=command.held_at,
                place=command.place,
                attendees=command.attendees,
                points=command.points,
                decisions=command.decisions,
                requested_changes=command.requested_changes,
                notulen_sha256=command.notulen_sha256,
            )
        ]
    if isinstance(command, CreateRancanganAkhir):
        return [_decide_akhir(state, command, sop, step, base)]
    if isinstance(command, Initial):
        _check_version(
            state, sop, step, command.version, command.content_sha256,
            state.akhir_version, state.akhir_sha256, "Rancangan Akhir",
        )  # fmt: skip
        if command.step == 8 and state.akhir_blocking_findings > 0:
            raise _err(
                BlockingFindings,
                f"{step.label}: Rancangan Akhir version {state.akhir_version} has "
                f"{state.akhir_blocking_findings} blocking finding(s); return it to step 7 for correction "
                "instead of initialing it.",
                state,
                sop,
            )
        return [
            Initialed(
                **base,
                step=command.step,
                version=command.version,
                content_sha256=command.content_sha256,
                warnings_acknowledged=command.warnings_acknowledged,
                note=command.note,
            )
        ]
    if isinstance(command, Sign):
        _check_version(
            state, sop, step, command.version, command.content_sha256,
            state.akhir_version, state.akhir_sha256, "Rancangan Akhir",
        )  # fmt: skip
        if set(state.parafs) != {8, 9}:
            # Unreachable through the step order, kept because the signature's meaning depends on it.
            raise _err(OutOfOrder, f"{step.label}: both parafs (steps 8 and 9) are required.", state, sop)
        if not _verify_signature(command):
            raise _err(
                InvalidCommand,
                f"{step.label}: the Ed25519 signature does not verify over the draft's SHA-256.",
                state,
                sop,
            )
        return [
            Signed(
                **base,
                version=command.version,
                content_sha256=command.content_sha256,
                key_id=command.key_id,
                public_key_b64=command.public_key_b64,
                signature_b64=command.signature_b64,
            )
        ]
    if isinstance(command, ReturnDraft):
        _check_version(
            state, sop, step, command.version, command.content_sha256,
            state.akhir_version, state.akhir_sha256, "Rancangan Akhir",
        )  # fmt: skip
        return [
            DraftReturned(
                **base,
                at_step=command.at_step,
                version=command.version,
                content_sha256=command.content_sha256,
                notes=command.notes,
            )
        ]
    if isinstance(command, Distribute):
        return [_decide_distribute(state, command, sop, step, base)]
    raise InvalidCommand(f"Unknown command {type(command).__name__}.")  # pragma: no cover


def _check_new_version(state: RenjaState, sop: SopDefinition, step: SopStep, version: int) -> None:
    expected = state.next_draft_version()
    if version != expected:
        raise _err(
            StaleVersion,
            f"{step.label}: a new draft must be version {expected}, not {version}.",
            state,
            sop,
        )


def _decide_data(
    state: RenjaState, command: CompleteDataCollection, sop: SopDefinition, step: SopStep, base: dict[str, Any]
) -> Event:
    # SOP step 4: data/berkas from the Sekretariat and every Bidang, "terkumpul dan teliti".
    codes = [u.unit for u in command.units]
    configured = set(sop.unit_codes)
    duplicate = sorted({c for c in codes if codes.count(c) > 1})
    unknown = sorted(set(codes) - configured)
    missing = [c for c in sop.unit_codes if c not in codes]
    problems = []
    if missing:
        problems.append("not yet delivered: " + ", ".join(missing))
    if unknown:
        problems.append("unknown unit(s): " + ", ".join(unknown))
    if duplicate:
        problems.append("delivered twice: " + ", ".join(duplicate))
    if problems:
        raise _err(InvalidCommand, f"{step.label}: " + "; ".join(problems) + ".", state, sop)
    return DataCollected(
        **base,
        units=command.units,
        rows=sum(u.rows for u in command.units),
        pagu_total=sum(u.pagu_total for u in command.units),
    )


def _decide_akhir(
    state: RenjaState, command: CreateRancanganAkhir, sop: SopDefinition, step: SopStep, base: dict[str, Any]
) -> Event:
    _check_new_version(state, sop, step, command.version)
    if command.meeting_id != state.meeting_id or command.notulen_sha256 != state.notulen_sha256:
        raise _err(
            InvalidCommand,
            f"{step.label}: the Rancangan Akhir must apply the notulen of meeting {state.meeting_id}.",
            state,
            sop,
        )
    if command.based_on_version not in {d.version for d in state.drafts}:
        raise _err(
            InvalidCommand,
            f"{step.label}: based_on_version {command.based_on_version} is not a draft of this Renja.",
            state,
            sop,
        )
    return DraftCreated(
        **base,
        stage="akhir",
        version=command.version,
        content_sha256=command.content_sha256,
        based_on_version=command.based_on_version,
        meeting_id=command.meeting_id,
        notulen_sha256=command.notulen_sha256,
        rows=command.rows,
        pagu_total=command.pagu_total,
        blocking_findings=command.blocking_findings,
        warning_findings=command.warning_findings,
    )


def _decide_distribute(
    state: RenjaState, command: Distribute, sop: SopDefinition, step: SopStep, base: dict[str, Any]
) -> Event:
    _check_version(
        state, sop, step, command.version, command.content_sha256,
        state.signed_version, state.signed_sha256, "signed Renja",
    )  # fmt: skip
    names = [r.name for r in command.recipients]
    missing = [r.name for r in sop.distribution if r.name not in names]
    duplicate = sorted({n for n in names if names.count(n) > 1})
    if missing or duplicate:
        detail = "; ".join(
            part
            for part in (
                "missing recipient(s): " + ", ".join(missing) if missing else "",
                "listed twice: " + ", ".join(duplicate) if duplicate else "",
            )
            if part
        )
        raise _err(InvalidCommand, f"{step.label}: {detail}.", state, sop)
    return Distributed(
        **base,
        distribution_id=command.distribution_id,
        version=command.version,
        content_sha256=command.content_sha256,
        archive_ref=command.archive_ref,
        recipients=command.recipients,
    )


def _decide_receipt(
    state: RenjaState, command: RecordReceipt, sop: SopDefinition, base: dict[str, Any], role: str
) -> Event:
    step = sop.step(11)
    if state.status == "cancelled":
        raise _err(RenjaClosed, "This Renja is cancelled; there is no distribution to acknowledge.", state, sop)
    if role not in (step.role, "system"):
        raise _err(WrongRole, f"Receipts of {step.label} are recorded by {step.role}; you are {role}.", state, sop)
    if state.status != "distributed":
        raise _err(
            OutOfOrder,
            f"The Renja is not distributed yet; {_due_text(state, sop)}.",
            state,
            sop,
        )
    if command.distribution_id != state.distribution_id:
        raise _err(InvalidCommand, f"Unknown distribution {command.distribution_id} for this Renja.", state, sop)
    if command.recipient not in state.recipients:
        raise _err(
            InvalidCommand,
            f"{command.recipient!r} is not a recipient of this Renja's distribution.",
            state,
            sop,
        )
    if command.recipient in state.receipts:
        raise _err(AlreadyRecorded, f"Receipt by {command.recipient!r} is already recorded.", state, sop)
    if state.distributed_at is not None and command.received_at < state.distributed_at:
        raise _err(
            InvalidCommand,
            f"{command.recipient!r} cannot have received the Renja at {command.received_at.isoformat()}, before "
            f"it was distributed ({state.distributed_at.isoformat()}).",
            state,
            sop,
        )
    return ReceiptRecorded(
        **base,
        distribution_id=command.distribution_id,
        recipient=command.recipient,
        received_at=command.received_at,
        received_by=command.received_by,
    )


__all__ = [
    "CANONICAL_COMPLETIONS",
    "CLOSED",
    "SOP_FILE_ENV",
    "Agency",
    "AlreadyRecorded",
    "AlreadyStarted",
    "BlockingFindings",
    "CancelRenja",
    "Command",
    "CommandContext",
    "CompleteDataCollection",
    "Completion",
    "CreateRancanganAkhir",
    "CreateRancanganAwal",
    "DayHours",
    "Distribute",
    "DistributionRecipient",
    "DomainError",
    "DraftInfo",
    "Initial",
    "InvalidCommand",
    "IssueArahan",
    "IssueInstruksi",
    "IssuePerintah",
    "OfficeHours",
    "OutOfOrder",
    "Record",
    "RecordMeeting",
    "RecordReceipt",
    "RenjaClosed",
    "RenjaState",
    "RenjaStatus",
    "ReturnDraft",
    "Sign",
    "SopDefinition",
    "SopFileError",
    "SopStep",
    "StaleVersion",
    "StepRole",
    "Unit",
    "WrongRole",
    "command_step",
    "decide",
    "default_sop_path",
    "derive_event_id",
    "evolve",
    "fold",
    "load_sop",
    "next_step",
]
