"""``decide(state, command, ctx, sop) -> list[Event]`` (or a ``DomainError``): pure, no clock, no random
ids, no I/O.

``HANDLERS`` maps each command class to its decision: the checks of its step (``guards.ensure_due`` with
the step number the SOP file gives that kind of step, then the version and content rules) and the one
event it emits. Step numbers and roles come from the file; a handler names a step only by its kind.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

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
from shared.sop.commands import (
    CancelRenja,
    Command,
    CommandContext,
    CompleteDataCollection,
    CreateRancanganAkhir,
    CreateRancanganAwal,
    Distribute,
    Initial,
    IssueArahan,
    IssueInstruksi,
    IssuePerintah,
    RecordMeeting,
    RecordReceipt,
    ReturnDraft,
    Sign,
    derive_event_id,
)
from shared.sop.definition import SHIPPED_PLAN, SopDefinition, SopStep, StepKind, StepPlan
from shared.sop.errors import (
    AlreadyRecorded,
    AlreadyStarted,
    BlockingFindings,
    DomainError,
    InvalidCommand,
    OutOfOrder,
    RenjaClosed,
    WrongRole,
)
from shared.sop.guards import (
    DraftKind,
    due_text,
    ensure_current_version,
    ensure_due,
    ensure_new_version,
    ensure_parafs_complete,
    refusal,
    steps_text,
)
from shared.sop.state import RenjaState, cycle_distribution, cycle_units

_STEP_KIND: dict[type[Command], StepKind] = {
    IssueArahan: "arahan",
    IssueInstruksi: "instruksi",
    IssuePerintah: "perintah",
    CompleteDataCollection: "data_collection",
    CreateRancanganAwal: "rancangan_awal",
    RecordMeeting: "meeting",
    CreateRancanganAkhir: "rancangan_akhir",
    Sign: "signature",
    Distribute: "distribution",
}
"""The kind of step each command performs; the step's number comes from the SOP file."""


def command_step(command: Command, sop: SopDefinition | None = None) -> int | None:
    """The SOP step a command performs (None for cancellation and receipts, which complete no step), in
    ``sop``'s numbering (default: the shipped SOP's)."""
    if isinstance(command, Initial):
        return command.step
    if isinstance(command, ReturnDraft):
        return command.at_step
    kind = _STEP_KIND.get(type(command))
    plan = SHIPPED_PLAN if sop is None else sop.plan
    return None if kind is None else plan.number(kind)


@dataclass(frozen=True)
class _Decision:
    """One command being decided: the state, who acts (``ctx``) and the SOP, with the shared helpers."""

    state: RenjaState
    ctx: CommandContext
    sop: SopDefinition

    @property
    def role(self) -> str:
        return self.ctx.actor.role

    @property
    def plan(self) -> StepPlan:
        return self.sop.plan

    @property
    def base(self) -> dict[str, Any]:
        """The envelope fields of the (first) event the decision emits."""
        ctx = self.ctx
        return {
            "event_id": derive_event_id(ctx, 0),
            "renja_id": ctx.renja_id,
            "source": ctx.source,
            "actor": ctx.actor,
            "occurred_at": ctx.now,
            "causation_id": ctx.causation_id,
            "correlation_id": ctx.correlation_id,
        }

    def refuse(self, cls: type[DomainError], message: str) -> DomainError:
        return refusal(cls, message, self.state, self.sop)

    def due(self, kind: StepKind) -> SopStep:
        """The (first) step of ``kind``, if it is due and the actor holds it (``ensure_due``)."""
        return ensure_due(self.state, self.plan.number(kind), self.role, self.sop)

    def current(self, step: SopStep, version: int, content_sha256: str, draft: DraftKind) -> None:
        ensure_current_version(self.state, step.number, version, content_sha256, self.sop, draft)


# --- steps 1-3: directives ----------------------------------------------------------------------------


def _issue_arahan(command: IssueArahan, d: _Decision) -> Event:
    if d.state.status == "in_progress":
        state = d.state
        raise d.refuse(
            AlreadyStarted,
            f"The Renja {state.opd} {state.fiscal_year} has already started; {due_text(state, d.sop)}.",
        )
    step = d.due("arahan")
    return DirectiveIssued(
        **d.base,
        level="arahan",
        text=command.text,
        addressee_role=d.sop.step(step.number + 1).role,
        addressee_name=command.addressee_name,
        opd=command.opd,
        fiscal_year=command.fiscal_year,
        opd_code=command.opd_code,
        opd_identity=command.opd_identity,
    )


def _issue_order(command: IssueInstruksi | IssuePerintah, d: _Decision) -> Event:
    level: Literal["instruksi", "perintah"] = "instruksi" if isinstance(command, IssueInstruksi) else "perintah"
    step = d.due(level)
    assert d.state.fiscal_year is not None  # set by the arahan, which is done before
    return DirectiveIssued(
        **d.base,
        level=level,
        text=command.text,
        addressee_role=d.sop.step(step.number + 1).role,
        addressee_name=command.addressee_name,
        opd=d.state.opd,
        fiscal_year=d.state.fiscal_year,
        opd_code=d.state.opd_code,  # the cycle's identity, as the arahan opened it
    )


# --- step 4: data collection -------------------------------------------------------------------------


def _collect_data(command: CompleteDataCollection, d: _Decision) -> Event:
    # SOP step 4: data/berkas from the Sekretariat and every Bidang, "terkumpul dan teliti".
    step = d.due("data_collection")
    codes = [u.unit for u in command.units]
    duplicate = sorted({c for c in codes if codes.count(c) > 1})
    configured = [u.code for u in cycle_units(d.state, d.sop)]
    unknown = sorted(set(codes) - set(configured))
    missing = [c for c in configured if c not in codes]
    problems = [
        f"{what}: {', '.join(items)}"
        for what, items in (
            ("not yet delivered", missing),
            ("unknown unit(s)", unknown),
            ("delivered twice", duplicate),
        )
        if items
    ]
    if problems:
        raise d.refuse(InvalidCommand, f"{step.label}: " + "; ".join(problems) + ".")
    rows, pagu = sum(u.rows for u in command.units), sum(u.pagu_total for u in command.units)
    return DataCollected(**d.base, units=command.units, rows=rows, pagu_total=pagu)


# --- steps 5-7: drafts and the consultation meeting ---------------------------------------------------


def _create_awal(command: CreateRancanganAwal, d: _Decision) -> Event:
    step = d.due("rancangan_awal")
    ensure_new_version(d.state, step.number, command.version, d.sop)
    return DraftCreated(
        **d.base,
        stage="awal",
        version=command.version,
        content_sha256=command.content_sha256,
        rows=command.rows,
        pagu_total=command.pagu_total,
        blocking_findings=command.blocking_findings,
        warning_findings=command.warning_findings,
    )


def _record_meeting(command: RecordMeeting, d: _Decision) -> Event:
    step = d.due("meeting")
    d.current(step, command.draft_version, command.draft_sha256, "awal")
    state = d.state
    if command.held_at > d.ctx.now:
        raise d.refuse(InvalidCommand, f"{step.label}: the meeting cannot be held in the future.")
    if state.awal_created_at is not None and command.held_at < state.awal_created_at:
        # The meeting discusses the Rancangan Awal (it needs that step's output): it cannot predate it.
        raise d.refuse(
            InvalidCommand,
            f"{step.label}: held_at {command.held_at.isoformat()} is before Rancangan Awal version "
            f"{state.awal_version} existed ({state.awal_created_at.isoformat()}).",
        )
    return MeetingHeld(**d.base, **_fields(command))


def _create_akhir(command: CreateRancanganAkhir, d: _Decision) -> Event:
    step = d.due("rancangan_akhir")
    ensure_new_version(d.state, step.number, command.version, d.sop)
    state = d.state
    if command.meeting_id != state.meeting_id or command.notulen_sha256 != state.notulen_sha256:
        message = f"{step.label}: the Rancangan Akhir must apply the notulen of meeting {state.meeting_id}."
        raise d.refuse(InvalidCommand, message)
    if command.based_on_version not in {draft.version for draft in state.drafts}:
        message = f"{step.label}: based_on_version {command.based_on_version} is not a draft of this Renja."
        raise d.refuse(InvalidCommand, message)
    return DraftCreated(**d.base, stage="akhir", **_fields(command))


# --- the review steps: parafs and the signature (8-10), returns ---------------------------------------


def _initial(command: Initial, d: _Decision) -> Event:
    if command.step not in d.plan.paraf_steps:
        raise d.refuse(InvalidCommand, f"Step {command.step} is not a paraf step ({steps_text(d.plan.paraf_steps)}).")
    step = ensure_due(d.state, command.step, d.role, d.sop)
    d.current(step, command.version, command.content_sha256, "akhir")
    state = d.state
    if command.step == d.plan.paraf_steps[0] and state.akhir_blocking_findings > 0:
        raise d.refuse(
            BlockingFindings,
            f"{step.label}: Rancangan Akhir version {state.akhir_version} has "
            f"{state.akhir_blocking_findings} blocking finding(s); return it to step "
            f"{d.plan.number('rancangan_akhir')} for correction instead of initialing it.",
        )
    return Initialed(**d.base, **_fields(command))


def _sign(command: Sign, d: _Decision) -> Event:
    step = d.due("signature")
    d.current(step, command.version, command.content_sha256, "akhir")
    # Unreachable through the step order, kept because the signature's meaning depends on it.
    ensure_parafs_complete(d.state, step.number, d.sop)
    if not _verify_signature(command):
        raise d.refuse(InvalidCommand, f"{step.label}: the Ed25519 signature does not verify over the draft's SHA-256.")
    return Signed(**d.base, **_fields(command))


def _return_draft(command: ReturnDraft, d: _Decision) -> Event:
    # Design addition: the reviewer due at a paraf or the signature sends the draft back for revision.
    if command.at_step not in d.plan.review_steps:
        message = f"Step {command.at_step} is not a review step ({steps_text(sorted(d.plan.review_steps))})."
        raise d.refuse(InvalidCommand, message)
    step = ensure_due(d.state, command.at_step, d.role, d.sop)
    d.current(step, command.version, command.content_sha256, "akhir")
    return DraftReturned(**d.base, **_fields(command))


def _fields(command: BaseModel) -> dict[str, Any]:
    """The command's fields as they are (nested models kept), for the event that repeats them: commands
    and events both forbid extra fields, so a field the event lacks fails at once, not silently."""
    return dict(command)


def _verify_signature(command: Sign) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(command.public_key_b64, validate=True))
        key.verify(base64.b64decode(command.signature_b64, validate=True), command.content_sha256.encode("utf-8"))
    except (ValueError, binascii.Error, InvalidSignature):
        return False
    return True


# --- cancellation (design addition), distribution and its receipts -----------------------------------


def _cancel(command: CancelRenja, d: _Decision) -> Event:
    # Design addition: only the head cancels, and only a started, still open cycle.
    state = d.state
    if state.is_closed:
        raise d.refuse(RenjaClosed, f"This Renja is already {state.status}; it cannot be cancelled.")
    if d.role != "kepala_badan":
        raise d.refuse(WrongRole, f"Only kepala_badan may cancel a Renja; you are {d.role}.")
    if state.status == "not_started":
        raise d.refuse(OutOfOrder, "This Renja has not started; there is nothing to cancel.")
    return RenjaCancelled(**d.base, reason=command.reason)


def _distribute(command: Distribute, d: _Decision) -> Event:
    step = d.due("distribution")
    d.current(step, command.version, command.content_sha256, "signed")
    names = [r.name for r in command.recipients]
    missing = [r.name for r in cycle_distribution(d.state, d.sop) if r.name not in names]
    duplicate = sorted({n for n in names if names.count(n) > 1})
    found = (("missing recipient(s)", missing), ("listed twice", duplicate))
    problems = [f"{what}: {', '.join(items)}" for what, items in found if items]
    if problems:
        raise d.refuse(InvalidCommand, f"{step.label}: " + "; ".join(problems) + ".")
    return Distributed(**d.base, **_fields(command))


def _record_receipt(command: RecordReceipt, d: _Decision) -> Event:
    step, state = d.sop.step(d.plan.number("distribution")), d.state
    if state.status == "cancelled":
        raise d.refuse(RenjaClosed, "This Renja is cancelled; there is no distribution to acknowledge.")
    if d.role not in (step.role, "system"):
        raise d.refuse(WrongRole, f"Receipts of {step.label} are recorded by {step.role}; you are {d.role}.")
    if state.status != "distributed":
        raise d.refuse(OutOfOrder, f"The Renja is not distributed yet; {due_text(state, d.sop)}.")
    _check_receipt(command, d)
    return ReceiptRecorded(**d.base, **_fields(command))


def _check_receipt(command: RecordReceipt, d: _Decision) -> None:
    state, recipient = d.state, command.recipient
    if command.distribution_id != state.distribution_id:
        raise d.refuse(InvalidCommand, f"Unknown distribution {command.distribution_id} for this Renja.")
    if recipient not in state.recipients:
        raise d.refuse(InvalidCommand, f"{recipient!r} is not a recipient of this Renja's distribution.")
    if recipient in state.receipts:
        raise d.refuse(AlreadyRecorded, f"Receipt by {recipient!r} is already recorded.")
    if state.distributed_at is not None and command.received_at < state.distributed_at:
        raise d.refuse(
            InvalidCommand,
            f"{recipient!r} cannot have received the Renja at {command.received_at.isoformat()}, before "
            f"it was distributed ({state.distributed_at.isoformat()}).",
        )


HANDLERS: dict[type[Command], Callable[[Any, _Decision], Event]] = {
    IssueArahan: _issue_arahan,
    IssueInstruksi: _issue_order,
    IssuePerintah: _issue_order,
    CompleteDataCollection: _collect_data,
    CreateRancanganAwal: _create_awal,
    RecordMeeting: _record_meeting,
    CreateRancanganAkhir: _create_akhir,
    Initial: _initial,
    Sign: _sign,
    ReturnDraft: _return_draft,
    CancelRenja: _cancel,
    Distribute: _distribute,
    RecordReceipt: _record_receipt,
}
"""Each command class's decision: its own checks in order, then the one event it emits."""


def decide(state: RenjaState, command: Command, ctx: CommandContext, sop: SopDefinition) -> list[Event]:
    """Decide a command against the state and the SOP: the events to append, or a ``DomainError``.

    Shapes: returns a list of one event today (ids per ``CommandContext``); ``occurred_at = ctx.now``.
    Raises (checked in this order): ``InvalidCommand`` if ``ctx.renja_id`` is not this Renja;
    ``RenjaClosed`` after cancellation or distribution (except receipts after distribution);
    ``AlreadyStarted`` for a second *arahan*; ``WrongRole`` unless the actor holds the step's role
    (auditors never act); ``OutOfOrder`` unless the step is the one due; ``StaleVersion`` unless a
    paraf, signature, return or distribution names the current draft version and its exact SHA-256;
    ``BlockingFindings`` for the first paraf on a Rancangan Akhir with blocking findings;
    ``InvalidCommand`` for content the SOP refuses (missing unit at step 4, bad signature, unknown
    recipient, a paraf or return naming a step that is not one...) or times that cannot be (a meeting
    held in the future or before the Rancangan Awal it discusses existed, a receipt before the
    distribution); ``AlreadyRecorded`` for a second receipt from one recipient. Step numbers and roles
    come from ``sop`` (``guards.ensure_due``).
    """
    if state.renja_id is not None and ctx.renja_id != state.renja_id:
        raise InvalidCommand(f"This command is for Renja {ctx.renja_id}, but the state is of {state.renja_id}.")
    handler = HANDLERS.get(type(command))
    if handler is None:  # pragma: no cover - HANDLERS has every member of the Command union
        raise InvalidCommand(f"Unknown command {type(command).__name__}.")
    return [handler(command, _Decision(state, ctx, sop))]
