"""Per-request log context: a request id for every HTTP request, and a clean slate of bound ids.

Invariants:
- the structlog contextvars are cleared when a request starts, so a line logged while serving it never
  carries ids bound by anything before (another request, a consumed event);
- ``request_id`` is the caller's ``X-Request-ID`` if it is a usable one (1–128 characters of
  ``[A-Za-z0-9._:-]``), else a new UUID4 (hex); it is bound for every line logged while serving the
  request (uvicorn's access line included) and echoed in the response's ``X-Request-ID`` header.
"""

from __future__ import annotations

import re
from uuid import uuid4

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_USABLE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    """The request's usable ``X-Request-ID`` value, else a fresh UUID4 in hex."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            text = bytes(value).decode("latin-1")
            if _USABLE_ID.match(text):
                return text
            break
    return uuid4().hex


class RequestContextMiddleware:
    """Pure ASGI middleware: clear the bound log context, bind ``request_id``, echo ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != REQUEST_ID_HEADER.encode()]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.clear_contextvars()
