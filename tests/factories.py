"""Builders of valid events for tests (fixed ids and clock passed in, like the domain)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from shared.events import Actor, DirectiveIssued

KEPALA = Actor(user_id="u-kepala", name="Dra. Siti Rahmawati, M.Si.", nip="197001011990032001", role="kepala_badan")


def directive(
    renja_id: UUID | None = None,
    *,
    event_id: UUID | None = None,
    text: str = "Susun Renja 2027",
    occurred_at: datetime | None = None,
) -> DirectiveIssued:
    """A valid step-1 ``DirectiveIssued`` (arahan) for ``renja_id``."""
    rid = renja_id or uuid4()
    return DirectiveIssued(
        event_id=event_id or uuid4(),
        renja_id=rid,
        source="directive",
        actor=KEPALA,
        occurred_at=occurred_at or datetime(2026, 1, 5, 1, 0, tzinfo=UTC),
        correlation_id=rid,
        level="arahan",
        text=text,
        addressee_role="sekretaris",
        addressee_name="Ir. Bambang Wicaksono",
        opd="Bappeda Kota Bogor",
        fiscal_year=2027,
    )
