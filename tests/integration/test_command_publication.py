"""A command's answer and the log (issue 11.3): ``201`` means its events are on the log already; when the
broker does not acknowledge within ``RENJA_PUBLISH_ON_COMMIT_TIMEOUT_S`` the answer is ``202`` with a
status link that turns ``published`` once the relay has sent them (here: a bound of 0 s, so the answer
never waits and the relay publishes afterwards)."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from services.directive.main import create_app
from services.directive.settings import DirectiveSettings
from tests.integration.test_directive_api import ARAHAN
from tests.kit.kafkatools import read_all
from tests.kit.servicekit import run_service
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration


async def test_a_201_answer_comes_with_its_event_already_on_the_log(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        r = await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))
        assert r.status_code == 201, r.text
        assert "Location" not in r.headers
        (event,) = r.json()["events"]
        status = await client.get(f"/events/{event['event_id']}/status", headers=auth(s, "auditor"))
        assert status.status_code == 200 and status.json()["status"] == "published", status.text
        assert status.json()["published_at"] is not None
        records = await read_all(s.kafka_bootstrap, topic, expect=1)
        assert event["event_id"] in [dict(rec.headers)["ce_id"].decode() for rec in records]
        unknown = await client.get(f"/events/{uuid4()}/status", headers=auth(s, "auditor"))
        assert unknown.status_code == 404
        assert (await client.get(f"/events/{event['event_id']}/status")).status_code == 401


async def test_past_the_bound_the_answer_is_202_with_a_link_that_becomes_published(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic, publish_on_commit_timeout_s=0) as (client, s):
        key = {"Idempotency-Key": f"t-{uuid4()}"}
        r = await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan") | key)
        assert r.status_code == 202, r.text
        (event,) = r.json()["events"]
        assert r.headers["Location"] == f"/events/{event['event_id']}/status"
        assert r.headers["Retry-After"] == "1"
        seen = []
        for _ in range(600):
            status = (await client.get(r.headers["Location"], headers=auth(s, "auditor"))).json()
            seen.append(status["status"])
            if status["status"] == "published":
                break
            await asyncio.sleep(0.1)
        assert seen[-1] == "published", seen
        assert set(seen) <= {"pending", "published"}
        # the retry replays the same answer; its event is on the log now, so nothing is left to wait for
        again = await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan") | key)
        assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == r.json()
        assert again.status_code == 201
