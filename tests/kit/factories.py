"""Builders of single valid events for tests (fixed ids and clock passed in, like the domain)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from shared.events import DirectiveIssued
from tests.kit.people import PEOPLE, actor


def directive(
    renja_id: UUID | None = None,
    *,
    event_id: UUID | None = None,
    text: str = "Susun Renja 2027",
    occurred_at: datetime | None = None,
) -> DirectiveIssued:
    """A valid step-1 ``DirectiveIssued`` (arahan) for ``renja_id``, issued by the kit's kepala badan."""
    rid = renja_id or uuid4()
    return DirectiveIssued(
        event_id=event_id or uuid4(),
        renja_id=rid,
        source="directive",
        actor=actor("kepala_badan"),
        occurred_at=occurred_at or datetime(2026, 1, 5, 1, 0, tzinfo=UTC),
        correlation_id=rid,
        level="arahan",
        text=text,
        addressee_role="sekretaris",
        addressee_name=PEOPLE["sekretaris"].name,
        opd="Bappeda Kota Bogor",
        fiscal_year=2027,
        opd_code=None,
    )
