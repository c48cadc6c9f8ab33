"""The directive service's typed dependency: the ``DirectiveService`` built in ``main.create_app``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.directive.service import DirectiveService


def directive_service(request: Request) -> DirectiveService:
    """The app's ``DirectiveService`` (``app.state.directive``, set by ``create_app``)."""
    service: DirectiveService = request.app.state.directive
    return service


DirectiveDep = Annotated[DirectiveService, Depends(directive_service)]
