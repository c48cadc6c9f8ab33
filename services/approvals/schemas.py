"""Request and response models of the approvals service (SOP steps 8-10, returns, signature checks).

Requests (``XCreate``) are frozen, refuse unknown fields and strip surrounding whitespace; each carries an
example for the OpenAPI document. Responses (``XPublic``, ``ApprovalResult``) are what the routes answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events.models import Sha256Hex
from shared.web.ops import StepPublic
from shared.web.schemas import RequestModel, Text


class ParafCreate(RequestModel):
    """A *paraf* (initials) on one exact Rancangan Akhir: its version and SHA-256 (design: versions bind)."""

    # Merged with ``RequestModel.model_config`` (frozen, extra forbidden, whitespace stripped) by pydantic.
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


class SignCreate(RequestModel):
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


class ReturnCreate(RequestModel):
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


class VerifyCreate(RequestModel):
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


class ApprovalPublic(BaseModel):
    """One recorded paraf, signature or return (``recorded_at`` UTC)."""

    event_id: UUID
    renja_id: UUID
    kind: Literal["paraf", "signature", "return"]
    step: int
    version: int
    content_sha256: str
    actor_name: str
    actor_nip: str
    actor_role: str
    recorded_at: datetime
    note: str
    warnings_acknowledged: list[str]
    key_id: str | None
    public_key_b64: str | None
    signature_b64: str | None


class ApprovalResult(BaseModel):
    """What a paraf, signature or return recorded, and the step now due."""

    renja_id: UUID
    record: ApprovalPublic
    next_step: StepPublic | None


class KeyPublic(BaseModel):
    """The agency's signing public key, for offline verification of ``Signed`` events."""

    key_id: str
    algorithm: str
    public_key_b64: str
    public_key_pem: str
    signed_data: str


class VerifyPublic(BaseModel):
    """Whether the signature verifies under the served key, and the recorded signings it matches."""

    valid: bool
    key_id: str
    algorithm: str
    recorded: list[ApprovalPublic]
