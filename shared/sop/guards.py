"""The checks the decider runs before it reads a command's content, public so that a service refusing
early (before parsing an upload, before the agency key signs a hash) refuses with the decider's own error
and message rather than a copy of them.

``decide`` runs these itself; a service may run them first, and the decider still makes the final
decision inside the command's transaction. Each raised ``DomainError`` carries ``due_step``/``due_role``,
what the Renja is waiting for (None when it is closed). Pure: state and SOP in, an error or nothing out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from shared.sop.definition import SopDefinition, SopStep
from shared.sop.errors import DomainError, OutOfOrder, RenjaClosed, StaleVersion, WrongRole
from shared.sop.state import RenjaState, next_step

DraftKind = Literal["awal", "akhir", "signed"]
"""Which draft a command binds: the Rancangan Awal, the Rancangan Akhir, or the signed Renja."""

_DRAFT_NAMES: dict[DraftKind, str] = {"awal": "Rancangan Awal", "akhir": "Rancangan Akhir", "signed": "signed Renja"}


def refusal(cls: type[DomainError], message: str, state: RenjaState, sop: SopDefinition) -> DomainError:
    """A ``cls`` error with ``message``, carrying the step due on ``state`` (to ``raise``)."""
    step = next_step(state, sop)
    return cls(message, due_step=step.number if step else None, due_role=step.role if step else None)


def due_text(state: RenjaState, sop: SopDefinition) -> str:
    """``Step 8 (…) is due, by kasubag_pp``, or ``no step is due (the Renja is distributed)``."""
    step = next_step(state, sop)
    if step is None:
        return f"no step is due (the Renja is {state.status})"
    return f"{step.label} is due, by {step.role}"


def ensure_due(state: RenjaState, number: int, role: str, sop: SopDefinition) -> SopStep:
    """Step ``number`` of ``sop``, provided it is due on ``state`` and ``role`` holds it.

    Raises, checked in this order (authorisation before state): ``WrongRole`` (403) unless ``role`` is
    the step's role (auditors never act); ``RenjaClosed`` (409) once the Renja is cancelled or
    distributed; ``OutOfOrder`` (409) unless the step is ``state.due_step``. ``KeyError`` if ``sop`` has
    no step ``number``.
    """
    step = sop.step(number)
    # Authorisation before state: who may do the step does not depend on where the Renja stands.
    if role != step.role:
        message = f"{step.label} is done by {step.role}; you are {role}. Now {due_text(state, sop)}."
        raise refusal(WrongRole, message, state, sop)
    if state.is_closed:
        message = f"This Renja is {state.status}; {step.label} can no longer be done."
        raise refusal(RenjaClosed, message, state, sop)
    if state.due_step != number:
        raise refusal(OutOfOrder, f"{step.label} is not due: {due_text(state, sop)}; you are {role}.", state, sop)
    return step


def current_version(state: RenjaState, draft: DraftKind) -> tuple[int | None, str | None]:
    """The current (version, SHA-256) of ``draft`` on ``state``; (None, None) before it exists."""
    if draft == "awal":
        return state.awal_version, state.awal_sha256
    if draft == "akhir":
        return state.akhir_version, state.akhir_sha256
    return state.signed_version, state.signed_sha256


def ensure_current_version(
    state: RenjaState, number: int, version: int, content_sha256: str, sop: SopDefinition, draft: DraftKind = "akhir"
) -> None:
    """Refuse unless ``version`` and ``content_sha256`` name the current ``draft`` exactly (design rule
    "versions bind approvals": the version AND its hash).

    Raises ``StaleVersion`` (409), its message labelled with step ``number``. ``KeyError`` if ``sop`` has
    no step ``number``.
    """
    current, current_sha256 = current_version(state, draft)
    if version != current or content_sha256 != current_sha256:
        raise refusal(
            StaleVersion,
            f"{sop.step(number).label}: you named {_DRAFT_NAMES[draft]} version {version} (sha256 "
            f"{content_sha256[:12]}…), but the current one is version {current} (sha256 "
            f"{(current_sha256 or '')[:12]}…). Reload and retry.",
            state,
            sop,
        )


def ensure_parafs_complete(state: RenjaState, number: int, sop: SopDefinition) -> None:
    """Refuse unless every paraf step of ``sop`` (8 and 9 in the shipped SOP) is initialed on the current
    Rancangan Akhir (``state.parafs``): what a signature at step ``number`` means.

    Raises ``OutOfOrder`` (409), its message labelled with step ``number``.
    """
    parafs = sop.plan.paraf_steps
    if set(state.parafs) != set(parafs):
        needed = {1: "the paraf", 2: "both parafs"}.get(len(parafs), "all parafs")
        verb = "is" if len(parafs) == 1 else "are"
        message = f"{sop.step(number).label}: {needed} ({steps_text(parafs)}) {verb} required."
        raise refusal(OutOfOrder, message, state, sop)


def steps_text(numbers: Sequence[int]) -> str:
    """``step 8`` / ``steps 8 and 9`` / ``steps 8, 9 and 10``."""
    if len(numbers) == 1:
        return f"step {numbers[0]}"
    return "steps " + ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]}"


def ensure_new_version(state: RenjaState, number: int, version: int, sop: SopDefinition) -> None:
    """Refuse a new draft (Rancangan Awal or Akhir) unless it carries the cycle's next version.

    Raises ``StaleVersion`` (409), its message labelled with step ``number``.
    """
    expected = state.next_draft_version()
    if version != expected:
        message = f"{sop.step(number).label}: a new draft must be version {expected}, not {version}."
        raise refusal(StaleVersion, message, state, sop)


__all__ = [
    "DraftKind",
    "current_version",
    "due_text",
    "ensure_current_version",
    "ensure_due",
    "ensure_new_version",
    "ensure_parafs_complete",
    "refusal",
    "steps_text",
]
