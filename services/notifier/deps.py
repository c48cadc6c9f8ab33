"""The notifier's typed FastAPI dependency: its ``NotifierService``, built in ``main.create_app``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.notifier.service import NotifierService


def notifier_service(request: Request) -> NotifierService:
    """The ``NotifierService`` kept on ``app.state.notifier`` by ``create_app``."""
    service: NotifierService = request.app.state.notifier
    return service


NotifierDep = Annotated[NotifierService, Depends(notifier_service)]
