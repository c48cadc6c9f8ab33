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
