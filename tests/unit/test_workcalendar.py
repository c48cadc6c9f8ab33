"""Working minutes on the agency calendar, checked against hand-computed fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.workcalendar import WorkCalendar, calendar_from_sop, cuti_bersama_from_library

pytestmark = pytest.mark.unit

WIB = ZoneInfo("Asia/Jakarta")


def wib(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=WIB)


def test_fixture_dates_are_what_the_library_says() -> None:
    public = holidays.country_holidays("ID", years=[2026])
    assert date(2026, 8, 17) in public  # Independence Day, a Monday
    assert date(2026, 8, 17).weekday() == 0
    assert date(2026, 2, 17) in public  # Lunar New Year, a Tuesday
    assert date(2026, 2, 16) not in public  # the cuti bersama before it is not a public holiday
    assert date(2026, 2, 16) in cuti_bersama_from_library([2026])


def test_interval_across_night_weekend_and_public_holiday() -> None:
    # Thu 13 Aug 2026 14:00 WIB -> Tue 18 Aug 2026 09:00 WIB, Mon 17 Aug = Hari Kemerdekaan.
    #   Thu 14:00-16:00  = 120
    #   Fri 07:30-16:30  = 540
    #   Sat, Sun         =   0
    #   Mon (holiday)    =   0
    #   Tue 07:30-09:00  =  90
    #   total            = 750
    start_utc = datetime(2026, 8, 13, 7, 0, tzinfo=UTC)  # = 14:00 WIB, input in another zone
    assert WorkCalendar().working_minutes(start_utc, wib(2026, 8, 18, 9, 0)) == 750.0


def test_interval_across_one_night() -> None:
    # Tue 4 Aug 2026 15:00 -> Wed 5 Aug 08:00: 60 (15:00-16:00) + 30 (07:30-08:00) = 90
    assert WorkCalendar().working_minutes(wib(2026, 8, 4, 15), wib(2026, 8, 5, 8)) == 90.0


def test_cuti_bersama_day_is_excluded_only_when_configured() -> None:
    # Fri 13 Feb 2026 15:00 -> Wed 18 Feb 08:00; Mon 16 = cuti bersama, Tue 17 = Imlek (public).
    #   Fri 15:00-16:30 = 90, Mon 07:30-16:00 = 510 (or 0 as cuti bersama), Tue 0, Wed 07:30-08:00 = 30
    start, end = wib(2026, 2, 13, 15), wib(2026, 2, 18, 8)
    assert WorkCalendar().working_minutes(start, end) == 90 + 510 + 30
    with_cuti = WorkCalendar(extra_days_off={date(2026, 2, 16)})
    assert with_cuti.working_minutes(start, end) == 90 + 30


def test_sub_minute_precision() -> None:
    cal = WorkCalendar()
    assert cal.working_minutes(wib(2026, 8, 5, 10), wib(2026, 8, 5, 10, 0, 30)) == 0.5
    # starts before the office opens: only 07:30:00-07:30:45 counts
    assert cal.working_minutes(wib(2026, 8, 5, 7), wib(2026, 8, 5, 7, 30, 45)) == 0.75


def test_zero_length_interval_is_zero() -> None:
    cal = WorkCalendar()
    assert cal.working_minutes(wib(2026, 8, 5, 10), wib(2026, 8, 5, 10)) == 0.0
    assert cal.working_minutes(wib(2026, 8, 5, 3), wib(2026, 8, 5, 3)) == 0.0


def test_interval_entirely_outside_office_hours_is_zero() -> None:
    # Fri 16:30 -> Mon 07:30 is the whole weekend gap
    assert WorkCalendar().working_minutes(wib(2026, 8, 7, 16, 30), wib(2026, 8, 10, 7, 30)) == 0.0


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError, match="before start"):
        WorkCalendar().working_minutes(wib(2026, 8, 5, 10), wib(2026, 8, 5, 9))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WorkCalendar().working_minutes(datetime(2026, 8, 5, 9), wib(2026, 8, 5, 10))


def test_custom_office_hours_replace_the_default() -> None:
    saturday_too = {wd: (time(8), time(12)) for wd in range(6)}
    # Fri 7 Aug 11:00 -> Sat 8 Aug 09:00: 60 (Fri 11-12) + 60 (Sat 08-09) = 120
    cal = WorkCalendar(office_hours=saturday_too)
    assert cal.working_minutes(wib(2026, 8, 7, 11), wib(2026, 8, 8, 9)) == 120.0


def test_bad_office_window_is_refused() -> None:
    with pytest.raises(ValueError, match="start < end"):
        WorkCalendar(office_hours={0: (time(16), time(8))})


def test_add_working_minutes_skips_weekend_and_holiday() -> None:
    # the inverse of the 750-minute fixture above
    assert WorkCalendar().add_working_minutes(wib(2026, 8, 13, 14), 750) == wib(2026, 8, 18, 9)


def test_add_zero_working_minutes_returns_start() -> None:
    start = wib(2026, 8, 15, 3)  # a Saturday night
    assert WorkCalendar().add_working_minutes(start, 0) == start


@given(
    offset_minutes=st.integers(min_value=0, max_value=60 * 24 * 60),
    minutes=st.floats(min_value=0.5, max_value=20_000, allow_nan=False),
)
def test_add_then_count_round_trips(offset_minutes: int, minutes: float) -> None:
    cal = WorkCalendar()
    start = wib(2026, 1, 1) + timedelta(minutes=offset_minutes)
    due = cal.add_working_minutes(start, minutes)
    assert cal.working_minutes(start, due) == pytest.approx(minutes, abs=1e-6)


def test_calendar_from_the_shared_sop_file_equals_the_default() -> None:
    from shared.sop import load_sop

    cal = calendar_from_sop(load_sop())
    assert cal.tz.key == "Asia/Jakarta"
    assert cal.office_hours == WorkCalendar().office_hours


def test_calendar_from_sop_takes_cuti_bersama() -> None:
    hours = SimpleNamespace(
        timezone="Asia/Jakarta",
        days={"monday": {"start": time(8), "end": time(12)}},
        cuti_bersama=(date(2026, 8, 10),),
    )
    cal = calendar_from_sop(SimpleNamespace(office_hours=hours))
    # Mon 3 Aug 2026 is a working Monday, Mon 10 Aug is the configured cuti bersama
    assert cal.working_minutes(wib(2026, 8, 3), wib(2026, 8, 11)) == 240.0
