"""Every record's ``ce_dataschema`` resolves: each service serves the checked-in schema files at
``GET /schemas/events/{file}`` (no auth, ``application/schema+json``, 404 otherwise, nothing outside the
schema directory), under the base URL ``RENJA_SCHEMA_BASE_URL``; ``$id`` stays a stable URN."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from shared.cloudevents import build_headers, to_kafka
from shared.events import EVENT_TYPES
from shared.events.schema import SCHEMA_DIR, dataschema_uri, schema_id
from shared.settings import ServiceSettings, schema_base_url
from shared.web.ops import common_router
from tests.kit.factories import directive

pytestmark = pytest.mark.unit


@pytest.fixture
def no_renja_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built in the test see only what it sets, not the stack this session runs against."""
    for key in [k for k in os.environ if k.startswith("RENJA_")]:
        monkeypatch.delenv(key)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(common_router(state_route=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as c:
        yield c


async def test_every_published_schema_is_served_as_checked_in_without_auth(client: httpx.AsyncClient) -> None:
    for event_type in EVENT_TYPES:
        file = SCHEMA_DIR / f"{event_type}.schema.json"
        answer = await client.get(f"/schemas/events/{file.name}")
        assert answer.status_code == 200, file.name
        assert answer.headers["content-type"] == "application/schema+json"
        assert answer.content == file.read_bytes()
        assert answer.json()["$id"] == schema_id(event_type)


@pytest.mark.parametrize(
    "name",
    [
        "renja.NoSuchThing.v1.schema.json",
        "renja.Signed.v1",  # the type without the file suffix
        "..%2Fschema.py",
        "..%2F..%2Fsettings.py",
        "%2E%2E%2F__init__.py",
        "..",
        "__init__.py",
    ],
)
async def test_unknown_names_and_paths_outside_the_schemas_are_not_found(client: httpx.AsyncClient, name: str) -> None:
    answer = await client.get(f"/schemas/events/{name}")
    assert answer.status_code == 404
    assert b"EVENT_TYPES" not in answer.content and b"import" not in answer.content


async def test_a_path_with_dots_outside_the_route_serves_no_file(client: httpx.AsyncClient) -> None:
    answer = await client.get("/schemas/events/../../shared/settings.py")  # whatever the client or router makes of it
    assert answer.status_code == 404


def test_the_base_url_defaults_to_the_local_stacks_audit(no_renja_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().schema_base_url == "http://127.0.0.1:8106"
    monkeypatch.setenv("RENJA_SERVICE_PORTS", json.dumps({"audit": 9406, "directive": 9401}))
    assert ServiceSettings().schema_base_url == "http://127.0.0.1:9406"
    monkeypatch.setenv("RENJA_SCHEMA_BASE_URL", "https://renja.bappeda.example/api")
    assert ServiceSettings().schema_base_url == "https://renja.bappeda.example/api"


def test_records_point_ce_dataschema_at_the_served_copy() -> None:
    headers = dict(to_kafka(directive()).headers)
    expected = f"{schema_base_url()}/schemas/events/renja.DirectiveIssued.v2.schema.json"
    assert headers["ce_dataschema"].decode() == expected
    explicit = build_headers(
        event_id="e", source="directive", event_type="renja.Signed.v1", time="2026-01-05T01:00:00Z",
        subject="r", dataschema_base="https://renja.bappeda.example/api/",
    )  # fmt: skip
    assert (
        dict(explicit)["ce_dataschema"]
        == b"https://renja.bappeda.example/api/schemas/events/renja.Signed.v1.schema.json"
    )
    assert dataschema_uri("renja.Signed.v1", "http://h:1") == "http://h:1/schemas/events/renja.Signed.v1.schema.json"
