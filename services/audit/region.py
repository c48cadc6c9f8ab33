"""The region-wide view: one row per Renja cycle of every OPD, for Bappeda and the auditor (issue 12, item 4).

A row says which OPD (SIPD unit code and name), which plan year, which step the cycle waits for and on
whom (the step's role), how long it has waited in working minutes against that step's *mutu baku*,
whether it is overdue, how many blocking findings its current draft has, and whether it is signed and
distributed.

Where each value comes from (nothing here is a second fold):

- the folded state every service keeps (``shared.sop.RenjaState``, stored per cycle by the projector):
  OPD code and name as the arahan recorded them, plan year, status, due step and since when, signature,
  distribution, returns;
- the waiting time and the overdue flag: :func:`services.audit.timeline.open_step`, the function the
  timeline's waiting step uses (one calculation, one calendar); the deadline is
  ``WorkCalendar.add_working_minutes(due since, mutu baku)``;
- the blocking findings: those the documents service counted on the cycle's current draft (the
  ``blocking_findings`` of the ``DraftCreated`` of the Rancangan Akhir if there is one, else of the
  Rancangan Awal), passed in as ``draft_blocking`` (draft version → count);
- the OPD's name: the region registry when one is wired (:data:`OpdNameLookup`, a seam: any callable
  ``code -> name | None``), else the name the cycle's arahan carried, else the code.

Pure: state, step table, calendar, lookup and ``as_of`` are passed in; no clock, no I/O. The SQL is
``services.audit.region_store``, the routes ``services.audit.region_api``, the page
``services.audit.region_page``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args
from uuid import UUID

from services.audit.timeline import StepSpec, open_step
from services.audit.workcalendar import WorkCalendar
from shared.sop import RenjaState

OpdNameLookup = Callable[[str], str | None]
"""The region registry's seam: an OPD's official name by its SIPD unit code, or None if unknown."""

RegionStatus = Literal["in_progress", "overdue", "on_time", "distributed", "cancelled"]
"""The status filter: ``in_progress`` every open cycle, ``overdue`` the open ones past their step's
mutu baku, ``on_time`` the open ones within it, ``distributed`` and ``cancelled`` the closed ones."""

REGION_STATUSES: tuple[RegionStatus, ...] = get_args(RegionStatus)


@dataclass(frozen=True, slots=True)
class CycleFacts:
    """What the store holds of one cycle: its folded state, first/last event times (UTC) and the
    blocking findings of each of its drafts (draft version → count, from the ``DraftCreated`` events)."""

    renja_id: UUID
    state: RenjaState
    first_at: datetime
    last_at: datetime
    draft_blocking: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class RegionRow:
    """One cycle on the region-wide page (see the module docstring for the sources).

    Minutes are working minutes (rounded to 0.1); times are aware (UTC as stored). The waiting fields are
    None for a closed cycle (distributed or cancelled), which waits on nobody.
    ``waiting_minutes``/``overdue`` are measured up to the ``as_of`` the rows were derived for.
    """

    renja_id: UUID
    opd_code: str | None
    opd_name: str
    fiscal_year: int | None
    status: str
    current_step: int | None
    current_step_name: str | None
    waiting_on_role: str | None
    waiting_since: datetime | None
    waiting_minutes: float | None
    standard_minutes: int | None
    deadline: datetime | None
    overdue: bool
    blocking_findings: int
    signed: bool
    distributed: bool
    distributed_at: datetime | None
    returns: int
    first_at: datetime
    last_at: datetime


def opd_display_name(state: RenjaState, lookup: OpdNameLookup | None) -> str:
    """The OPD's name: the registry's (by code), else the arahan's ``opd``, else the code, else ``"–"``."""
    code = state.opd_code
    if code and lookup is not None:
        name = lookup(code)
        if name:
            return name
    return state.opd or code or "–"


def current_blocking_findings(state: RenjaState, draft_blocking: Mapping[int, int]) -> int:
    """The blocking findings of the cycle's current draft: the Rancangan Akhir's (as folded), else the
    Rancangan Awal's (``draft_blocking[awal_version]``); 0 before any draft."""
    if state.akhir_version is not None:
        return state.akhir_blocking_findings
    if state.awal_version is not None:
        return draft_blocking.get(state.awal_version, 0)
    return 0


def region_row(
    facts: CycleFacts,
    steps: Mapping[int, StepSpec],
    calendar: WorkCalendar,
    as_of: datetime,
    opd_name: OpdNameLookup | None = None,
) -> RegionRow:
    """Derive one cycle's row as it stands at ``as_of`` (aware).

    ``steps``: the SOP step table by number (``timeline.steps_from_sop``). Raises ``ValueError`` for a
    naive ``as_of`` and ``KeyError`` for a due step missing from ``steps``.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    state = facts.state
    waiting = open_step(state, steps, calendar, as_of)
    deadline = None
    minutes = None if waiting is None or waiting.elapsed_minutes is None else round(waiting.elapsed_minutes, 1)
    if waiting is not None and waiting.enabled_at is not None:
        deadline = calendar.add_working_minutes(waiting.enabled_at, waiting.standard_minutes)
    return RegionRow(
        renja_id=facts.renja_id,
        opd_code=state.opd_code,
        opd_name=opd_display_name(state, opd_name),
        fiscal_year=state.fiscal_year,
        status=state.status,
        current_step=None if waiting is None else waiting.number,
        current_step_name=None if waiting is None else waiting.name,
        waiting_on_role=None if waiting is None else waiting.role,
        waiting_since=None if waiting is None else waiting.enabled_at,
        waiting_minutes=minutes,
        standard_minutes=None if waiting is None else waiting.standard_minutes,
        deadline=deadline,
        overdue=bool(waiting is not None and waiting.overdue),
        blocking_findings=current_blocking_findings(state, facts.draft_blocking),
        signed=state.signed,
        distributed=state.status == "distributed",
        distributed_at=state.distributed_at,
        returns=state.returns,
        first_at=facts.first_at,
        last_at=facts.last_at,
    )


def matches(row: RegionRow, *, step: int | None = None, status: RegionStatus | None = None) -> bool:
    """Whether ``row`` passes the page's filters: the step it waits for, and :data:`RegionStatus`."""
    if step is not None and row.current_step != step:
        return False
    if status is None:
        return True
    is_open = row.status == "in_progress"
    return {
        "in_progress": is_open,
        "overdue": is_open and row.overdue,
        "on_time": is_open and not row.overdue,
        "distributed": row.status == "distributed",
        "cancelled": row.status == "cancelled",
    }[status]


def sort_key(row: RegionRow) -> tuple[bool, str, str, int, str]:
    """Rows by OPD (code, then name; cycles without a code last), plan year and Renja id: a stable order
    for the page and the CSV, the store's order (``region_store.load_region_cycles``)."""
    return (row.opd_code is None, row.opd_code or "", row.opd_name, row.fiscal_year or 0, str(row.renja_id))


def region_rows(
    cycles: Iterable[CycleFacts],
    steps: Mapping[int, StepSpec],
    calendar: WorkCalendar,
    as_of: datetime,
    *,
    opd_name: OpdNameLookup | None = None,
    step: int | None = None,
    status: RegionStatus | None = None,
) -> list[RegionRow]:
    """The rows of ``cycles`` at ``as_of`` that pass the filters (:func:`matches`), in :func:`sort_key` order."""
    rows = (region_row(c, steps, calendar, as_of, opd_name) for c in cycles)
    return sorted((r for r in rows if matches(r, step=step, status=status)), key=sort_key)


def waiting_on(rows: Sequence[RegionRow], role: str, opd: str | None) -> list[RegionRow]:
    """*Menunggu saya*: the open cycles whose current step is ``role``'s, in the caller's OPD.

    ``opd``: the caller's OPD as their token names it (the SIPD unit code; the OPD's name is accepted
    too); None (a token without an ``opd`` claim) means every OPD, as in a one-OPD deployment.
    """
    return [
        r
        for r in rows
        if r.status == "in_progress" and r.waiting_on_role == role and (opd is None or opd in (r.opd_code, r.opd_name))
    ]
