"""The agency's working-minute calendar (shared by the audit timeline and the notifier's step timers): how
many SOP *mutu baku* minutes lie between two instants, and when a number of them has elapsed.

This module owns the one rule every SOP time standard is measured with (DESIGN.md, "Time"): a duration
counts only the minutes inside office hours on working days in Asia/Jakarta. Weekends, Indonesian public
holidays (python ``holidays``, country ``ID``) and the configured *cuti bersama* (collective leave days
decreed yearly for civil servants by the SKB of three ministers) are not working time.

Configurable assumptions (pass your own to :class:`WorkCalendar`):

- office hours default to Mon-Thu 07:30-16:00 and Fri 07:30-16:30 Asia/Jakarta, with no lunch break
  subtracted (the SOP does not say; a break can be modelled only by splitting the standard, so we keep
  one window per day);
- *cuti bersama* default to none: the decree changes every year, so the agency lists them explicitly
  (``cuti_bersama_from_library`` offers the library's ``government`` category as a starting point).

Pure: no clock, no I/O. The holiday table is computed lazily per year by the library.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holidays_lib

OfficeHours = Mapping[int, tuple[time, time]]
"""Weekday (``date.weekday()``: Monday = 0 … Sunday = 6) → (start, end) local wall-clock times."""

DEFAULT_TZ = "Asia/Jakarta"

DEFAULT_OFFICE_HOURS: OfficeHours = {
    0: (time(7, 30), time(16, 0)),
    1: (time(7, 30), time(16, 0)),
    2: (time(7, 30), time(16, 0)),
    3: (time(7, 30), time(16, 0)),
    4: (time(7, 30), time(16, 30)),
}
"""Assumed office hours of a regional government (5-day week, no break subtracted): 510 min Mon-Thu, 540 Fri;
the SOP file's `office_hours` replace them."""


def indonesian_public_holidays() -> Container[date]:
    """Indonesia's public holidays (``holidays.country_holidays('ID')``, lazily expanding by year)."""
    result: Container[date] = holidays_lib.country_holidays("ID")
    return result


def cuti_bersama_from_library(years: Iterable[int]) -> frozenset[date]:
    """The library's *cuti bersama* (Indonesia, category ``government``) for ``years``, as plain dates.

    A convenience for building ``extra_days_off``; the authoritative list is the year's SKB decree.
    """
    table = holidays_lib.country_holidays("ID", years=list(years), categories=("government",))
    return frozenset(table.keys())


class WorkCalendar:
    """Working time of one agency: office hours per weekday in one zone, minus days off.

    Invariant: a working minute is counted at most once, and only if it lies in ``[start, end)`` of the
    local office window of a day that is a configured weekday, not a public holiday and not an extra day
    off. Office-hour windows must satisfy ``start < end`` within the same local day.
    """

    def __init__(
        self,
        tz: str = DEFAULT_TZ,
        office_hours: OfficeHours | None = None,
        holidays: Container[date] | None = None,
        extra_days_off: Collection[date] = frozenset(),
    ) -> None:
        """Build a calendar.

        ``tz``: IANA zone name of the office; ``office_hours``: see :data:`OfficeHours` (default
        :data:`DEFAULT_OFFICE_HOURS`); ``holidays``: any ``date in holidays`` container (default
        :func:`indonesian_public_holidays`); ``extra_days_off``: *cuti bersama* and other local days off.

        Raises ``ValueError`` for a weekday outside 0..6 or a window whose start is not before its end,
        and ``zoneinfo.ZoneInfoNotFoundError`` for an unknown zone.
        """
        self.tz = ZoneInfo(tz)
        hours = dict(DEFAULT_OFFICE_HOURS if office_hours is None else office_hours)
        for weekday, (start, end) in hours.items():
            if not 0 <= weekday <= 6:
                raise ValueError(f"weekday must be 0..6, got {weekday}")
            if not start < end:
                raise ValueError(f"office window for weekday {weekday} must have start < end")
        self.office_hours: dict[int, tuple[time, time]] = hours
        self.holidays: Container[date] = indonesian_public_holidays() if holidays is None else holidays
        self.extra_days_off: frozenset[date] = frozenset(extra_days_off)

    def is_working_day(self, day: date) -> bool:
        """True if ``day`` (a local date) has office hours and is neither a holiday nor an extra day off."""
        return day.weekday() in self.office_hours and day not in self.extra_days_off and day not in self.holidays

    def office_window(self, day: date) -> tuple[datetime, datetime] | None:
        """The aware (local zone) office window of ``day``, or ``None`` if it is not a working day."""
        if not self.is_working_day(day):
            return None
        start, end = self.office_hours[day.weekday()]
        return (
            datetime.combine(day, start, tzinfo=self.tz),
            datetime.combine(day, end, tzinfo=self.tz),
        )

    def working_minutes(self, start: datetime, end: datetime) -> float:
        """Working minutes (float, sub-minute precision) between two aware instants.

        ``start`` and ``end`` may be in any zone; they are compared as instants and the days are taken
        in the calendar's zone. Returns 0.0 for a zero-length interval.

        Raises ``ValueError`` if either datetime is naive or ``end < start``.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        if end < start:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        seconds = 0.0
        day = start.astimezone(self.tz).date()
        last_day = end.astimezone(self.tz).date()
        while day <= last_day:
            window = self.office_window(day)
            if window is not None:
                lo = max(start, window[0])
                hi = min(end, window[1])
                if hi > lo:
                    seconds += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return seconds / 60.0

    def add_working_minutes(self, start: datetime, minutes: float) -> datetime:
        """The earliest instant (in the calendar's zone) at which ``minutes`` working minutes after
        ``start`` have elapsed, e.g. the due time of a step whose input appeared at ``start``.

        ``minutes == 0`` returns ``start`` unchanged (even outside office hours).
        Raises ``ValueError`` for a naive ``start``, negative ``minutes``, or a calendar with no working
        day in the next ten years (misconfiguration).
        """
        _require_aware(start, "start")
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        if minutes == 0:
            return start
        remaining = timedelta(minutes=minutes)
        local_start = start.astimezone(self.tz)
        day = local_start.date()
        limit = day + timedelta(days=3660)
        while day <= limit:
            window = self.office_window(day)
            if window is not None:
                lo = max(local_start, window[0])
                if window[1] > lo:
                    available = window[1] - lo
                    if remaining <= available:
                        return lo + remaining
                    remaining -= available
            day += timedelta(days=1)
        raise ValueError("no working time found within ten years; check the office hours and days off")


_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def calendar_from_sop(sop: Any, holidays: Container[date] | None = None) -> WorkCalendar:
    """The calendar configured in the shared SOP file (``shared.sop.load_sop().office_hours``).

    Duck-typed on ``sop.office_hours`` with ``timezone``, ``days`` (weekday name such as ``"monday"`` →
    object or mapping with ``start``/``end`` times) and ``cuti_bersama`` (dates). ``holidays`` as in
    :class:`WorkCalendar`. Raises ``ValueError`` for an unknown weekday name or a bad window.
    """
    hours_cfg = sop.office_hours
    office: dict[int, tuple[time, time]] = {}
    for name, hours in dict(hours_cfg.days).items():
        key = str(name).lower()
        if key not in _WEEKDAY_NAMES:
            raise ValueError(f"unknown weekday {name!r} in office hours")
        start = hours["start"] if isinstance(hours, Mapping) else hours.start
        end = hours["end"] if isinstance(hours, Mapping) else hours.end
        office[_WEEKDAY_NAMES.index(key)] = (start, end)
    return WorkCalendar(
        tz=str(hours_cfg.timezone),
        office_hours=office,
        holidays=holidays,
        extra_days_off=frozenset(getattr(hours_cfg, "cuti_bersama", ()) or ()),
    )


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
