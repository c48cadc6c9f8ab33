"""The documents service's own rules: its refusals (domain errors carrying their HTTP status), the
"is it this role's turn" guard it checks before parsing or rendering, and the pure composition of a
Rancangan Akhir (step 7) from the latest draft, the meeting's notulen and the staff's corrections.

Nothing here does I/O: the use cases (``services.documents.service``) load the state and rows and pass
them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.documents.draft import ChangeError, SkippedChange, apply_changes, apply_notulen_changes
from services.documents.findings import RULE_NOTULEN_NOT_APPLIED, Finding, notulen_findings
from services.documents.intake import PAGU_MAX, Row, RowError
from services.documents.store import DraftRecord
from shared.events import RequestedChange, UnitDelivery
from shared.sop import DomainError, Unit

# ======================================================================================================
# Refusals: the same status, code and message as the HTTP answers they replace
# ======================================================================================================


class NotFound(DomainError):
    """Something the request names is not known to this service (HTTP 404)."""

    code = "not_found"
    http_status = 404


class Conflict(DomainError):
    """The request cannot be done in the Renja's current state; retry or reload (HTTP 409)."""

    code = "conflict"
    http_status = 409


class TooLarge(DomainError):
    """An upload beyond the size limit (HTTP 413)."""

    code = "too_large"
    http_status = 413


class InvalidRequest(DomainError):
    """The request's content cannot be used as sent (HTTP 422)."""

    code = "invalid_request"
    http_status = 422


class Unavailable(DomainError):
    """A stored file the service needs is missing; an operator must restore it (HTTP 503)."""

    code = "unavailable"
    http_status = 503


class RowsRefused(DomainError):
    """A unit's rows file has errors (HTTP 422 ``invalid_rows``); ``errors`` lists every one (file, row,
    column). Answered with ``IntakeErrorPublic``, which carries the details."""

    code = "invalid_rows"
    http_status = 422

    def __init__(self, message: str, errors: Sequence[RowError]) -> None:
        super().__init__(message)
        self.errors = tuple(errors)


# ======================================================================================================
# Guards
# ======================================================================================================


def configured_unit(units: Sequence[Unit], code: str) -> Unit:
    """The cycle's unit with ``code`` (``shared.sop.cycle_units``: its OPD's, else the SOP file's);
    ``NotFound`` (404) naming the configured units otherwise."""
    for unit in units:
        if unit.code == code:
            return unit
    known = ", ".join(u.code for u in units)
    raise NotFound(f"Unit {code!r} is not a unit of this cycle's OPD; the units are: {known}.")


def ensure_storable_pagu(delivered: Sequence[UnitDelivery]) -> None:
    """Refuse (422) units whose pagu totals (rupiah) add up beyond what a draft can store (``PAGU_MAX``).

    The Rancangan Awal's pagu total is this sum, stored as bigint: refused at step 4, while a unit can
    still deliver a corrected file, rather than at step 5 when step 4 is closed.
    """
    total = sum(u.pagu_total for u in delivered)
    if total > PAGU_MAX:
        biggest = ", ".join(f"{u.unit} {u.pagu_total:,}" for u in sorted(delivered, key=lambda u: -u.pagu_total)[:3])
        raise InvalidRequest(
            f"The units' pagu totals add up to {total:,} rupiah, beyond the storable {PAGU_MAX:,}; "
            f"correct the largest deliveries ({biggest}) and upload them again."
        )


# ======================================================================================================
# Step 7: the Rancangan Akhir's content
# ======================================================================================================


@dataclass(frozen=True, slots=True)
class AkhirContent:
    """What a new Rancangan Akhir holds before it is hashed and rendered."""

    rows: list[Row]
    applied: list[RequestedChange]
    skipped: list[SkippedChange]
    note: str
    extra_findings: list[Finding]


def akhir_content(
    base: DraftRecord,
    notulen: Sequence[RequestedChange],
    changes: Sequence[RequestedChange],
    note: str,
    *,
    notulen_applied_before: bool,
) -> AkhirContent:
    """The latest draft ``base`` + the meeting's ``notulen`` changes + the staff's ``changes``, in that order.

    The notulen's changes apply one by one (a final record: one that does not fit is reported in the
    note and as a warning finding, never a refusal); the staff's own changes are all or nothing (their
    request: they can correct it), ``InvalidRequest`` (422) otherwise. After a return the notulen is not
    applied again (``notulen_applied_before``), so what it could not apply is carried over as is.
    """
    rows, applied, skipped = apply_notulen_changes(base.rows, notulen)
    try:
        rows = apply_changes(rows, changes)
    except ChangeError as exc:
        raise InvalidRequest(f"A change cannot be applied to draft version {base.meta.version}: {exc}") from exc
    carried = [f for f in base.findings if f.rule == RULE_NOTULEN_NOT_APPLIED] if notulen_applied_before else []
    if skipped:
        listed = "; ".join(f"{k.change.kode} {k.change.field}: {k.reason}" for k in skipped)
        note = f"{note}\n\n" if note else ""
        note += f"Perubahan notulen yang tidak dapat diterapkan ({len(skipped)}): {listed}"
    return AkhirContent(
        rows=list(rows),
        applied=[*applied, *changes],
        skipped=list(skipped),
        note=note,
        extra_findings=[*carried, *notulen_findings((k.change, k.reason) for k in skipped)],
    )
