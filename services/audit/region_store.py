"""The SQL of the region-wide view: the cycles of a plan year with their folded state, and the blocking
findings of their drafts, read from the live audit projection (``services.audit.tables.LIVE``).

Computed on read, not kept in a table of its own: the waiting time depends on the moment asked about,
and everything else is already in ``audit_cycles.state`` (the one fold) and ``audit_events``. A read is
bounded: one plan year (or all), at most ``limit`` cycles, and two queries in one snapshot.
"""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

import asyncpg

from services.audit.region import CycleFacts
from services.audit.tables import LIVE, TableSet
from shared.sop import RenjaState


async def load_region_cycles(
    conn: asyncpg.Connection,
    *,
    fiscal_year: int | None = None,
    current_step: int | None = None,
    limit: int = 5000,
    tables: TableSet = LIVE,
) -> tuple[list[CycleFacts], bool]:
    """The cycles of ``fiscal_year`` (None: every year), optionally only those waiting for ``current_step``,
    ordered by OPD code and name, at most ``limit``; and whether more matched (truncated).

    Reads in one REPEATABLE READ snapshot, so the drafts' findings belong to the states read.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(
            f"SELECT renja_id, state::text AS state, first_at, last_at FROM {tables.cycles}"
            " WHERE ($1::int IS NULL OR fiscal_year = $1) AND ($2::int IS NULL OR current_step = $2)"
            " ORDER BY state->>'opd_code' NULLS LAST, opd, fiscal_year, renja_id LIMIT $3",
            fiscal_year,
            current_step,
            limit + 1,
        )
        truncated = len(rows) > limit
        rows = rows[:limit]
        ids = [r["renja_id"] for r in rows]
        findings = await conn.fetch(
            f"SELECT renja_id, draft_version, COALESCE((event->>'blocking_findings')::int, 0) AS blocking"
            f" FROM {tables.events} WHERE renja_id = ANY($1::uuid[]) AND event_type LIKE 'renja.DraftCreated.%'"
            " AND draft_version IS NOT NULL",
            ids,
        )
    blocking: dict[UUID, dict[int, int]] = defaultdict(dict)
    for f in findings:
        blocking[f["renja_id"]][f["draft_version"]] = f["blocking"]
    cycles = [
        CycleFacts(
            renja_id=r["renja_id"],
            state=RenjaState.model_validate_json(r["state"]),
            first_at=r["first_at"],
            last_at=r["last_at"],
            draft_blocking=blocking.get(r["renja_id"], {}),
        )
        for r in rows
    ]
    return cycles, truncated


async def plan_years(conn: asyncpg.Connection, tables: TableSet = LIVE) -> list[int]:
    """The plan years that have at least one cycle, newest first."""
    rows = await conn.fetch(
        f"SELECT DISTINCT fiscal_year FROM {tables.cycles} WHERE fiscal_year IS NOT NULL ORDER BY fiscal_year DESC"
    )
    return [r["fiscal_year"] for r in rows]
