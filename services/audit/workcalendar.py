"""Moved to ``shared.workcalendar`` (one working-minute calendar for the audit and the notifier's timers);
this name stays so that older imports keep working."""

from shared.workcalendar import (
    DEFAULT_OFFICE_HOURS,
    DEFAULT_TZ,
    OfficeHours,
    WorkCalendar,
    calendar_from_sop,
    cuti_bersama_from_library,
    indonesian_public_holidays,
)

__all__ = [
    "DEFAULT_OFFICE_HOURS",
    "DEFAULT_TZ",
    "OfficeHours",
    "WorkCalendar",
    "calendar_from_sop",
    "cuti_bersama_from_library",
    "indonesian_public_holidays",
]
