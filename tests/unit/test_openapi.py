"""The six services' OpenAPI documents are what users read: every JSON request body has an example that
its model accepts, every command documents its errors in the one error shape, every operation a summary.

Each app is built with ``create_app(Settings(environment="test"))`` and never started: building an app
must not touch Postgres or Kafka (the lifespan does that), so ``app.openapi()`` works offline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from services.approvals.api import router as approvals_router
from services.approvals.main import create_app as approvals_app
from services.approvals.settings import ApprovalsSettings
from services.approvals.signing import LocalKeySigner, Signer
from services.audit.api import router as audit_router
from services.audit.main import create_app as audit_app
from services.audit.settings import AuditSettings
from services.directive.api import router as directive_router
from services.directive.main import create_app as directive_app
from services.directive.settings import DirectiveSettings
from services.documents.api import router as documents_router
from services.documents.main import create_app as documents_app
from services.documents.settings import DocumentsSettings
from services.meetings.api import router as meetings_router
from services.meetings.main import create_app as meetings_app
from services.meetings.settings import MeetingsSettings
from services.notifier.api import router as notifier_router
from services.notifier.main import create_app as notifier_app
from services.notifier.settings import NotifierSettings

pytestmark = pytest.mark.unit

WRITE_METHODS = ("post", "put", "patch", "delete")


def _approvals() -> FastAPI:
    # An in-memory key: the default signer would generate a key file under .run/ (I/O at build time).
    signer: Signer = LocalKeySigner.from_key(Ed25519PrivateKey.generate())
    return approvals_app(ApprovalsSettings(environment="test"), signer=signer)


BUILDERS: dict[str, Callable[[], FastAPI]] = {
    "directive": lambda: directive_app(DirectiveSettings(environment="test")),
    "documents": lambda: documents_app(DocumentsSettings(environment="test")),
    "meetings": lambda: meetings_app(MeetingsSettings(environment="test")),
    "approvals": _approvals,
    "notifier": lambda: notifier_app(NotifierSettings(environment="test")),
    "audit": lambda: audit_app(AuditSettings(environment="test")),
}


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    return {name: build() for name, build in BUILDERS.items()}


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.removeprefix("#/components/schemas/")
    resolved: dict[str, Any] = spec["components"]["schemas"][name]
    return resolved


def _body_examples(spec: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """Examples a reader of the document sees for a JSON body: on the media type, the schema, the
    referenced component, or (for an optional body) on a non-null branch."""
    found: list[Any] = list(media.get("examples", {}).values()) + ([media["example"]] if "example" in media else [])
    schema = media.get("schema", {})
    candidates = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    for candidate in candidates:
        resolved = _resolve(spec, candidate)
        found += list(resolved.get("examples", [])) + list(candidate.get("examples", []))
    return found


def test_every_app_builds_without_io_and_every_operation_has_a_summary(apps: dict[str, FastAPI]) -> None:
    missing = [
        f"{name} {method.upper()} {path}"
        for name, app in apps.items()
        for path, method, operation in _operations(app.openapi())
        if not operation.get("summary")
    ]
    assert missing == []


def test_every_json_request_body_has_an_example(apps: dict[str, FastAPI]) -> None:
    missing: list[str] = []
    bodies = 0
    for name, app in apps.items():
        spec = app.openapi()
        for path, method, operation in _operations(spec):
            content = operation.get("requestBody", {}).get("content", {})
            media = content.get("application/json")
            if media is None:
                continue  # multipart uploads (documents, step 4) carry files, not JSON
            bodies += 1
            if not _body_examples(spec, media):
                missing.append(f"{name} {method.upper()} {path}")
    assert missing == []
    assert bodies >= 15  # the six services' command and subscription bodies are all seen


def _has_bearer(operation: dict[str, Any]) -> bool:
    return any("HTTPBearer" in requirement for requirement in operation.get("security", []))


def test_every_write_operation_documents_its_errors(apps: dict[str, FastAPI]) -> None:
    problems: list[str] = []
    for name, app in apps.items():
        spec = app.openapi()
        for path, method, operation in _operations(spec):
            if method not in WRITE_METHODS:
                continue
            where = f"{name} {method.upper()} {path}"
            responses = operation["responses"]
            # Routes open to anyone (signature verification, a recipient's receipt link) cannot answer
            # 401/403 for a missing role; a route without parameters or body has nothing to refuse as 422.
            takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
            wanted = (("401", "403") if _has_bearer(operation) else ()) + (("422",) if takes_input else ())
            problems += [f"{where}: no {status}" for status in wanted if status not in responses]
            for status in ("401", "403", "409", "422"):
                if status not in responses:
                    continue
                schema = responses[status].get("content", {}).get("application/json", {}).get("schema", {})
                # The error handlers never answer FastAPI's default HTTPValidationError shape.
                if schema.get("$ref", "").endswith("/HTTPValidationError") or not schema:
                    problems.append(f"{where}: {status} is not documented with the error body")
    assert problems == []


ROUTERS: dict[str, APIRouter] = {
    "directive": directive_router,
    "documents": documents_router,
    "meetings": meetings_router,
    "approvals": approvals_router,
    "notifier": notifier_router,
    "audit": audit_router,
}


def _body_models() -> Iterator[tuple[str, type[BaseModel]]]:
    """Every pydantic model a service route takes as its request body (``X | None`` included)."""
    for router in ROUTERS.values():
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            for param in route.dependant.body_params:
                annotation = param.field_info.annotation
                for candidate in (annotation, *getattr(annotation, "__args__", ())):
                    if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                        yield route.path, candidate


def test_every_example_validates_against_its_own_model() -> None:
    checked = 0
    without: list[str] = []
    for path, model in _body_models():
        examples = model.model_json_schema().get("examples", [])
        if not examples:
            without.append(f"{path}: {model.__name__}")
        for example in examples:
            model.model_validate(example)  # raises naming the model and the field if an example is wrong
            checked += 1
    assert without == []
    assert checked >= 15
