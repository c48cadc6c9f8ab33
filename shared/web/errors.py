"""Errors as HTTP answers, in one place: every error is JSON ``{"error": code, "message": text, ...}``.

Domain errors carry their own status (``DomainError.http_status``); plumbing errors are mapped here
(401/403/404/409/413/422/503). Bad input never yields a 500: an unexpected error is logged and answered
500 without a stack trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.command import IdempotencyMismatch
from shared.eventstore import ConcurrencyConflict, EventTooLarge
from shared.runtime import ServiceStarting
from shared.sop import DomainError

log = structlog.get_logger(__name__)


class ErrorBody(BaseModel):
    """Every error answer: a stable ``error`` code for clients, a ``message`` saying what to fix."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "out_of_order",
                    "message": "Step 9 (Memeriksa dan paraf Rancangan Akhir) is not due: Step 8 (Memeriksa dan "
                    "paraf Rancangan Akhir) is due, by kasubag_pp; you are sekretaris.",
                    "due_step": 8,
                    "due_role": "kasubag_pp",
                }
            ]
        }
    )

    error: str
    message: str
    due_step: int | None = None
    due_role: str | None = None
    details: list[dict[str, Any]] | None = None


COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token, or it is invalid or expired (`unauthorized`)."},
    403: {
        "model": ErrorBody,
        "description": "Your role may not do this (`forbidden`, `wrong_role`); auditors never act.",
    },
    409: {
        "model": ErrorBody,
        "description": "Not this step's turn (`out_of_order`), a stale draft version or hash (`stale_version`), "
        "a closed Renja (`renja_closed`), or a concurrent change (`concurrent_change`); `due_step` and "
        "`due_role` say what the Renja waits for.",
    },
    422: {
        "model": ErrorBody,
        "description": "The request or its content is invalid (`invalid_request`, `invalid_content`, "
        "`invalid_command`), or an Idempotency-Key was reused for a different request; `details` lists "
        "each problem.",
    },
}
"""``responses=`` for a command route: every error it can answer, in the one shape the handlers below
produce (``ErrorBody``). Routes override an entry with a more precise description where they know more,
e.g. ``responses={**COMMAND_ERRORS, 409: {"model": ErrorBody, "description": "..."}}``."""


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = ErrorBody(error=code, message=message, **extra).model_dump(exclude_none=True)
    return JSONResponse(status_code=status, content=body)


def _invalid_answer(code: str, lead: str, errors: Sequence[Any]) -> JSONResponse:
    """422 ``code``: each validation problem as ``{"where", "problem"}``, the first five in the message."""
    details = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in errors]
    summary = "; ".join(f"{d['where']}: {d['problem']}" for d in details[:5])
    return _error(422, code, f"{lead}: {summary}", details=details)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain and plumbing errors to HTTP statuses in one place."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return _error(exc.http_status, exc.code, exc.message, due_step=exc.due_step, due_role=exc.due_role)

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(_: Request, exc: ConcurrencyConflict) -> JSONResponse:
        return _error(409, "concurrent_change", "Someone else changed this Renja at the same moment; reload and retry.")

    @app.exception_handler(EventTooLarge)
    async def _too_large(_: Request, exc: EventTooLarge) -> JSONResponse:
        return _error(413, "too_large", f"{exc}: shorten the texts or lists in the request.")

    @app.exception_handler(asyncpg.DataError)
    async def _bad_value(_: Request, exc: asyncpg.DataError) -> JSONResponse:
        # e.g. a NUL character (PostgreSQL text cannot hold it) or a number beyond 64 bits; the database's
        # own text is logged, never answered (it names internals)
        log.info("value_refused_by_database", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return _error(
            422,
            "invalid_value",
            "A value cannot be stored: remove NUL/control characters and keep numbers within range.",
        )

    @app.exception_handler(ServiceStarting)
    async def _starting(_: Request, exc: ServiceStarting) -> JSONResponse:
        return _error(503, "unavailable", str(exc))

    @app.exception_handler(IdempotencyMismatch)
    async def _idem(_: Request, exc: IdempotencyMismatch) -> JSONResponse:
        return _error(422, "idempotency_key_reused", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid_answer("invalid_request", "Fix the request", exc.errors())

    @app.exception_handler(ValidationError)
    async def _invalid_content(_: Request, exc: ValidationError) -> JSONResponse:
        # A command built from a request the request model allowed, but the SOP's model refuses.
        return _invalid_answer("invalid_content", "Fix the content", exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            413: "too_large",
            422: "invalid_request",
            503: "unavailable",
        }
        answer = _error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))
        answer.headers.update(exc.headers or {})  # e.g. Starlette's Allow on a 405
        if exc.status_code == 401:
            answer.headers.setdefault("WWW-Authenticate", 'Bearer realm="renja"')
        return answer

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=repr(exc))
        return _error(500, "internal", "Unexpected server error; it was logged. Nothing was half-saved.")
