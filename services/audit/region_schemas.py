"""The region-wide view's response models and CSV: one shape for the API, the CSV export and the CLI.

The CSV has exactly the API's rows and columns (``REGION_CSV_COLUMNS`` = the fields of
:class:`RegionCyclePublic`), values as the JSON has them: times ISO 8601 UTC, minutes as decimals,
booleans ``true``/``false``, an empty cell for null.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from services.audit.region import RegionRow
from services.audit.region_service import RegionView


class RegionCyclePublic(BaseModel):
    """One OPD's cycle on the region-wide view (working minutes; times UTC)."""

    renja_id: UUID
    opd_code: str | None = Field(description="the OPD's SIPD unit code, as the cycle's arahan recorded it")
    opd_name: str = Field(description="the registry's name for the code, else the arahan's OPD name")
    fiscal_year: int | None = Field(description="the plan year (tahun rencana)")
    status: str = Field(description="in_progress, distributed or cancelled")
    current_step: int | None = Field(description="the SOP step the cycle waits for; null when closed")
    current_step_name: str | None
    waiting_on_role: str | None = Field(description="the role that must act next")
    waiting_since: datetime | None = Field(description="when the current step became due")
    waiting_minutes: float | None = Field(description="working minutes waited so far, up to as_of")
    standard_minutes: int | None = Field(description="the current step's mutu baku, working minutes")
    deadline: datetime | None = Field(description="when the waiting time reaches the mutu baku")
    overdue: bool = Field(description="waiting longer than the mutu baku (the timeline's rule)")
    blocking_findings: int = Field(description="blocking findings on the current draft")
    signed: bool
    distributed: bool
    distributed_at: datetime | None
    returns: int = Field(description="how often the Rancangan Akhir was returned")
    first_at: datetime
    last_at: datetime


class RegionCyclesPublic(BaseModel):
    """The answer of ``GET /region/cycles`` and ``GET /region/menunggu-saya``."""

    as_of: datetime = Field(description="the moment the waiting times are measured to")
    fiscal_year: int | None
    step: int | None
    status: str | None
    truncated: bool = Field(description="more cycles matched than one answer holds")
    count: int
    rows: list[RegionCyclePublic]


REGION_CSV_COLUMNS: tuple[str, ...] = tuple(RegionCyclePublic.model_fields)


def row_public(row: RegionRow) -> RegionCyclePublic:
    return RegionCyclePublic(
        renja_id=row.renja_id,
        opd_code=row.opd_code,
        opd_name=row.opd_name,
        fiscal_year=row.fiscal_year,
        status=row.status,
        current_step=row.current_step,
        current_step_name=row.current_step_name,
        waiting_on_role=row.waiting_on_role,
        waiting_since=row.waiting_since,
        waiting_minutes=row.waiting_minutes,
        standard_minutes=row.standard_minutes,
        deadline=row.deadline,
        overdue=row.overdue,
        blocking_findings=row.blocking_findings,
        signed=row.signed,
        distributed=row.distributed,
        distributed_at=row.distributed_at,
        returns=row.returns,
        first_at=row.first_at,
        last_at=row.last_at,
    )


def region_public(view: RegionView) -> RegionCyclesPublic:
    rows = [row_public(r) for r in view.rows]
    return RegionCyclesPublic(
        as_of=view.as_of,
        fiscal_year=view.fiscal_year,
        step=view.step,
        status=view.status,
        truncated=view.truncated,
        count=len(rows),
        rows=rows,
    )


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def region_csv(public: RegionCyclesPublic) -> str:
    """The rows as CSV: a header of :data:`REGION_CSV_COLUMNS`, then one line per row (JSON values)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REGION_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in public.rows:
        writer.writerow({k: _cell(v) for k, v in row.model_dump(mode="json").items()})
    return out.getvalue()
