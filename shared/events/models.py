"""The published language: one frozen pydantic model per Renja event.

Invariants:
- every event is a past-tense fact about exactly one Renja cycle (``renja_id`` = Kafka key = CloudEvents
  ``subject``); it is never mutated after it is appended;
- ``occurred_at`` is timezone-aware and normalised to UTC;
- ``event_type`` is the versioned CloudEvents ``type`` (``renja.<Name>.v<N>``); a breaking change is a new
  class with a new version, never an edit of an old one;
- money is in whole rupiah (``int``); durations are derived by the audit, except in the timer notices
  (``StepReminderDue``, ``StepOverdue``), which carry the working minutes the audit's calendar gives
  (``shared.workcalendar``, the same calculation) so that a subscriber needs no calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

Role = Literal["kepala_badan", "sekretaris", "kasubag_pp", "staf", "auditor", "system", "bappeda"]
"""The SOP's four *Pelaksana* roles, the read-only ``auditor`` and ``bappeda``, ``system`` for automatic steps."""

ServiceName = Literal["directive", "documents", "meetings", "approvals", "notifier", "audit"]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Actor(Frozen):
    """Who did it: the person behind the bearer token (NIP = Nomor Induk Pegawai, 18 digits).

    ``opd`` (additive, optional): the SIPD unit code of the person's OPD (token claim ``opd``); absent for
    the system, in records written before the region/OPD registry, and for tokens without it.
    """

    user_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    nip: str = Field(pattern=r"^[0-9]{18}$|^-$", description="18-digit NIP, or '-' for the system")
    role: Role
    opd: str | None = Field(
        default=None,
        description="SIPD unit code of the actor's OPD (token claim `opd`); absent when unknown",
        exclude_if=lambda value: value is None,  # absent, not null: older records re-encode to their bytes
    )


class Event(Frozen):
    """Fields common to every Renja event (the CloudEvents envelope is derived from them)."""

    event_type: ClassVar[str]

    event_id: UUID
    renja_id: UUID
    source: ServiceName = Field(description="the producing service (CloudEvents source)")
    actor: Actor
    occurred_at: UtcDatetime
    causation_id: UUID | None = Field(default=None, description="event or request that caused this one")
    correlation_id: UUID = Field(description="one id for the whole Renja cycle's conversation")


class Recipient(Frozen):
    name: str = Field(min_length=1)
    unit: str = ""
    email: str = ""
    copies: int = Field(default=1, ge=1)


class OpdUnit(Frozen):
    """A unit of an OPD (Sekretariat or a Bidang) that delivers data at step 4."""

    code: str = Field(min_length=1)
    name: str = Field(min_length=1)


class OpdIdentity(Frozen):
    """The identity a cycle was opened with: the OPD and its region, as the registry said at the arahan.

    A snapshot (``shared.registry.Registry.identity``): a later registry change never alters a running or
    closed cycle's documents, mails or pages. ``registry_version`` and ``registry_sha256`` name the
    registry file it came from; ``sop_file`` the SOP file the OPD follows (its provenance).
    """

    code: str = Field(min_length=1, description="SIPD unit code, e.g. 5.01.5.05.0.00.01.0000")
    name: str = Field(min_length=1, description="official name")
    short_name: str = Field(min_length=1)
    region: str = Field(min_length=1, description="e.g. Kabupaten Bengkulu Utara")
    region_level: Literal["kabupaten", "kota", "provinsi"]
    signing_place: str = Field(min_length=1, description="the place name written before the signing date")
    government_level: str = Field(description="kegiatan code form: '2' kab/kota, '1' provinsi")
    letterhead: tuple[str, ...] = ()
    address: str = ""
    head_title: str = Field(min_length=1, description="the head's jabatan, e.g. Kepala Dinas Pendidikan")
    units: tuple[OpdUnit, ...] = ()
    distribution: tuple[Recipient, ...] = ()
    sop_file: str = ""
    registry_version: str = ""
    registry_sha256: str = ""


# --- step 1-3 ---------------------------------------------------------------------------------------


class DirectiveIssued(Event):
    """Steps 1-3: *arahan* (head → secretary), *instruksi* (secretary → kasubag), *perintah* (→ staff).

    The ``arahan`` starts a Renja cycle for one OPD and fiscal year (one cycle per OPD and year).
    v2 = v1 (``legacy.DirectiveIssuedV1``) + ``opd_code``, the OPD identity the cycle was opened with
    (required, nullable; a v1 record is read with ``opd_code: null``, ``versions.UPCASTERS``).
    """

    event_type: ClassVar[str] = "renja.DirectiveIssued.v2"
    level: Literal["arahan", "instruksi", "perintah"]
    text: str = Field(min_length=1)
    addressee_role: Role
    addressee_name: str = ""
    opd: str = Field(min_length=1, description="the Perangkat Daerah preparing the Renja")
    fiscal_year: int = Field(ge=2000, le=2100, description="the plan year (n+1)")
    opd_code: str | None = Field(
        description="the OPD's SIPD unit code the cycle was opened with; null when not (yet) known"
    )
    opd_identity: OpdIdentity | None = Field(
        default=None,
        description="additive: the OPD and region identity snapshot the cycle was opened with (arahan only; "
        "absent before the registry and on instruksi/perintah)",
        exclude_if=lambda value: value is None,  # absent, not null: older records re-encode to their bytes
    )


# --- step 4 ------------------------------------------------------------------------------------------


class FileRef(Frozen):
    name: str = Field(min_length=1)
    sha256: Sha256Hex
    size_bytes: int = Field(ge=0)
    media_type: str = "application/octet-stream"


class UnitDelivery(Frozen):
    """What one unit (Sekretariat or a Bidang) delivered at step 4."""

    unit: str = Field(min_length=1)
    rows: int = Field(ge=0)
    rows_sha256: Sha256Hex
    pagu_total: int = Field(ge=0, description="rupiah")
    files: tuple[FileRef, ...] = ()


class DataCollected(Event):
    """Step 4: every configured unit has delivered and the data was checked (*terkumpul dan teliti*)."""

    event_type: ClassVar[str] = "renja.DataCollected.v1"
    units: tuple[UnitDelivery, ...] = Field(min_length=1)
    rows: int = Field(ge=0)
    pagu_total: int = Field(ge=0, description="rupiah")


# --- steps 5 and 7 -----------------------------------------------------------------------------------


class DraftCreated(Event):
    """Step 5 (stage ``awal``) or step 7 (stage ``akhir``): a new draft version with its content hash.

    ``version`` counts all drafts of the cycle from 1; a Rancangan Akhir names the meeting whose
    notulen it applies (``meeting_id``, ``notulen_sha256``).
    """

    event_type: ClassVar[str] = "renja.DraftCreated.v1"
    stage: Literal["awal", "akhir"]
    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    based_on_version: int | None = Field(default=None, ge=1)
    meeting_id: UUID | None = None
    notulen_sha256: Sha256Hex | None = None
    rows: int = Field(ge=0)
    pagu_total: int = Field(ge=0, description="rupiah")
    blocking_findings: int = Field(default=0, ge=0)
    warning_findings: int = Field(default=0, ge=0)


# --- step 6 ------------------------------------------------------------------------------------------


class Attendee(Frozen):
    """One line of the *daftar hadir*."""

    name: str = Field(min_length=1)
    nip: str = ""
    unit: str = ""
    position: str = ""
    present: bool = True
    signed_at: UtcDatetime | None = None


class RequestedChange(Frozen):
    """A change the *notulen* asks for: row ``kode``, the field, and the new value (as text)."""

    kode: str = Field(min_length=1)
    field: str = Field(min_length=1)
    new_value: str
    note: str = ""


class MeetingHeld(Event):
    """Step 6: the consultation meeting on a Rancangan Awal, once both daftar hadir and notulen exist."""

    event_type: ClassVar[str] = "renja.MeetingHeld.v1"
    meeting_id: UUID
    draft_version: int = Field(ge=1)
    draft_sha256: Sha256Hex
    held_at: UtcDatetime
    place: str = ""
    attendees: tuple[Attendee, ...] = Field(min_length=1)
    points: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    requested_changes: tuple[RequestedChange, ...] = ()
    notulen_sha256: Sha256Hex


# --- steps 8-10 --------------------------------------------------------------------------------------


class Initialed(Event):
    """Steps 8 (kasubag_pp) and 9 (sekretaris): *paraf* on one exact draft version and hash.

    ``step`` is the paraf step's number in the agency's SOP file (``shared/sop.yaml``), 8 or 9 in the
    shipped one; a file with another paraf step adds its number.
    """

    event_type: ClassVar[str] = "renja.Initialed.v1"
    step: int = Field(ge=1, description="the paraf step (8 or 9 in the shipped SOP)")
    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    warnings_acknowledged: tuple[str, ...] = ()
    note: str = ""


class Signed(Event):
    """Step 10: the head signs; ``signature`` is over the UTF-8 bytes of ``content_sha256``."""

    event_type: ClassVar[str] = "renja.Signed.v1"
    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str = Field(min_length=1)
    public_key_b64: str = Field(min_length=1)
    signature_b64: str = Field(min_length=1)


class DraftReturned(Event):
    """A reviewer at step 8, 9 or 10 returns the Rancangan Akhir to step 7 with notes.

    ``at_step`` is the review step's number in the agency's SOP file (8, 9 or 10 with the shipped one).
    """

    event_type: ClassVar[str] = "renja.DraftReturned.v1"
    at_step: int = Field(ge=1, description="the review step (8, 9 or 10 in the shipped SOP)")
    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    notes: str = Field(min_length=1)


class RenjaCancelled(Event):
    """The head cancels a started cycle, with a reason; nothing may follow."""

    event_type: ClassVar[str] = "renja.RenjaCancelled.v1"
    reason: str = Field(min_length=1)


# --- step 11 -----------------------------------------------------------------------------------------


class Distributed(Event):
    """Step 11: the signed Renja was copied, archived and sent to the recipients."""

    event_type: ClassVar[str] = "renja.Distributed.v1"
    distribution_id: UUID
    version: int = Field(ge=1)
    content_sha256: Sha256Hex
    archive_ref: str = Field(min_length=1)
    recipients: tuple[Recipient, ...] = Field(min_length=1)


class ReceiptRecorded(Event):
    """Step 11's proof of distribution: one recipient acknowledged receipt (*bukti distribusi*)."""

    event_type: ClassVar[str] = "renja.ReceiptRecorded.v1"
    distribution_id: UUID
    recipient: str = Field(min_length=1)
    received_at: UtcDatetime
    received_by: str = ""


# --- time standards (mutu baku): the notifier's step timers --------------------------------------------

PelaksanaRole = Literal["kepala_badan", "sekretaris", "kasubag_pp", "staf"]
"""The SOP's four *Pelaksana* (who can be due to act on a step)."""


class StepReminderDue(Event):
    """A due step has used ``share`` of its time standard (*mutu baku*) and is not done yet: the reminder
    to the person who must act (``role``). Appended by the notifier's timers (actor ``system``), at most
    once per step occurrence (``step`` due since ``due_since``), never before ``reminder_at``.

    Times are UTC instants; ``standard_minutes`` and ``working_minutes`` are working minutes on the
    agency calendar (office hours Asia/Jakarta, weekends, holidays, cuti bersama); ``working_minutes`` runs
    from ``due_since`` to ``occurred_at``, as the audit timeline counts it.
    """

    event_type: ClassVar[str] = "renja.StepReminderDue.v1"
    step: int = Field(ge=1, description="the SOP step that is due")
    role: PelaksanaRole = Field(description="who must act on the step")
    due_since: UtcDatetime = Field(description="when the step became due (the event that enabled it)")
    standard_minutes: int = Field(ge=0, description="the step's mutu baku, working minutes")
    share: float = Field(gt=0, le=1, description="the share of the mutu baku at which the reminder is due")
    reminder_at: UtcDatetime = Field(description="due_since + share x standard, in working minutes")
    due_at: UtcDatetime = Field(description="due_since + standard, in working minutes: the deadline")
    working_minutes: float = Field(ge=0, description="working minutes from due_since to occurred_at")


class StepOverdue(Event):
    """A due step has passed its time standard (*mutu baku*) and is not done: the overdue notice to the
    person who must act (``role``) and, by the SOP's hierarchy, their superior (``escalated_to``; none above
    the head of agency). Appended by the notifier's timers (actor ``system``), at most once per step
    occurrence (``step`` due since ``due_since``), never before ``due_at``. Units as in ``StepReminderDue``.
    """

    event_type: ClassVar[str] = "renja.StepOverdue.v1"
    step: int = Field(ge=1, description="the SOP step that is overdue")
    role: PelaksanaRole = Field(description="who must act on the step")
    escalated_to: PelaksanaRole | None = Field(description="the superior told as well (null for the head)")
    due_since: UtcDatetime = Field(description="when the step became due (the event that enabled it)")
    standard_minutes: int = Field(ge=0, description="the step's mutu baku, working minutes")
    due_at: UtcDatetime = Field(description="due_since + standard, in working minutes: the deadline")
    working_minutes: float = Field(ge=0, description="working minutes from due_since to occurred_at")
