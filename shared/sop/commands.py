"""The commands (imperative, frozen requests, one per SOP action) and ``CommandContext`` (who acts, which
service, ids and clock): everything impure a decision needs comes in through the context."""

from __future__ import annotations

from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from shared.events import (
    Actor,
    OpdIdentity,
    Recipient,
    RequestedChange,
    ServiceName,
    UnitDelivery,
)
from shared.events.models import Attendee, Sha256Hex, UtcDatetime

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
    opd_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="the OPD's SIPD unit code (region registry); default: the token's `opd` claim. "
        "Carried by every directive of the cycle",
    )
    # Set by the directive service from the registry, never by a client (not in the API schema).
    opd_identity: SkipJsonSchema[OpdIdentity | None] = None


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
    """A paraf step — 8 (kasubag_pp) or 9 (sekretaris) in the shipped SOP: *paraf* on the current Rancangan
    Akhir version and hash. ``step`` must be a paraf step of the SOP file (the decider refuses others)."""

    step: int = Field(ge=1, description="the paraf step's number in the SOP file (8 or 9 in the shipped SOP)")
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
    """Design addition: the reviewer due at a paraf or the signature (8, 9 or 10 in the shipped SOP) returns
    the Rancangan Akhir to its step (7)."""

    at_step: int = Field(ge=1, description="the review step's number (8, 9 or 10 in the shipped SOP)")
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
