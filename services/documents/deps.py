"""The documents service's typed dependency: its ``DocumentsService``, built once in
``main.create_app`` (the composition root) and kept on ``app.state.documents``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.documents.service import DocumentsService


def documents_service(request: Request) -> DocumentsService:
    """The app's ``DocumentsService``."""
    service: DocumentsService = request.app.state.documents
    return service


DocumentsDep = Annotated[DocumentsService, Depends(documents_service)]
