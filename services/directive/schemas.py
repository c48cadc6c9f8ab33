"""Response models of the directive service (its requests are the SOP commands ``IssueArahan``,
``IssueInstruksi``, ``IssuePerintah`` and ``CancelRenja`` from ``shared.sop``)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel


# No class docstrings: pydantic would publish them as schema descriptions and change the OpenAPI document.
class CyclePublic(BaseModel):
    renja_id: UUID
    opd: str
    fiscal_year: int
    started_at: datetime
    status: str
    due_step: int | None


class DirectivePublic(BaseModel):
    event_id: UUID
    level: str
    text: str
    addressee_role: str
    addressee_name: str
    issued_by: str
    issued_at: datetime
