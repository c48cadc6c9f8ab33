"""The audit service's HTTP API and the reconcile command's comparison, on real Kafka and Postgres."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.audit.main import create_app
from services.audit.reconcile import collect, compare_witnesses
from services.audit.settings import AuditSettings
from shared.db import migrate
from shared.events import Event
from shared.origin import service_signer
from shared.settings import ServiceSettings
from tests.integration.test_audit_projection import SOP, START, publish, wait_rows
from tests.kit.driver import cycle_events
from tests.kit.servicekit import run_service
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration


async def test_timeline_json_csv_as_of_position_and_roles(topic: str, tmp_path: Path) -> None:
    events = cycle_events(SOP, uuid4(), start=START, returns=(9,), receipts=1)
    renja = events[0].renja_id
    async with run_service(create_app, AuditSettings, topic=topic, run_dir=tmp_path) as (client, settings):
        await publish(settings.kafka_bootstrap, topic, events)
        await wait_rows(settings.postgres_dsn(), len(events))
        url = f"/renja/{renja}/timeline"

        body = (await client.get(url, headers=auth(settings, "auditor"))).json()
        assert body["status"] == "distributed" and body["current_step"] is None
        assert [e["position"] for e in body["entries"]] == list(range(1, len(events) + 1))
        steps = [e["step_number"] for e in body["entries"]]
        assert steps == [1, 2, 3, 4, 5, 6, 7, 8, None, 7, 8, 9, 10, 11, None]  # return at 9, then 7-11 again
        step4 = body["entries"][3]
        # one event every 40 min from Mon 08:00 WIB: step 4 waited 40 working minutes against 300
        assert (step4["working_minutes"], step4["standard_minutes"], step4["overdue"]) == (40.0, 300, False)
        assert step4["actor_role"] == "staf" and step4["source"] == "documents"
        signed = body["entries"][12]
        assert (signed["draft_version"], signed["content_sha256"]) == (3, events[12].content_sha256)  # type: ignore[attr-defined]

        # every SOP role may read; a missing token may not
        for role in ("kepala_badan", "sekretaris", "kasubag_pp", "staf"):
            assert (await client.get(url, headers=auth(settings, role))).status_code == 200
        assert (await client.get(url)).status_code == 401

        csv_text = (await client.get(f"{url}.csv", headers=auth(settings, "auditor"))).text
        rows = list(csv.DictReader(io.StringIO(csv_text)))
        assert len(rows) == len(events) and rows[3]["working_minutes"] == "40.0"
        same = await client.get(url, params={"format": "csv"}, headers=auth(settings, "auditor"))
        assert same.headers["content-type"].startswith("text/csv") and same.text == csv_text

        # as it stood after position 5, and at a time just after the 8th event
        at5 = (await client.get(url, params={"position": 5}, headers=auth(settings, "auditor"))).json()
        assert len(at5["entries"]) == 5 and at5["current_step"]["number"] == 6 and at5["status"] == "in_progress"
        when = (events[7].occurred_at + timedelta(minutes=1)).isoformat()
        then = (await client.get(url, params={"as_of": when}, headers=auth(settings, "auditor"))).json()
        assert len(then["entries"]) == 8 and then["current_step"]["number"] == 9
        assert then["current_step"]["elapsed_minutes"] == 1.0

        bad = await client.get(url, params={"as_of": "2026-08-03T08:00:00"}, headers=auth(settings, "auditor"))
        assert bad.status_code == 422 and "zone" in bad.json()["message"]
        assert (await client.get(f"/renja/{uuid4()}/timeline", headers=auth(settings, "auditor"))).status_code == 404

        sop = (await client.get("/sop/steps", headers=auth(settings, "auditor"))).json()
        assert sop["total_standard_minutes"] == 1365
        assert [(s["number"], s["standard_minutes"]) for s in sop["steps"]][:4] == [(1, 15), (2, 15), (3, 30), (4, 300)]

        page = await client.get(f"{url}.html", params={"token": auth(settings, "auditor")["Authorization"][7:]})
        assert page.status_code == 200 and "utuh" in page.text and page.text.count('id="step-') == 11
        assert (await client.get(f"{url}.html")).status_code == 401


@pytest.fixture
async def producer_dbs(settings: ServiceSettings) -> AsyncIterator[dict[str, str]]:
    """Two stand-in producer databases (directive, documents) with the shared events table."""
    admin = await asyncpg.connect(settings.postgres_dsn("postgres"))
    names = {svc: f"t_{uuid4().hex[:10]}_{svc}" for svc in ("directive", "documents")}
    try:
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
            await migrate(settings.postgres_dsn(name), None)
        yield {svc: settings.postgres_dsn(name) for svc, name in names.items()}
    finally:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def store_events(dsn: str, events: list[Event], *, published: bool = True, after_version: int = 0) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        versions: dict[object, int] = {}
        for e in events:
            versions[e.renja_id] = versions.get(e.renja_id, after_version) + 1
            await conn.execute(
                "INSERT INTO events (event_id, stream_id, version, event_type, source, occurred_at, data, published_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, CASE WHEN $8 THEN now() END)",
                e.event_id, e.renja_id, versions[e.renja_id], e.event_type, e.source, e.occurred_at,
                e.model_dump_json(), published,
            )  # fmt: skip
    finally:
        await conn.close()


async def test_reconcile_lists_every_id_missing_or_extra_anywhere(
    topic: str, tmp_path: Path, producer_dbs: dict[str, str]
) -> None:
    # a cycle cancelled before step 5: only directive and documents produced its events
    events = cycle_events(SOP, uuid4(), start=START, cancel_before_step=5)
    assert {e.source for e in events} == {"directive", "documents"}
    async with run_service(create_app, AuditSettings, topic=topic, run_dir=tmp_path) as (_, settings):
        for svc, dsn in producer_dbs.items():
            await store_events(dsn, [e for e in events if e.source == svc])
        await publish(settings.kafka_bootstrap, topic, events)
        audit_dsn = settings.postgres_dsn()
        await wait_rows(audit_dsn, len(events))

        async def report() -> list[tuple[str, str, str]]:
            w = await collect(
                bootstrap=settings.kafka_bootstrap, topic=topic, audit_dsn=audit_dsn, service_dsns=producer_dbs
            )
            return [(d.event_id, d.problem, d.where) for d in compare_witnesses(w).discrepancies]

        assert await report() == []

        # an event only in directive's table (never published), one published but lost from documents'
        # table, one dropped from the audit
        lost = cycle_events(SOP, uuid4(), start=START, cancel_before_step=2)
        await store_events(producer_dbs["directive"], lost[:1])
        await store_events(producer_dbs["directive"], lost[1:], published=False, after_version=1)
        conn = await asyncpg.connect(producer_dbs["documents"])
        try:
            documents_event = next(e for e in events if e.source == "documents")
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute("DELETE FROM events WHERE event_id = $1", documents_event.event_id)
        finally:
            await conn.close()
        conn = await asyncpg.connect(audit_dsn)
        try:
            await conn.execute("DELETE FROM audit_events WHERE event_id = $1", events[0].event_id)
        finally:
            await conn.close()

        found = await report()
    expected = {
        (str(lost[0].event_id), "missing", "kafka"),
        (str(lost[0].event_id), "missing", "audit"),
        (str(lost[1].event_id), "unpublished", "kafka"),
        (str(lost[1].event_id), "missing", "audit"),
        (str(documents_event.event_id), "missing", "documents"),
        (str(events[0].event_id), "missing", "audit"),
    }
    assert set(found) == expected and len(found) == len(expected)


async def test_verify_names_each_signer_and_refuses_an_entry_whose_signature_was_altered(
    topic: str, tmp_path: Path
) -> None:
    events = cycle_events(SOP, uuid4(), start=START, cancel_before_step=5)
    renja = events[0].renja_id
    async with run_service(create_app, AuditSettings, topic=topic, run_dir=tmp_path) as (client, settings):
        await publish(settings.kafka_bootstrap, topic, events)
        await wait_rows(settings.postgres_dsn(), len(events))
        url = f"/renja/{renja}/verify"
        report = (await client.get(url, headers=auth(settings, "auditor"))).json()
        assert report["ok"], report
        assert [(s["service"], s["key_id"], s["status"]) for s in report["signers"]] == [
            (e.source, service_signer(e.source).key_id, "signed") for e in events
        ]
        conn = await asyncpg.connect(settings.postgres_dsn())
        try:  # someone swaps the stored signature of entry 2 for that of entry 3
            await conn.execute(
                "UPDATE audit_events SET signature = (SELECT signature FROM audit_events"
                " WHERE renja_id = $1 AND position = 3) WHERE renja_id = $1 AND position = 2",
                renja,
            )
        finally:
            await conn.close()
        report = (await client.get(url, headers=auth(settings, "auditor"))).json()
    checks = {c["name"]: c for c in report["checks"]}
    assert not report["ok"] and report["first_bad_position"] == 2
    assert (checks["origin"]["ok"], checks["origin"]["kind"], checks["origin"]["position"]) == (
        False,
        "bad_signature",
        2,
    )
    assert not checks["projection"]["ok"] and checks["projection"]["position"] == 2  # the chain covers it
    assert report["signers"][1]["status"] == "bad_signature"
