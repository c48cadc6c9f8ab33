"""The approvals service's typed dependency: the ``ApprovalsService`` built in ``main.create_app``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.approvals.service import ApprovalsService


def approvals_service(request: Request) -> ApprovalsService:
    """The app's ``ApprovalsService`` (``app.state.approvals``, set by ``create_app``)."""
    service: ApprovalsService = request.app.state.approvals
    return service


ApprovalsDep = Annotated[ApprovalsService, Depends(approvals_service)]
