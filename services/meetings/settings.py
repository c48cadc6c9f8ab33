"""Settings of the meetings service (SOP step 6: consultation meeting, daftar hadir, notulen)."""

from __future__ import annotations

from shared.settings import ServiceSettings


class MeetingsSettings(ServiceSettings):
    """``RENJA_*`` environment; the service name fixes the database (``meetings``) and consumer group."""

    service: str = "meetings"
