"""Typed FastAPI dependencies every service shares (the runtime, its command unit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.command import CommandUnit
from shared.runtime import Runtime


def runtime(request: Request) -> Runtime:
    """The process's ``Runtime`` (``app.state.runtime``, set by ``shared.app.build_service_app``)."""
    rt: Runtime = request.app.state.runtime
    return rt


def command_unit(request: Request) -> CommandUnit:
    """The service's ``CommandUnit`` (built with the runtime in ``build_service_app``)."""
    return runtime(request).commands


RuntimeDep = Annotated[Runtime, Depends(runtime)]
CommandsDep = Annotated[CommandUnit, Depends(command_unit)]
