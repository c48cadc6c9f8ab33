"""The region-wide view's use cases: the rows for the API, the CSV and the page, and *menunggu saya*.

One :class:`RegionService` per audit process, built by ``services.audit.main.create_app`` next to the
:class:`~services.audit.service.AuditService`. Nothing here imports FastAPI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.audit.region import OpdNameLookup, RegionRow, RegionStatus, region_rows, waiting_on
from services.audit.region_store import load_region_cycles, plan_years
from services.audit.timeline import StepSpec, steps_from_sop
from services.audit.workcalendar import WorkCalendar
from shared.sop import SopDefinition

MAX_CYCLES = 5000
"""At most this many cycles in one answer (a region has tens of OPDs; ``truncated`` says if more matched)."""


def utc_now() -> datetime:
    """The wall clock, UTC (the default ``clock``)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RegionView:
    """The rows of one request, as they stood at ``as_of``; ``years``: every plan year with a cycle."""

    rows: list[RegionRow]
    as_of: datetime
    fiscal_year: int | None
    step: int | None
    status: RegionStatus | None
    truncated: bool
    years: list[int]


class RegionService:
    """Reads of the region-wide view from the audit projection.

    ``calendar``: the working calendar the timeline uses; ``opd_name``: the registry's name lookup (None:
    the names the cycles' arahan carried); ``clock``: "now" when a request names no ``as_of``.
    """

    def __init__(
        self,
        *,
        sop: SopDefinition,
        pool: asyncpg.Pool,
        calendar: WorkCalendar,
        opd_name: OpdNameLookup | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_cycles: int = MAX_CYCLES,
    ) -> None:
        self.sop = sop
        self.pool = pool
        self.calendar = calendar
        self.opd_name = opd_name
        self.clock = clock
        self.max_cycles = max_cycles
        self.steps: dict[int, StepSpec] = {s.number: s for s in steps_from_sop(sop)}

    async def cycles(
        self,
        *,
        fiscal_year: int | None = None,
        step: int | None = None,
        status: RegionStatus | None = None,
        as_of: datetime | None = None,
    ) -> RegionView:
        """Every OPD's cycle of ``fiscal_year`` (None: all years) passing the filters, at ``as_of``
        (aware; default: the clock). Raises ``ValueError`` for a naive ``as_of``."""
        at = as_of or self.clock()
        async with self.pool.acquire() as conn:
            cycles, truncated = await load_region_cycles(
                conn, fiscal_year=fiscal_year, current_step=step, limit=self.max_cycles
            )
            years = await plan_years(conn)
        rows = region_rows(cycles, self.steps, self.calendar, at, opd_name=self.opd_name, step=step, status=status)
        return RegionView(rows, at, fiscal_year, step, status, truncated, years)

    async def plan_years(self) -> list[int]:
        """Every plan year with at least one cycle, newest first."""
        async with self.pool.acquire() as conn:
            return await plan_years(conn)

    async def waiting_for(
        self, role: str, opd: str | None, *, fiscal_year: int | None = None, as_of: datetime | None = None
    ) -> RegionView:
        """*Menunggu saya*: the open cycles waiting on ``role`` in OPD ``opd`` (None: every OPD)."""
        view = await self.cycles(fiscal_year=fiscal_year, status="in_progress", as_of=as_of)
        return RegionView(
            waiting_on(view.rows, role, opd), view.as_of, fiscal_year, None, "in_progress", view.truncated, view.years
        )
