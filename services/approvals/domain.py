"""The approvals service's own rules for SOP steps 8-10 and returns (pure: no I/O, no clock).

Owns:
- which review step an actor's role performs (kasubag_pp → 8, sekretaris → 9, kepala_badan → 10): the
  SOP gives each step exactly one *Pelaksana*, so clients never name the step;
- the guard run *before* the agency key signs anything (step 10 due, both parafs present, the exact
  current Rancangan Akhir version and hash), so the key never signs a hash the decider would refuse.
  The shared decider (``shared.sop.decide``) re-checks all of it inside the command's transaction and stays
  the authority;
- the request shapes of paraf, signature, return and verification.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.models import Sha256Hex
from shared.sop import DomainError, OutOfOrder, RenjaClosed, RenjaState, SopDefinition, StaleVersion, next_step

ReviewStep = Literal[8, 9, 10]

REVIEW_STEP_BY_ROLE: dict[str, ReviewStep] = {"kasubag_pp": 8, "sekretaris": 9, "kepala_badan": 10}
"""SOP steps 8 (kasubag_pp), 9 (sekretaris) and 10 (kepala_badan): one reviewer role per step."""

SIGN_STEP = 10


Text = str
"""Free text; surrounding whitespace is stripped before the length checks (``str_strip_whitespace``)."""


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class ParafCreate(_Input):
    """A *paraf* (initials) on one exact Rancangan Akhir: its version and SHA-256 (design: versions bind)."""

    # Merged with ``_Input.model_config`` (frozen, extra forbidden, whitespace stripped) by pydantic.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 3,
                    "content_sha256": "c0b90588ad576e7b4a71d35b508020745ca862d890ef604788a7d2fabe2e6ac5",
                    "warnings_acknowledged": ["not_in_renstra"],
                    "note": "Sudah diperiksa; kegiatan di luar Renstra telah diberi penjelasan di catatan.",
                }
            ]
        }
    )

    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    warnings_acknowledged: tuple[Annotated[Text, Field(min_length=1, max_length=200)], ...] = Field(
        default=(), max_length=1000, description="codes of the warning findings the reviewer has read"
    )
    note: Text = Field(default="", max_length=5000)


class SignCreate(_Input):
    """The head's signature (step 10) on one exact Rancangan Akhir."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"version": 3, "content_sha256": "c0b90588ad576e7b4a71d35b508020745ca862d890ef604788a7d2fabe2e6ac5"}
            ]
        }
    )

    version: int = Field(ge=1)
    content_sha256: Sha256Hex


class ReturnCreate(_Input):
    """Return the Rancangan Akhir to step 7 with notes saying what to fix (design addition to the SOP)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 2,
                    "content_sha256": "5697974c4718a90f631db4f48645982d9bcbe00c21a47e958fe6a50610a19449",
                    "notes": "Sub kegiatan 5.01.01.2.01.0001 dan 5.01.03.2.02.0003 berpagu nol: beri catatan "
                    "alasan atau hapus dari rancangan.",
                }
            ]
        }
    )

    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    notes: Text = Field(min_length=1, max_length=10000)


class VerifyCreate(_Input):
    """A (content hash, signature) pair to check against this agency's public key."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "content_sha256": "c0b90588ad576e7b4a71d35b508020745ca862d890ef604788a7d2fabe2e6ac5",
                    "signature_b64": "cCwCr00dXysh/9rKZsZyzMEozIxKbeVHhIXkAHW9jAiAa2NAGdBNRtPiDIFCOqyFD2Tt6PyDfML/"
                    "qF3fmWpBig==",
                }
            ]
        }
    )

    content_sha256: Sha256Hex
    signature_b64: str = Field(min_length=1, max_length=200)


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
