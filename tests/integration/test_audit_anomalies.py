"""Anomalies and integrity on every read, on real Kafka and Postgres (issue 11, items 2 and 4).

Records are built by the shared encoder (``shared.cloudevents.to_kafka``, what every service's relay
publishes), so they look valid to every reader; what is wrong is where they stand in the SOP.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from services.approvals.main import create_app as create_approvals
from services.approvals.settings import ApprovalsSettings
from shared.dlq import read_topic
from tests.integration.test_audit_projection import SOP, START, audit_service, publish, wait_rows
from tests.kit.driver import cycle_events
from tests.kit.metrics import value, wait_metric
from tests.kit.servicekit import run_service
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration


async def test_out_of_order_events_are_anomalies_for_the_audit_and_dead_letters_for_the_services(
    topic: str, tmp_path: Path
) -> None:
    cycle = cycle_events(SOP, uuid4(), start=START)
    renja = cycle[0].renja_id
    skipped_ahead = cycle[7]  # the first paraf (step 8) while step 4 is due
    phantom = cycle_events(SOP, uuid4(), start=START)[1]  # an instruksi for a Renja no arahan opened
    rewritten = cycle[0].model_copy(update={"text": "Teks lain dengan id yang sama"})  # same id, other bytes
    records = [*cycle[:3], skipped_ahead, phantom, rewritten]

    async with (
        audit_service(topic, tmp_path) as (client, settings),
        run_service(create_approvals, ApprovalsSettings, topic=topic) as (approvals, approvals_settings),
    ):
        await publish(settings.kafka_bootstrap, topic, records)
        await wait_rows(settings.postgres_dsn(), 5)  # the rewritten duplicate is not chained
        headers = auth(settings, "auditor")
        samples = await wait_metric(client, lambda m: value(m, "renja_audit_anomalies_total", kind="duplicate_id") == 1)
        assert value(samples, "renja_audit_anomalies_total", kind="out_of_order") == 1
        assert value(samples, "renja_audit_anomalies_total", kind="unknown_renja") == 1
        assert value(samples, "renja_audit_anomalies_total", kind="wrong_role") == 0

        body = (await client.get(f"/renja/{renja}/timeline", headers=headers)).json()
        assert [e["anomaly"] for e in body["entries"]] == [None, None, None, "out_of_order"]
        kinds = {(a["kind"], a["position"]) for a in body["anomalies"]}
        assert kinds == {("out_of_order", 4), ("duplicate_id", 1)}
        assert body["integrity"]["ok"] and body["integrity"]["message"] == "verified up to entry 4"

        cycles = {c["renja_id"]: c["anomalies"] for c in (await client.get("/cycles", headers=headers)).json()}
        assert cycles == {str(renja): 2, str(phantom.renja_id): 1}

        verified = (await client.get(f"/renja/{renja}/verify", headers=headers)).json()
        assert verified["ok"]  # the chain is intact: the events are on the log; the flags say what they mean
        assert {a["kind"] for a in verified["anomalies"]} == {"out_of_order", "duplicate_id"}
        ghost = (await client.get(f"/renja/{phantom.renja_id}/verify", headers=headers)).json()
        assert [(a["kind"], a["position"]) for a in ghost["anomalies"]] == [("unknown_renja", 1)]

        page = await client.get(f"/renja/{renja}/timeline.html", params={"token": headers["Authorization"][7:]})
        assert page.status_code == 200
        assert "Tidak sesuai urutan SOP" in page.text and "ID peristiwa ganda dengan isi berbeda" in page.text
        assert "Terverifikasi sampai entri 4" in page.text

        # the service does not fold the transitions: both go to its DLQ as out_of_order, the rest applies
        dead = await wait_metric(
            approvals, lambda m: value(m, "renja_consumer_dead_lettered_total", reason="out_of_order") == 2
        )
        assert value(dead, "renja_consumer_dead_lettered_total", reason="handler_error") in (None, 0)
        letters = await read_topic(approvals_settings.kafka_bootstrap, approvals_settings.dlq_topic)
        reasons = {dict(r.headers)["ce_id"].decode(): dict(r.headers)["dlq_reason"].decode() for r in letters}
        # the rewritten duplicate is refused too, as a conflict with what the service applied (shared.inbox)
        assert reasons == {str(skipped_ahead.event_id): "out_of_order", str(phantom.event_id): "out_of_order",
                           str(rewritten.event_id): "duplicate_id_conflict"}  # fmt: skip
        state = (await approvals.get(f"/renja/{renja}/state", headers=auth(approvals_settings, "auditor"))).json()
        assert state["state"]["completed_steps"] == [1, 2, 3] and state["state"]["due_step"] == 4, state


async def test_a_tampered_history_is_served_as_tampered_and_a_rebuild_restores_it_keeping_the_damage(
    topic: str, tmp_path: Path
) -> None:
    done = cycle_events(SOP, uuid4(), start=START, returns=(9,), receipts=2)
    renja = done[0].renja_id
    async with audit_service(topic, tmp_path) as (client, settings):
        await publish(settings.kafka_bootstrap, topic, done)
        dsn = settings.postgres_dsn()
        await wait_rows(dsn, len(done))
        headers = auth(settings, "auditor")
        token = {"token": headers["Authorization"][7:]}
        clean = (await client.get(f"/renja/{renja}/timeline", headers=headers)).json()
        assert clean["integrity"] == {
            "ok": True,
            "entries": len(done),
            "verified_entries": len(done),
            "tampered_at": None,
            "message": f"verified up to entry {len(done)}",
            "message_id": f"Terverifikasi sampai entri {len(done)}",
            "checks": ["projection", "origin", "signed_head"],
        }

        conn = await asyncpg.connect(dsn)
        try:
            # an insider changes who initialed (position 8) and deletes two later rows (positions 11, 12)
            await conn.execute(
                "UPDATE audit_events SET event = jsonb_set(event, '{actor,name}', '\"Orang Lain\"')"
                " WHERE renja_id = $1 AND position = 8",
                renja,
            )
            await conn.execute("DELETE FROM audit_events WHERE renja_id = $1 AND position IN (11, 12)", renja)
        finally:
            await conn.close()

        tampered = (await client.get(f"/renja/{renja}/timeline", headers=headers)).json()
        assert tampered["integrity"]["ok"] is False and tampered["integrity"]["tampered_at"] == 8
        assert tampered["integrity"]["message"].startswith("tampered at entry 8")
        assert tampered["integrity"]["verified_entries"] == 7
        assert len(tampered["entries"]) == len(done) - 2  # served, but marked
        page = await client.get(f"/renja/{renja}/timeline.html", params=token)
        assert "Riwayat telah diubah pada entri 8" in page.text and 'class="banner tampered"' in page.text
        csv_page = await client.get(f"/renja/{renja}/timeline.csv", headers=headers)
        assert csv_page.status_code == 200

        # a plain `renja rebuild audit` (no --force) restores from the log and keeps the damage aside
        env = {
            "RENJA_POSTGRES_DATABASE": dsn.rsplit("/", 1)[1],
            "RENJA_EVENT_TOPIC": topic,
            "RENJA_RUN_DIR": str(tmp_path),
        }
        out = await asyncio.to_thread(CliRunner().invoke, cli_app, ["rebuild", "audit"], env=env)
        assert out.exit_code == 0, out.output
        assert "audit_events: 1 only live, 3 only rebuilt" in out.output  # 1 altered; it and 2 deleted, restored
        assert "restored from the log" in out.output
        found = re.search(r"kept aside in schema (audit_damaged_\d{8}_\d{6})", out.output)
        assert found is not None, out.output
        conn = await asyncpg.connect(dsn)
        try:
            kept = await conn.fetch(
                f"SELECT position, event->'actor'->>'name' AS name FROM {found[1]}.audit_events"
                " WHERE renja_id = $1 ORDER BY position",
                renja,
            )
            live = await conn.fetchval("SELECT count(*) FROM audit_events WHERE renja_id = $1", renja)
        finally:
            await conn.close()
        assert [r["position"] for r in kept] == [p for p in range(1, len(done) + 1) if p not in (11, 12)]
        assert dict((r["position"], r["name"]) for r in kept)[8] == "Orang Lain"
        assert live == len(done)

        restored = (await client.get(f"/renja/{renja}/timeline", headers=headers)).json()
        assert restored["integrity"]["ok"] and len(restored["entries"]) == len(done)
        assert restored["entries"][7]["actor_name"] == done[7].actor.name
        verified = (await client.get(f"/renja/{renja}/verify", headers=headers)).json()
        assert verified["ok"], verified
        # the live consumer goes on folding into the restored tables
        late = cycle_events(SOP, uuid4(), start=START, cancel_before_step=3)
        await publish(settings.kafka_bootstrap, topic, late)
        await wait_rows(dsn, len(done) + len(late))
        for _ in range(100):
            r = await client.get(f"/renja/{late[0].renja_id}/timeline", headers=headers)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 200 and r.json()["integrity"]["ok"]
