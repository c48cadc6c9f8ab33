"""The approvals service's own rules for SOP steps 8-10 and returns (pure: no I/O, no clock).

Owns:
- which review step an actor's role performs (kasubag_pp → 8, sekretaris → 9, kepala_badan → 10): the
  SOP gives each step exactly one *Pelaksana*, so clients never name the step;
- the guard run *before* the agency key signs anything (step 10 due, both parafs present, the exact
  current Rancangan Akhir version and hash), so the key never signs a hash the decider would refuse.
  The shared decider (``shared.sop.decide``) re-checks all of it inside the command's transaction and stays
  the authority.
"""

from __future__ import annotations

from typing import Literal

from shared.sop import DomainError, OutOfOrder, RenjaClosed, RenjaState, SopDefinition, StaleVersion, next_step

ReviewStep = Literal[8, 9, 10]

REVIEW_STEP_BY_ROLE: dict[str, ReviewStep] = {"kasubag_pp": 8, "sekretaris": 9, "kepala_badan": 10}
"""SOP steps 8 (kasubag_pp), 9 (sekretaris) and 10 (kepala_badan): one reviewer role per step."""

SIGN_STEP = 10


def review_step(role: str) -> ReviewStep:
    """The review step ``role`` performs (8, 9 or 10). ``KeyError`` for any other role (the API's
    ``require_roles`` lets only these three through)."""
    return REVIEW_STEP_BY_ROLE[role]


def _refuse(cls: type[DomainError], message: str, state: RenjaState, sop: SopDefinition) -> DomainError:
    step = next_step(state, sop)
    return cls(message, due_step=step.number if step else None, due_role=step.role if step else None)


def check_signable(state: RenjaState, sop: SopDefinition, version: int, content_sha256: str) -> None:
    """Refuse to sign unless step 10 is due on exactly this Rancangan Akhir, initialed at steps 8 and 9.

    Raises (HTTP 409 each): ``RenjaClosed`` (cancelled/distributed), ``OutOfOrder`` (step 10 not due, or a
    paraf missing), ``StaleVersion`` (``version``/``content_sha256`` are not ``akhir_version``/``akhir_sha256``).
    """
    label = sop.step(SIGN_STEP).label
    if state.is_closed:
        raise _refuse(RenjaClosed, f"This Renja is {state.status}; {label} can no longer be done.", state, sop)
    if state.due_step != SIGN_STEP or set(state.parafs) != {8, 9}:
        due = next_step(state, sop)
        now_due = f"{due.label} is due, by {due.role}" if due else "no step is due"
        raise _refuse(OutOfOrder, f"{label} is not due: {now_due}.", state, sop)
    if version != state.akhir_version or content_sha256 != state.akhir_sha256:
        raise _refuse(
            StaleVersion,
            f"{label}: you named Rancangan Akhir version {version} (sha256 {content_sha256[:12]}…), but the "
            f"current one is version {state.akhir_version} (sha256 {(state.akhir_sha256 or '')[:12]}…). "
            "Reload and retry.",
            state,
            sop,
        )
