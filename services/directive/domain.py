"""The directive service's own rule beyond the shared decider: one open Renja cycle per OPD and plan year.

Owns (pure): ``normalise_opd``, the form of an OPD name under which two spellings count as the same agency,
and ``EmptyOpdName``, the refusal of a name that is empty once normalised.
The SOP starts one Renja per Perangkat Daerah and year (step 1, *arahan*); a second cycle for the same OPD
would split the year's plan in two. Names typed by people differ in invisible ways (a trailing space, a
zero-width character pasted from a web page, a decomposed accent), so the name is normalised before the
rule is checked, and the database compares it case-insensitively (``lower(opd)``, migration 0002).
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.sop import DomainError


class EmptyOpdName(DomainError):
    """The OPD name is empty once spaces and invisible characters are removed (HTTP 422)."""

    code = "invalid_request"
    http_status = 422


def normalise_opd(name: str) -> str:
    """``name`` without format characters (Unicode category Cf: zero-width space/joiners, BOM, soft
    hyphen, direction marks), in NFC, stripped, with every run of whitespace collapsed to one space.

    Case is kept (the name is shown as typed); callers compare case-insensitively. May return ``""``
    (the caller refuses that: a name of only invisible characters names no agency).
    """
    visible = "".join(ch for ch in name if unicodedata.category(ch) != "Cf")
    return " ".join(unicodedata.normalize("NFC", visible).split())


class PlanYearBegun(DomainError):
    """The plan year (*tahun rencana*) has already begun, or begins within the lead time (HTTP 422): a
    Renja for plan year n+1 is prepared during year n (Permendagri 86/2017), never once n+1 has started."""

    code = "plan_year_begun"
    http_status = 422


class OpdNotAllowed(DomainError):
    """The arahan names an OPD the actor does not belong to, or one the registry does not know (HTTP 403
    for another OPD, 422 for an unknown code: ``http_status`` is set per instance)."""

    code = "opd_not_allowed"
    http_status = 403


class UnknownOpdCode(DomainError):
    """The arahan's ``opd_code`` is not in the region registry (HTTP 422)."""

    code = "unknown_opd"
    http_status = 422


BULAN = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
         "November", "Desember")  # fmt: skip


def tanggal(day: date) -> str:
    """``1 Januari 2027`` — an Indonesian date as the documents write it."""
    return f"{day.day} {BULAN[day.month - 1]} {day.year}"


def ensure_plan_year_open(plan_year: int, now: datetime, *, lead_days: int, timezone: str) -> None:
    """Refuse (``PlanYearBegun``, 422) a cycle for ``plan_year`` once ``now`` (aware; the command unit's
    clock, never the wall clock here) is within ``lead_days`` of 1 January of that year in ``timezone``.

    ``lead_days`` = 0: the last day to open a cycle for plan year n+1 is 31 December of year n.
    """
    local_today = now.astimezone(ZoneInfo(timezone)).date()
    starts = date(plan_year, 1, 1)
    deadline = starts - timedelta(days=lead_days)
    if local_today < deadline:
        return
    next_plan_year = local_today.year + 1
    while local_today >= date(next_plan_year, 1, 1) - timedelta(days=lead_days):
        next_plan_year += 1
    lead = f" (dengan tenggang {lead_days} hari sebelum 1 Januari)" if lead_days else ""
    raise PlanYearBegun(
        f"Tahun rencana {plan_year} sudah dimulai pada {tanggal(starts)}{lead}; hari ini {tanggal(local_today)}. "
        f"Renja tahun rencana n disusun pada tahun n-1: siklus untuk tahun rencana {plan_year} tidak dapat "
        f"dibuka lagi. Buka siklus untuk tahun rencana {next_plan_year} atau sesudahnya."
    )
