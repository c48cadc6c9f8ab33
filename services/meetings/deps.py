"""The meetings service's typed FastAPI dependency: its ``MeetingsService``, built in ``main.create_app``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.meetings.service import MeetingsService


def meetings_service(request: Request) -> MeetingsService:
    """The ``MeetingsService`` kept on ``app.state.meetings`` by ``create_app``."""
    service: MeetingsService = request.app.state.meetings
    return service


MeetingsDep = Annotated[MeetingsService, Depends(meetings_service)]
