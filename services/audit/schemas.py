"""The audit's response models (``XPublic``) and their conversions from the audit's own types.

Each ``*_public`` function gives the JSON shape of one result (a :class:`Timeline`, a
:class:`VerifyReport`, the SOP step table); the CLI prints the same shapes as the HTTP API.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from services.audit.store import StoredAnomaly
from services.audit.timeline import OpenStep, Timeline, TimelineEntry
from services.audit.verify import Integrity, VerifyReport
from shared.sop import SopDefinition


class CyclePublic(BaseModel):
    renja_id: UUID
    opd: str | None
    fiscal_year: int | None
    status: str
    current_step: int | None
    events: int
    first_at: datetime
    last_at: datetime
    head_signed: bool
    anomalies: int = 0
    """Events flagged on this Renja (``GET /renja/{id}/timeline`` lists them)."""


class StepStandardPublic(BaseModel):
    number: int
    name: str
    activity: str
    gloss: str
    role: str
    input: str | None
    output: str
    standard_minutes: int
    completed_by: str


class SopStepsPublic(BaseModel):
    title: str
    agency: str
    timezone: str
    total_standard_minutes: int
    steps: list[StepStandardPublic]


class TimelineEntryPublic(BaseModel):
    position: int
    event_id: str
    event_type: str
    occurred_at: datetime
    actor_name: str
    actor_nip: str
    actor_role: str
    source: str
    step_number: int | None
    step_name: str | None
    attempt: int | None
    draft_version: int | None
    content_sha256: str | None
    started_at: datetime | None
    working_minutes: float | None
    standard_minutes: int | None
    overdue: bool | None
    note: str
    anomaly: str | None = None
    """The kind of the anomaly flagged on this entry (``shared.sop.classify``), if any."""


class OpenStepPublic(BaseModel):
    number: int
    name: str
    role: str
    standard_minutes: int
    enabled_at: datetime | None
    elapsed_minutes: float | None
    overdue: bool | None


class AnomalyPublic(BaseModel):
    """An event the SOP would not have decided where it stands on the log (it stays in the chain), or a
    repeated event id with other bytes (``duplicate_id``: ``position`` is the first record's)."""

    kind: str
    position: int | None
    step_number: int | None
    message: str
    event_id: str
    event_type: str
    actor_role: str
    occurred_at: datetime
    kafka_partition: int
    kafka_offset: int


class IntegrityPublic(BaseModel):
    """The Renja's verification state as of this read: ``ok`` and entries 1..``verified_entries``
    intact, or ``tampered_at`` the first broken entry; ``message`` (English), ``message_id`` (Indonesian)."""

    ok: bool
    entries: int
    verified_entries: int
    tampered_at: int | None
    message: str
    message_id: str
    checks: list[str]


class TimelinePublic(BaseModel):
    """One Renja's timeline; minutes are working minutes on the agency calendar (``timezone``).

    ``integrity``: the stored history verified on this read (projection and signed head); a tampered
    history is served marked as such. ``anomalies``: the Renja's flagged events (up to ``position``).
    """

    renja_id: UUID
    opd: str | None
    fiscal_year: int | None
    status: str
    current_step: OpenStepPublic | None
    as_of: datetime | None
    position: int | None
    timezone: str
    total_working_minutes: float
    total_standard_minutes: int
    overdue_count: int
    entries: list[TimelineEntryPublic]
    integrity: IntegrityPublic | None = None
    anomalies: list[AnomalyPublic] = []


class CheckPublic(BaseModel):
    name: str
    ok: bool
    position: int | None
    kind: str | None
    reason: str
    event_id: str | None


class EntrySignerPublic(BaseModel):
    """Who signed one chain entry: the producing ``service`` and its ``key_id``; ``status`` ``signed``,
    ``legacy`` (unsigned, from before signing) or why its signature was refused."""

    position: int
    event_id: str
    service: str | None
    key_id: str | None
    status: str


class VerifyPublic(BaseModel):
    """``ok`` only if every check passed; otherwise the first bad chain position and its event.
    ``key_id``/``public_key_b64``: the audit's head-signing key; ``signers``: each entry's producer."""

    renja_id: UUID
    ok: bool
    entries: int
    log_entries: int | None
    head_signed: bool
    first_bad_position: int | None
    first_bad_event_id: str | None
    reason: str
    checks: list[CheckPublic]
    key_id: str
    public_key_b64: str
    anomalies: list[AnomalyPublic] = []
    """Flagged events of this Renja (they do not make the chain not intact)."""
    signers: list[EntrySignerPublic] = []


class KeyPublic(BaseModel):
    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str
    public_key_b64: str


class RebuildComparePublic(BaseModel):
    """Whether replaying the whole log from offset 0 gives exactly the live projection (rows and hashes)."""

    rebuild_equals_live: bool
    seconds: float


CSV_COLUMNS = list(TimelineEntryPublic.model_fields)


def anomaly_public(a: StoredAnomaly) -> AnomalyPublic:
    """The JSON shape of one recorded anomaly."""
    return AnomalyPublic(
        kind=a.kind,
        position=a.position,
        step_number=a.step_number,
        message=a.message,
        event_id=a.event_id,
        event_type=a.event_type,
        actor_role=a.actor_role,
        occurred_at=a.occurred_at,
        kafka_partition=a.partition,
        kafka_offset=a.offset,
    )


def integrity_public(i: Integrity) -> IntegrityPublic:
    """The JSON shape of an :class:`Integrity` verdict."""
    return IntegrityPublic(
        ok=i.ok,
        entries=i.entries,
        verified_entries=i.verified_entries,
        tampered_at=i.tampered_at,
        message=i.message,
        message_id=i.message_id,
        checks=list(i.checks),
    )


def _entry_public(e: TimelineEntry, anomaly: str | None = None) -> TimelineEntryPublic:
    return TimelineEntryPublic(
        position=e.position,
        event_id=e.event_id,
        event_type=e.event_type,
        occurred_at=e.occurred_at,
        actor_name=e.actor.name,
        actor_nip=e.actor.nip,
        actor_role=e.actor.role,
        source=e.source,
        step_number=e.step_number,
        step_name=e.step_name,
        attempt=e.attempt,
        draft_version=e.draft_version,
        content_sha256=e.content_sha256,
        started_at=e.started_at,
        working_minutes=e.working_minutes,
        standard_minutes=e.standard_minutes,
        overdue=e.overdue,
        note=e.note,
        anomaly=anomaly,
    )


def _open_step_public(cur: OpenStep) -> OpenStepPublic:
    return OpenStepPublic(
        number=cur.number,
        name=cur.name,
        role=cur.role,
        standard_minutes=cur.standard_minutes,
        enabled_at=cur.enabled_at,
        elapsed_minutes=cur.elapsed_minutes,
        overdue=cur.overdue,
    )


def timeline_public(
    timeline: Timeline,
    position: int | None,
    *,
    integrity: Integrity | None = None,
    anomalies: Sequence[StoredAnomaly] = (),
) -> TimelinePublic:
    """The JSON shape of a :class:`Timeline` (of a known Renja: ``timeline.renja_id`` is set), with its
    verification state and anomalies when given (each entry flagged with its anomaly's kind)."""
    assert timeline.renja_id is not None
    cur = timeline.current_step
    flagged = {a.position: a.kind for a in anomalies if a.kind != "duplicate_id"}
    return TimelinePublic(
        renja_id=timeline.renja_id,
        opd=timeline.opd,
        fiscal_year=timeline.fiscal_year,
        status=timeline.status,
        current_step=None if cur is None else _open_step_public(cur),
        as_of=timeline.as_of,
        position=position,
        timezone=timeline.timezone,
        total_working_minutes=timeline.total_working_minutes,
        total_standard_minutes=timeline.total_standard_minutes,
        overdue_count=timeline.overdue_count,
        entries=[_entry_public(e, flagged.get(e.position)) for e in timeline.entries],
        integrity=None if integrity is None else integrity_public(integrity),
        anomalies=[anomaly_public(a) for a in anomalies],
    )


def timeline_csv(public: TimelinePublic) -> str:
    """The timeline's entries as CSV (header row; times ISO 8601 UTC; minutes as decimals)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in public.entries:
        row = entry.model_dump(mode="json")
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def verify_public(report: VerifyReport, public_b64: str, kid: str) -> VerifyPublic:
    """The JSON shape of a :class:`VerifyReport`, with the public key that checks the signed head."""
    return VerifyPublic(
        renja_id=UUID(report.renja_id),
        ok=report.ok,
        entries=report.entries,
        log_entries=report.log_entries,
        head_signed=report.head_signed,
        first_bad_position=report.first_bad_position,
        first_bad_event_id=report.first_bad_event_id,
        reason=report.reason,
        checks=[
            CheckPublic(name=c.name, ok=c.ok, position=c.position, kind=c.kind, reason=c.reason, event_id=c.event_id)
            for c in report.checks
        ],
        key_id=kid,
        public_key_b64=public_b64,
        anomalies=[anomaly_public(a) for a in report.anomalies],
        signers=[
            EntrySignerPublic(
                position=x.position, event_id=x.event_id, service=x.service, key_id=x.key_id, status=x.status
            )
            for x in report.signers
        ],
    )


def sop_steps_public(sop: SopDefinition) -> SopStepsPublic:
    """The SOP step table with its time standards; ``completed_by`` as ``event_type k=v …``."""
    return SopStepsPublic(
        title=sop.title,
        agency=sop.agency.name,
        timezone=sop.office_hours.timezone,
        total_standard_minutes=sop.total_standard_minutes,
        steps=[
            StepStandardPublic(
                number=s.number,
                name=s.name,
                activity=s.activity,
                gloss=s.gloss,
                role=s.role,
                input=s.input,
                output=s.output,
                standard_minutes=s.standard_minutes,
                completed_by=s.completed_by.event_type
                + "".join(f" {k}={v}" for k, v in sorted(s.completed_by.match.items())),
            )
            for s in sop.steps
        ],
    )
