"""Frozen models of superseded event versions, kept only to generate and check in their JSON Schemas.

The log holds records of these versions forever and subscribers meet them, so their schemas stay published
(``shared.events.schema``) and listed in the AsyncAPI document. No service writes or reads these models:
readers carry old data up to the current model with ``shared.events.versions.upcast``. Never edit a model
here; a new version adds a new class.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.events.models import Event, Role


# Release 1's ``renja.DirectiveIssued.v1`` (superseded by v2, which adds ``opd_code``). The docstring is
# the published schema's description: it stays word for word as release 1 had it.
class DirectiveIssuedV1(Event):
    """Steps 1-3: *arahan* (head → secretary), *instruksi* (secretary → kasubag), *perintah* (→ staff).

    The ``arahan`` starts a Renja cycle for one OPD and fiscal year (one cycle per OPD and year).
    """

    event_type: ClassVar[str] = "renja.DirectiveIssued.v1"
    level: Literal["arahan", "instruksi", "perintah"]
    text: str = Field(min_length=1)
    addressee_role: Role
    addressee_name: str = ""
    opd: str = Field(min_length=1, description="the Perangkat Daerah preparing the Renja")
    fiscal_year: int = Field(ge=2000, le=2100, description="the plan year (n+1)")


LEGACY_TYPES: dict[str, type[Event]] = {DirectiveIssuedV1.event_type: DirectiveIssuedV1}
"""Superseded CloudEvents ``type`` → its frozen model (each is a key of ``versions.UPCASTERS``)."""
