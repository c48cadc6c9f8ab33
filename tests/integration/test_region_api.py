"""The region-wide view on real Kafka and Postgres: the audit service folds two OPDs' cycles from the log
and ``/region/cycles``, its CSV, the page and *menunggu saya* answer from the projection, by role."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import jwt
import pytest

from shared.registry import load_registry
from shared.settings import ServiceSettings
from tests.integration.test_audit_projection import SOP, START, audit_service, publish, wait_rows
from tests.kit.driver import cycle_events
from tests.kit.tokens import auth, token

pytestmark = pytest.mark.integration

BAPPERIDA = "5.01.5.05.0.00.01.0000"
DISDIK = "1.01.2.22.0.00.01.0000"  # both are OPDs of the default registry (tokens carry these codes)
# START is Monday 3 Aug 2026 08:00 WIB; AS_OF Tuesday 11:10 WIB
AS_OF = "2026-08-04T04:10:00Z"


def with_opd(settings: ServiceSettings, role: Any, opd: str) -> dict[str, str]:
    """The kit person's token for ``role`` with an ``opd`` claim (the OPD's SIPD unit code)."""
    claims = jwt.decode(token(settings, role), options={"verify_signature": False})
    signed = jwt.encode({**claims, "opd": opd}, settings.jwt_secret, algorithm="HS256")
    return {"Authorization": f"Bearer {signed}"}


def scenario() -> dict[str, Any]:
    # Bapperida 2027: arahan, instruksi, perintah Mon 08:00-09:20 WIB, then waits on the staff (step 4)
    waiting = cycle_events(SOP, uuid4(), start=START, opd="Bapperida", opd_code=BAPPERIDA)[:3]
    # Dinas Pendidikan 2027: steps 1-7 Tue 07:00-11:00 WIB, then waits on the kasubag's paraf (step 8)
    tuesday = START + timedelta(hours=23)
    review = cycle_events(SOP, uuid4(), start=tuesday, opd="Dinas Pendidikan", opd_code=DISDIK)[:7]
    # Bapperida 2026: done and distributed (another plan year)
    done = cycle_events(SOP, uuid4(), start=START, opd="Bapperida", opd_code=BAPPERIDA, fiscal_year=2026)
    return {"waiting": waiting, "review": review, "done": done}


async def test_region_cycles_csv_page_and_menunggu_saya_from_the_log(topic: str, tmp_path: Path) -> None:
    runs = scenario()
    everything = [e for events in runs.values() for e in events]
    waiting_id, review_id, done_id = (runs[k][0].renja_id for k in ("waiting", "review", "done"))
    async with audit_service(topic, tmp_path) as (client, settings):
        await publish(settings.kafka_bootstrap, topic, everything)
        await wait_rows(settings.postgres_dsn(), len(everything))
        auditor, bappeda = auth(settings, "auditor"), auth(settings, "bappeda")

        answer = await client.get("/region/cycles", params={"tahun": 2027, "as_of": AS_OF}, headers=bappeda)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["fiscal_year"] == 2027 and body["count"] == 2 and not body["truncated"]
        rows = {r["renja_id"]: r for r in body["rows"]}
        assert [r["opd_code"] for r in body["rows"]] == [DISDIK, BAPPERIDA]
        late, fresh = rows[str(waiting_id)], rows[str(review_id)]
        assert (late["current_step"], late["waiting_on_role"], late["overdue"]) == (4, "staf", True)
        assert late["waiting_minutes"] == 620.0  # Mon 09:20-16:00 = 400, Tue 07:30-11:10 = 220
        # the name is the region registry's (data/region/bengkulu-utara.yaml), not the one the arahan carried
        registered = load_registry().opd(BAPPERIDA).name
        assert (late["opd_name"], late["standard_minutes"], late["signed"]) == (registered, 300, False)
        assert (fresh["current_step"], fresh["waiting_on_role"], fresh["overdue"]) == (8, "kasubag_pp", False)
        assert fresh["waiting_minutes"] == 10.0 and fresh["opd_name"] == load_registry().opd(DISDIK).name

        # the waiting time is the timeline's, to the minute
        timeline = await client.get(f"/renja/{waiting_id}/timeline", params={"as_of": AS_OF}, headers=auditor)
        assert timeline.json()["current_step"]["elapsed_minutes"] == pytest.approx(late["waiting_minutes"])

        every_year = (await client.get("/region/cycles", params={"as_of": AS_OF}, headers=auditor)).json()
        assert {r["renja_id"] for r in every_year["rows"]} == {str(waiting_id), str(review_id), str(done_id)}
        closed = next(r for r in every_year["rows"] if r["renja_id"] == str(done_id))
        assert (closed["status"], closed["signed"], closed["distributed"], closed["current_step"]) == (
            "distributed",
            True,
            True,
            None,
        )

        async def ids(**params: Any) -> list[str]:
            got = await client.get("/region/cycles", params={"as_of": AS_OF, **params}, headers=auditor)
            assert got.status_code == 200, got.text
            return [r["renja_id"] for r in got.json()["rows"]]

        assert await ids(tahun=2027, status="overdue") == [str(waiting_id)]
        assert await ids(tahun=2027, step=8) == [str(review_id)]
        assert await ids(status="distributed") == [str(done_id)]
        assert await ids(tahun="", step="", status="") == await ids()  # the form's "Semua …"

        params = {"tahun": 2027, "as_of": AS_OF}
        csv_answer = await client.get("/region/cycles.csv", params=params, headers=bappeda)
        assert csv_answer.status_code == 200 and csv_answer.headers["content-type"].startswith("text/csv")
        parsed = list(csv.DictReader(io.StringIO(csv_answer.text)))
        expected = [{k: _cell(v) for k, v in r.items()} for r in body["rows"]]
        assert parsed == expected

        page = await client.get("/region", params={"token": bappeda["Authorization"][7:], "as_of": AS_OF})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'id="cycle-{waiting_id}"' in page.text and f'id="cycle-{review_id}"' in page.text
        assert f'id="cycle-{done_id}"' not in page.text  # the page opens on the newest plan year, 2027
        assert "Koordinasi Penyusunan Renja" in page.text and "terlambat" in page.text

        # menunggu saya: the caller's role, in the caller's OPD
        async def mine(headers: dict[str, str]) -> list[str]:
            got = await client.get("/region/menunggu-saya", params={"as_of": AS_OF}, headers=headers)
            assert got.status_code == 200, got.text
            return [r["renja_id"] for r in got.json()["rows"]]

        assert await mine(with_opd(settings, "kasubag_pp", DISDIK)) == [str(review_id)]
        assert await mine(with_opd(settings, "kasubag_pp", BAPPERIDA)) == []
        assert await mine(with_opd(settings, "staf", BAPPERIDA)) == [str(waiting_id)]
        assert await mine(auth(settings, "staf")) == [str(waiting_id)]  # no opd claim: every OPD
        assert await mine(bappeda) == []

        # Bappeda also reads a cycle's timeline page
        timeline_page = await client.get(
            f"/renja/{review_id}/timeline.html", params={"token": bappeda["Authorization"][7:]}
        )
        assert timeline_page.status_code == 200


async def test_region_routes_refuse_without_the_role_and_name_bad_filters(topic: str, tmp_path: Path) -> None:
    async with audit_service(topic, tmp_path) as (client, settings):
        for path in ("/region/cycles", "/region/cycles.csv", "/region"):
            assert (await client.get(path)).status_code == 401
            refused = await client.get(path, headers=auth(settings, "kepala_badan"))
            assert refused.status_code == 403 and "menunggu-saya" in refused.json()["message"]
        assert (await client.get("/region/menunggu-saya")).status_code == 401
        auditor = auth(settings, "auditor")
        for params, word in (
            ({"status": "late"}, "status"),
            ({"tahun": "dua ribu"}, "tahun"),
            ({"tahun": "1999"}, "tahun"),
            ({"step": "12"}, "step"),
            ({"as_of": "2026-08-04T11:00:00"}, "zone"),
        ):
            bad = await client.get("/region/cycles", params=params, headers=auditor)
            assert bad.status_code == 422 and word in bad.json()["message"], (params, bad.text)
        empty = await client.get("/region", headers=auditor)
        assert empty.status_code == 200 and "Belum ada siklus Renja" in empty.text
        # a bappeda token may read, never act: the audit's rebuild comparison is the auditor's alone
        assert (await client.post("/rebuild/compare", headers=auth(settings, "bappeda"))).status_code == 403


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
