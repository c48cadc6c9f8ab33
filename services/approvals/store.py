"""The approval_records table (this service's own record of steps 8-10 and returns): SQL in one place.

Invariant: rows are written only by ``record_approvals``, the effect of a command, in the same transaction
as the ``Initialed``/``Signed``/``DraftReturned`` event it mirrors (primary key = the event id).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from services.approvals.schemas import ApprovalPublic
from shared.events import DraftReturned, Event, Initialed, Signed
from shared.sop import RenjaState


def approval_of(event: Event) -> ApprovalPublic | None:
    """The record mirroring ``event``, or None for events this service does not record."""
    common: dict[str, Any] = {
        "event_id": event.event_id,
        "renja_id": event.renja_id,
        "actor_name": event.actor.name,
        "actor_nip": event.actor.nip,
        "actor_role": event.actor.role,
        "recorded_at": event.occurred_at,
        "note": "",
        "warnings_acknowledged": [],
        "key_id": None,
        "public_key_b64": None,
        "signature_b64": None,
    }
    if isinstance(event, Initialed):
        common.update(note=event.note, warnings_acknowledged=list(event.warnings_acknowledged))
        return ApprovalPublic(
            **common, kind="paraf", step=event.step, version=event.version, content_sha256=event.content_sha256
        )
    if isinstance(event, Signed):
        common.update(key_id=event.key_id, public_key_b64=event.public_key_b64, signature_b64=event.signature_b64)
        return ApprovalPublic(
            **common, kind="signature", step=10, version=event.version, content_sha256=event.content_sha256
        )
    if isinstance(event, DraftReturned):
        common.update(note=event.notes)
        return ApprovalPublic(
            **common, kind="return", step=event.at_step, version=event.version, content_sha256=event.content_sha256
        )
    return None


async def record_approvals(conn: asyncpg.Connection, events: Sequence[Event], _: RenjaState) -> None:
    """Effect of the paraf/sign/return commands: one row per event, in the command's transaction."""
    for event in events:
        record = approval_of(event)
        if record is None:
            continue
        await conn.execute(
            "INSERT INTO approval_records (event_id, renja_id, kind, step, version, content_sha256, actor_name,"
            " actor_nip, actor_role, recorded_at, note, warnings_acknowledged, key_id, public_key_b64,"
            " signature_b64) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15)",
            record.event_id,
            record.renja_id,
            record.kind,
            record.step,
            record.version,
            record.content_sha256,
            record.actor_name,
            record.actor_nip,
            record.actor_role,
            record.recorded_at,
            record.note,
            json.dumps(record.warnings_acknowledged),
            record.key_id,
            record.public_key_b64,
            record.signature_b64,
        )


_SELECT = (
    "SELECT event_id, renja_id, kind, step, version, content_sha256, actor_name, actor_nip, actor_role,"
    " recorded_at, note, warnings_acknowledged::text AS warnings_acknowledged, key_id, public_key_b64,"
    " signature_b64 FROM approval_records"
)


def _public(row: Any) -> ApprovalPublic:
    data = dict(row)
    data["warnings_acknowledged"] = json.loads(data["warnings_acknowledged"])
    return ApprovalPublic.model_validate(data)


async def list_approvals(conn: asyncpg.Connection, renja_id: UUID) -> list[ApprovalPublic]:
    """A Renja's parafs, signatures and returns, oldest first."""
    rows = await conn.fetch(_SELECT + " WHERE renja_id = $1 ORDER BY recorded_at, event_id", renja_id)
    return [_public(r) for r in rows]


async def signatures_matching(
    conn: asyncpg.Connection, content_sha256: str, signature_b64: str
) -> list[ApprovalPublic]:
    """Recorded signatures with exactly this content hash and signature (for ``POST /verify``)."""
    rows = await conn.fetch(
        _SELECT + " WHERE kind = 'signature' AND signature_b64 = $1 AND content_sha256 = $2 ORDER BY recorded_at",
        signature_b64,
        content_sha256,
    )
    return [_public(r) for r in rows]
