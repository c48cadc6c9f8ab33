"""Request and response models of the meetings service (SOP step 6): the meeting, its *daftar hadir*
(attendance list) and its *notulen* (minutes), and the public view of a stored meeting.

The request models carry their own validation (≥ 1 attendee present, NIP 18 digits when given, no NIP
listed twice, ≥ 1 point, every requested change valid by ``shared.requested_changes.change_problems``);
a validation failure is HTTP 422 ``invalid_request``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Attendee, RequestedChange
from shared.events.models import Sha256Hex, UtcDatetime
from shared.requested_changes import change_problems
from shared.web.schemas import RequestModel, Text


class MeetingCreate(RequestModel):
    """Schedule the step 6 meeting on one Rancangan Awal version (``draft_version`` + ``draft_sha256``)."""

    # Merged with ``RequestModel.model_config`` (frozen, extra forbidden, whitespace stripped) by pydantic.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "draft_version": 1,
                    "draft_sha256": "5697974c4718a90f631db4f48645982d9bcbe00c21a47e958fe6a50610a19449",
                    "held_at": "2025-03-12T02:00:00Z",
                    "place": "Ruang Rapat Bappeda Kota Bogor, Lantai 2",
                    "agenda": "Pembahasan Rancangan Awal Renja 2026 bersama Sekretariat dan seluruh Bidang: "
                    "kesesuaian dengan Renstra dan pagu indikatif.",
                }
            ]
        }
    )

    draft_version: int = Field(ge=1)
    draft_sha256: Sha256Hex
    held_at: UtcDatetime = Field(description="date and time of the meeting (timezone-aware; stored in UTC)")
    place: Text = Field(min_length=1, max_length=300)
    agenda: Text = Field(min_length=1, max_length=5000)


class AttendeeIn(RequestModel):
    """One line of the daftar hadir. ``nip`` is the 18-digit NIP, or empty for a guest without one."""

    name: Text = Field(min_length=1, max_length=200)
    nip: str = Field(default="", pattern=r"^([0-9]{18})?$", description="18 digits, or empty")
    unit: Text = Field(default="", max_length=200)
    position: Text = Field(default="", max_length=200)
    present: bool = True
    signed_at: UtcDatetime | None = Field(default=None, description="when the attendee signed (UTC)")

    def to_event(self) -> Attendee:
        """The same line as the published ``shared.events.Attendee``."""
        return Attendee(
            name=self.name,
            nip=self.nip,
            unit=self.unit,
            position=self.position,
            present=self.present,
            signed_at=self.signed_at,
        )


class AttendanceIn(RequestModel):
    """The daftar hadir: at least one attendee present; a NIP appears at most once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "attendees": [
                        {
                            "name": "Agus Prasetyo, S.E., M.M. (fiktif)",
                            "nip": "198206202008011003",
                            "unit": "Sekretariat",
                            "position": "Kasubag Perencanaan dan Pelaporan",
                            "present": True,
                            "signed_at": "2025-03-12T02:05:00Z",
                        },
                        {
                            "name": "Siti Aminah, S.Sos. (fiktif)",
                            "nip": "198505052010012007",
                            "unit": "Bidang Sosial Budaya dan Pemerintahan",
                            "position": "Kepala Bidang",
                            "present": True,
                            "signed_at": "2025-03-12T02:07:00Z",
                        },
                        {
                            "name": "Yusuf Ramadhan, S.P. (fiktif)",
                            "nip": "198707072011011008",
                            "unit": "Bidang Perekonomian dan Sumber Daya Alam",
                            "position": "Kepala Bidang",
                            "present": False,
                        },
                    ]
                }
            ]
        }
    )

    attendees: tuple[AttendeeIn, ...] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _rules(self) -> AttendanceIn:
        if not any(a.present for a in self.attendees):
            raise ValueError("the daftar hadir needs at least one attendee marked present")
        nips = [a.nip for a in self.attendees if a.nip]
        twice = sorted({n for n in nips if nips.count(n) > 1})
        if twice:
            raise ValueError(f"NIP listed more than once: {', '.join(twice)}")
        return self


class NotulenIn(RequestModel):
    """The notulen: points discussed (≥ 1), decisions, and the changes to the draft the meeting asks for."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "points": [
                        "Jumlah pagu kegiatan 5.01.03.2.01 tidak sama dengan jumlah pagu sub kegiatannya.",
                        "Dua sub kegiatan masih berpagu nol.",
                    ],
                    "decisions": ["Pagu kegiatan 5.01.03.2.01 disesuaikan dengan jumlah sub kegiatannya."],
                    "requested_changes": [
                        {
                            "kode": "5.01.03.2.01",
                            "field": "pagu",
                            "new_value": "1.250.000.000",
                            "note": "mengikuti jumlah sub kegiatan",
                        }
                    ],
                }
            ]
        }
    )

    points: tuple[Annotated[Text, Field(min_length=1, max_length=5000)], ...] = Field(min_length=1, max_length=500)
    decisions: tuple[Annotated[Text, Field(min_length=1, max_length=5000)], ...] = Field(default=(), max_length=500)
    requested_changes: tuple[RequestedChange, ...] = Field(default=(), max_length=2000)

    @field_validator("requested_changes")
    @classmethod
    def _changes_apply_to_a_renja_row(cls, changes: tuple[RequestedChange, ...]) -> tuple[RequestedChange, ...]:
        # Checked here, before the notulen becomes a final fact (MeetingHeld), with the rules the documents
        # service applies at step 7 (shared.requested_changes): a kode in the nomenclature's format, an
        # editable field, a rupiah amount for pagu/pagu_n1. Whether the kode is in the draft is step 7's.
        problems = [
            f"requested_changes[{i}] (kode {c.kode!r}, field {c.field!r}): {problem}"
            for i, c in enumerate(changes)
            for problem in change_problems(c)
        ]
        if problems:
            more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise ValueError("; ".join(problems[:10]) + more)
        return changes


class NotulenPublic(BaseModel):
    points: list[str]
    decisions: list[str]
    requested_changes: list[RequestedChange]


class MeetingPublic(BaseModel):
    """A step 6 meeting: what was scheduled, the records so far, and whether ``MeetingHeld`` was emitted."""

    meeting_id: UUID
    renja_id: UUID
    draft_version: int
    draft_sha256: str
    held_at: datetime
    place: str
    agenda: str
    scheduled_by: str
    scheduled_at: datetime
    status: Literal["scheduled", "held"]
    missing: list[Literal["daftar_hadir", "notulen"]]
    attendees: list[AttendeeIn] | None
    attendance_by: str | None
    notulen: NotulenPublic | None
    notulen_sha256: str | None
    notulen_by: str | None
    held_event_id: UUID | None
