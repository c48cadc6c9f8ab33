"""What every service's request models share: strict, frozen, whitespace-stripped input."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Text = str
"""Free text; surrounding whitespace is stripped before the length checks (``str_strip_whitespace``)."""


class RequestModel(BaseModel):
    """Base of the ``XCreate`` request bodies: an unknown field is a 422 that names it (writers are strict),
    the model is frozen, and surrounding whitespace is stripped from every string."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
