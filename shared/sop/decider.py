"""``decide(state, command, ctx, sop) -> list[Event]`` (or a ``DomainError``): pure, no clock, no random
ids, no I/O."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    _Command,
    derive_event_id,
)
from shared.sop.definition import SopDefinition, SopStep
from shared.sop.errors import (
    AlreadyRecorded,
    AlreadyStarted,
    BlockingFindings,
    DomainError,
    InvalidCommand,
    OutOfOrder,
    RenjaClosed,
    StaleVersion,
    WrongRole,
)
from shared.sop.state import RenjaState, next_step

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
