"""The main job end to end on the running local stack: ``renja demo`` through the five HTTP APIs.

Needs ``make up`` (``make test`` does it). Every service sees the others' events only through Kafka.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.settings import StackSettings
from shared.events import Role
from shared.settings import ServiceSettings
from shared.sop import load_sop
from tests.kit.driver import CANCEL, STEPS, Http, HttpCycle
from tests.kit.kafkatools import read_all
from tests.kit.tokens import auth, everyone

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def run_demo(out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--out", str(out)],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "Audit timeline" in proc.stdout and "rebuild from offset 0 equals the live projection: yes" in proc.stdout
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def token(role: Role) -> dict[str, str]:
    return auth(ServiceSettings(service="tests"), role)


@pytest.fixture(scope="module")
def stack() -> StackSettings:
    return StackSettings()


async def test_demo_runs_the_whole_sop_and_the_log_equals_the_timeline(tmp_path: Path, stack: StackSettings) -> None:
    summary = await asyncio.to_thread(run_demo, tmp_path / "first")
    sop = load_sop()

    steps = summary["steps"]
    firsts: list[int] = []
    for s in steps:
        if s["step"] not in firsts:
            firsts.append(s["step"])
        assert s["role"] == sop.step(s["step"]).role, s
        assert s["standard_minutes"] == sop.step(s["step"]).standard_minutes
        assert s["working_minutes"] >= 0
    assert firsts == list(range(1, 12)), "all 11 steps, first done in SOP order"
    assert [s["step"] for s in steps].count(7) == 2, "the return loop redoes step 7"
    assert summary["returned_for_revision"] is True
    assert summary["verify_ok"] is True and summary["rebuild_equals_live"] is True
    for name in ("renja_signed", "daftar_hadir", "notulen"):
        head = await asyncio.to_thread(Path(summary["artefacts"][name]).read_bytes)
        assert head.startswith(b"%PDF")

    # Read the log independently: this Renja's events on renja.events are exactly the timeline's events.
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.get(
            f"{stack.service_url('audit')}/renja/{summary['renja_id']}/timeline", headers=token("auditor")
        )
        assert r.status_code == 200
        timeline_ids = [e["event_id"] for e in r.json()["entries"]]
    records = await read_all(stack.kafka_bootstrap, stack.event_topic)
    ours = [json.loads(rec.value)["event_id"] for rec in records if rec.key == summary["renja_id"].encode()]
    ours_in_log_order = [
        json.loads(rec.value)["event_id"]
        for rec in sorted(records, key=lambda r: (r.partition, r.offset))
        if rec.key == summary["renja_id"].encode()
    ]
    assert len(set(ours)) == summary["events"] == len(timeline_ids)
    assert list(dict.fromkeys(ours_in_log_order)) == timeline_ids  # duplicates (re-sends) collapse to one

    # The registry's two OPDs of Kabupaten Bengkulu Utara: each prepares its Renja 2026 as its own people, or
    # (the services' clock past 1 January 2026) is refused saying the plan year has begun.
    region = summary["region"]
    assert [r["opd"] for r in region] == ["Bapperida", "Disdik"]
    for r in region:
        if r["status"] == "ditolak":
            assert "plan_year_begun" in r["note"] or "sudah dimulai" in r["note"], r
        else:
            assert r["plan_year"] == 2026 and r["region"] == "Kabupaten Bengkulu Utara", r

    # A second run starts a new cycle for a later fiscal year and describes that one; a registry OPD's
    # cycle that exists is reported, not repeated.
    second = await asyncio.to_thread(run_demo, tmp_path / "second")
    assert second["renja_id"] != summary["renja_id"]
    assert second["fiscal_year"] > summary["fiscal_year"]
    assert second["verify_ok"] and second["rebuild_equals_live"]
    for first, again in zip(region, second["region"], strict=True):
        if first.get("renja_id"):
            assert again["renja_id"] == first["renja_id"]


async def test_a_cancelled_cycle_is_seen_as_cancelled_by_every_service(stack: StackSettings) -> None:
    api = Http(stack.service_url, everyone(ServiceSettings(service="tests")), timeout_s=60)
    try:
        cycles = await api.call("directive", "GET", "/renja", "auditor")
        year = 1 + max([c["fiscal_year"] for c in cycles if c["opd"] == "OPD Uji Pembatalan"], default=2030)
        cycle = HttpCycle(api, load_sop(), opd="OPD Uji Pembatalan", year=year, key_prefix="e2e-cancel")
        for row in (STEPS[1], STEPS[2], CANCEL):
            await cycle.run(row)
            assert api.last is not None and api.last.status_code == 201, api.last and api.last.text
        renja_id = cycle.renja_id
        http = api.client

        for service in ("documents", "meetings", "approvals", "notifier"):
            for _ in range(300):
                s = await http.get(f"{stack.service_url(service)}/renja/{renja_id}/state", headers=token("auditor"))
                if s.status_code == 200 and s.json()["state"]["status"] == "cancelled":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{service} never saw the cancellation")
        r = await http.post(
            f"{stack.service_url('directive')}/renja/{renja_id}/perintah",
            headers=token("kasubag_pp"),
            json={"text": "x"},
        )
        assert r.status_code == 409 and r.json()["error"] == "renja_closed"
        for _ in range(300):
            t = await http.get(f"{stack.service_url('audit')}/renja/{renja_id}/timeline", headers=token("auditor"))
            if t.status_code == 200 and t.json()["status"] == "cancelled":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the audit never showed the cancellation")
        assert [e["event_type"] for e in t.json()["entries"]] == [
            "renja.DirectiveIssued.v2",
            "renja.DirectiveIssued.v2",
            "renja.RenjaCancelled.v1",
        ]
        v = await http.get(f"{stack.service_url('audit')}/renja/{renja_id}/verify", headers=token("auditor"))
        assert v.json()["ok"] is True and v.json()["head_signed"] is True
    finally:
        await api.close()
