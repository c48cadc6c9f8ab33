"""Each service's folded copy of every Renja's SOP state (``process_state``): load, save, fold a consumed
event. The command path that appends to it is ``shared.command``.

Invariants:
- ``process_state.version`` counts every event this service has applied to a Renja (its own, appended by
  commands, and other services', consumed from Kafka); it only moves by a conditional update
  ``WHERE version = expected`` (or the first insert), so a command that decided on a stale state fails
  with ``ConcurrencyConflict`` and is retried on the fresh state — no Python locks;
- a consumed event from another service is folded once (the inbox row commits with the new state);
- a consumed event the SOP would not have decided on the stored state (``shared.sop.ensure_foldable``:
  an unknown Renja, the wrong role, a step not due, a second completion) is never folded: it raises
  ``UnfoldableEvent``, which the consumer dead-letters with reason ``out_of_order``.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
import structlog

from shared.events import Event
from shared.eventstore import ConcurrencyConflict
from shared.sop import RenjaState, SopDefinition, ensure_foldable, evolve

log = structlog.get_logger(__name__)


async def load_state(conn: asyncpg.Connection, renja_id: UUID, *, for_update: bool = False) -> tuple[RenjaState, int]:
    """The folded state of ``renja_id`` and its version (a fresh ``RenjaState`` at version 0 if unseen)."""
    row = await conn.fetchrow(
        "SELECT version, state::text AS state FROM process_state WHERE renja_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        renja_id,
    )
    if row is None:
        return RenjaState(), 0
    return RenjaState.model_validate_json(row["state"]), int(row["version"])


async def save_state(
    conn: asyncpg.Connection, renja_id: UUID, state: RenjaState, *, expected_version: int, new_version: int
) -> None:
    """Store ``state`` at ``new_version`` if the stored version is still ``expected_version``.

    Raises ``ConcurrencyConflict`` otherwise (someone else moved the Renja meanwhile).
    """
    data = state.model_dump_json()
    if expected_version == 0:
        done = await conn.fetchval(
            "INSERT INTO process_state (renja_id, version, state) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (renja_id) DO NOTHING RETURNING 1",
            renja_id,
            new_version,
            data,
        )
    else:
        done = await conn.fetchval(
            "UPDATE process_state SET version = $2, state = $3::jsonb, updated_at = now()"
            " WHERE renja_id = $1 AND version = $4 RETURNING 1",
            renja_id,
            new_version,
            data,
            expected_version,
        )
    if done is None:
        raise ConcurrencyConflict(renja_id, expected_version)


async def fold_consumed(conn: asyncpg.Connection, event: Event, sop: SopDefinition) -> RenjaState:
    """Fold one consumed event into the stored state (the consumer's transaction holds the inbox row).

    The row lock taken here serialises this fold with concurrent commands on the same Renja.
    Raises ``shared.sop.UnfoldableEvent`` (nothing folded) for an out-of-order transition; an anomaly
    ``evolve`` absorbs (anything after a cancellation) is folded and logged.
    """
    state, version = await load_state(conn, event.renja_id, for_update=True)
    absorbed = ensure_foldable(state, event, sop)
    if absorbed is not None:
        log.info("anomaly_absorbed", kind=absorbed.kind, step=absorbed.step, detail=absorbed.message)
    new_state = evolve(state, event, sop)
    await save_state(conn, event.renja_id, new_state, expected_version=version, new_version=version + 1)
    return new_state
