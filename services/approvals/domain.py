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

from shared.sop import RenjaState, SopDefinition, ensure_current_version, ensure_due, ensure_parafs_complete


def review_step(role: str, sop: SopDefinition) -> int:
    """The review step (a paraf or the signature) that ``role`` performs in ``sop``: in the shipped file
    kasubag_pp 8, sekretaris 9, kepala_badan 10. ``KeyError`` for a role with no review step (the API's
    ``require_roles`` lets only reviewers through)."""
    for number in sorted(sop.plan.review_steps):
        if sop.step(number).role == role:
            return number
    raise KeyError(f"role {role!r} has no review step in the SOP file")


def check_signable(state: RenjaState, sop: SopDefinition, role: str, version: int, content_sha256: str) -> None:
    """Refuse to sign unless the signature step is due for ``role`` on exactly this Rancangan Akhir, with
    every paraf of the SOP file present: the decider's own guards, in the decider's order.

    Raises ``RenjaClosed``/``OutOfOrder``/``StaleVersion`` (409) or ``WrongRole`` (403).
    """
    step = ensure_due(state, sop.plan.number("signature"), role, sop)
    ensure_current_version(state, step.number, version, content_sha256, sop)
    ensure_parafs_complete(state, step.number, sop)
