"""Settings of the directive service (steps 1-3 and cancellation)."""

from __future__ import annotations

from shared.settings import ServiceSettings


class DirectiveSettings(ServiceSettings):
    """``RENJA_*`` environment; the service name fixes the database (``directive``) and consumer group."""

    service: str = "directive"
