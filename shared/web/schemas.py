"""What every service's request models share: strict, frozen, whitespace-stripped input."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict

INT4_MAX = 2**31 - 1
"""The largest PostgreSQL ``integer``: bound of every integer path and query parameter stored as one."""

INT8_MAX = 2**63 - 1
"""The largest PostgreSQL ``bigint`` (log positions)."""

DraftVersion = Annotated[int, Path(ge=1, le=INT4_MAX, description="draft version, 1 … 2147483647")]
"""A draft version in a path: out of range is a 422 that names the range, never a database error."""

Text = str
"""Free text; surrounding whitespace is stripped before the length checks (``str_strip_whitespace``)."""


class RequestModel(BaseModel):
    """Base of the ``XCreate`` request bodies: an unknown field is a 422 that names it (writers are strict),
    the model is frozen, and surrounding whitespace is stripped from every string."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
