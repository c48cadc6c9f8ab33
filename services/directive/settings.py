"""Settings of the directive service (steps 1-3 and cancellation)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class DirectiveSettings(ServiceSettings):
    """``RENJA_*`` environment; the service name fixes the database (``directive``) and consumer group."""

    service: str = "directive"
    plan_year_lead_days: int = Field(default=0, ge=0, le=366)
    """``RENJA_PLAN_YEAR_LEAD_DAYS``: a cycle for plan year n+1 may be opened until this many days before
    1 January of n+1 (office time zone of the SOP file); 0 = until 31 December of year n."""
