"""The directive service's tables, SQL in one place: ``cycles`` and ``directives``.

Owns ``cycles``: one row per started cycle, at most one *open* (``cancelled_at`` NULL) cycle per OPD name
(``lower(opd)``) and fiscal year — enforced by the partial unique index ``cycles_one_open_per_opd_year``
(migration 0002), so two heads starting the same cycle at once cannot both succeed. Owns ``directives``:
the text of every arahan, instruksi and perintah (primary key = the ``DirectiveIssued`` event id).
Every write runs in a command's transaction (``services.directive.service``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg

from services.directive.schemas import CyclePublic, DirectivePublic
from shared.events import DirectiveIssued


class OpenCycle(NamedTuple):
    """An open cycle that blocks starting another one: its id and the OPD name it was started with."""

    renja_id: UUID
    opd: str


async def insert_cycle(
    conn: asyncpg.Connection, renja_id: UUID, opd: str, fiscal_year: int, started_at: datetime
) -> bool:
    """Insert the cycle row; False (nothing written) when an open cycle for ``lower(opd)`` and
    ``fiscal_year`` exists. Runs in a savepoint, so the caller's transaction stays usable either way."""
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO cycles (renja_id, opd, fiscal_year, started_at) VALUES ($1, $2, $3, $4)",
                renja_id,
                opd,
                fiscal_year,
                started_at,
            )
    except asyncpg.UniqueViolationError:
        return False
    return True


async def open_cycle(conn: asyncpg.Connection, opd: str, fiscal_year: int) -> OpenCycle | None:
    """The open (not cancelled) cycle for ``opd`` (compared case-insensitively) and ``fiscal_year``, if any."""
    row = await conn.fetchrow(
        "SELECT renja_id, opd FROM cycles WHERE lower(opd) = lower($1) AND fiscal_year = $2 AND cancelled_at IS NULL",
        opd,
        fiscal_year,
    )
    return None if row is None else OpenCycle(row["renja_id"], row["opd"])


async def insert_directive(conn: asyncpg.Connection, event: DirectiveIssued) -> None:
    """Keep one directive's text, level, addressee and issuer (``"name (nip)"``)."""
    await conn.execute(
        "INSERT INTO directives VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        event.event_id,
        event.renja_id,
        event.level,
        event.text,
        event.addressee_role,
        event.addressee_name,
        f"{event.actor.name} ({event.actor.nip})",
        event.occurred_at,
    )


async def mark_cancelled(conn: asyncpg.Connection, renja_id: UUID, cancelled_at: datetime) -> None:
    """Mark the cycle cancelled: it no longer counts as the open cycle of its OPD and year."""
    await conn.execute("UPDATE cycles SET cancelled_at = $2 WHERE renja_id = $1", renja_id, cancelled_at)


async def list_cycles(conn: asyncpg.Connection) -> list[CyclePublic]:
    """Every cycle with its folded status and due step, oldest first."""
    rows = await conn.fetch(
        "SELECT c.renja_id, c.opd, c.fiscal_year, c.started_at, p.state->>'status' AS status,"
        " (p.state->>'due_step')::int AS due_step"
        " FROM cycles c JOIN process_state p USING (renja_id) ORDER BY c.started_at"
    )
    return [CyclePublic(**dict(r)) for r in rows]


async def list_directives(conn: asyncpg.Connection, renja_id: UUID) -> list[DirectivePublic]:
    """The directives of one cycle in the order they were issued (empty for an unknown Renja)."""
    rows = await conn.fetch("SELECT * FROM directives WHERE renja_id = $1 ORDER BY issued_at", renja_id)
    return [DirectivePublic(**{k: v for k, v in dict(r).items() if k != "renja_id"}) for r in rows]
