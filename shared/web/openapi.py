"""Every status a service can answer, documented in its OpenAPI document (one place for all services).

The routes document what is theirs (``COMMAND_ERRORS``, a 409 of their own…); here every operation gets,
unless it already says more, the answers the shared plumbing gives it:
- ``401``/``403`` where the operation requires a bearer token (it has ``security``);
- ``400`` where there is a request body (one that cannot even be parsed);
- ``404`` where the path names something (a path parameter: unknown Renja, file, meeting…);
- ``422`` in the one error shape (``ErrorBody``) instead of FastAPI's default ``HTTPValidationError``
  (which our handler never answers);
- ``503`` everywhere the database is used (before the service has connected);
- ``/readyz`` its ``503`` with the checks.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shared.web.errors import ErrorBody

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
NO_DATABASE = {"/healthz", "/metrics", "/schemas/events/{file_name}"}
DEFAULTS: dict[str, str] = {
    "400": "The body cannot be read at all (not UTF-8, not a form) (`bad_request`).",
    "401": "No bearer token, or it is invalid or expired (`unauthorized`); the answer has `WWW-Authenticate`.",
    "403": "Your role may not do this (`forbidden`).",
    "404": "Nothing of that id or name is known here (`not_found`).",
    "422": "The request is invalid (`invalid_request`, `invalid_value`); `details` lists each problem.",
    "503": "The service is starting or its database does not answer (`unavailable`).",
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _is_default_422(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def complete_operation(path: str, op: dict[str, Any]) -> None:
    """Add the plumbing's statuses to one operation (see the module docstring)."""
    responses: dict[str, Any] = op.setdefault("responses", {})
    wanted = []
    if op.get("security"):
        wanted += ["401", "403"]
    if "{" in path:
        wanted.append("404")
    if op.get("requestBody"):
        wanted.append("400")
    if op.get("parameters") or op.get("requestBody"):
        wanted.append("422")
    if path not in NO_DATABASE:
        wanted.append("503")
    for code in wanted:
        if code not in responses:
            responses[code] = _error_response(DEFAULTS[code])
    if "422" in responses and _is_default_422(responses["422"]):
        responses["422"] = _error_response(DEFAULTS["422"])


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` document every status the plumbing answers (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.setdefault("ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"))
            for path, operations in schema.get("paths", {}).items():
                for op in operations.values():
                    complete_operation(path, op)
            ready = schema.get("paths", {}).get("/readyz", {}).get("get")
            if ready is not None:
                ready["responses"]["503"] = {"description": "Not ready: `checks` names what fails"}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
