"""Authorisation by OPD and the plan-year rule on the running stack (region registry: Bengkulu Utara).

A Dinas Pendidikan cycle refuses every command of a Bapperida person holding the right SOP role (403,
``other_opd``) — before any rule of the cycle's state; the auditor and Bapperida read it; a plan year
that has already begun, an unknown OPD code and a token of an unknown OPD are refused with what to fix.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import httpx
import pytest

from deploy.local.settings import StackSettings
from shared.events import Role
from shared.registry import load_registry
from shared.settings import ServiceSettings
from shared.sop import load_sop
from tests.kit.driver import STEPS, Http, HttpCycle
from tests.kit.tokens import auth, everyone

pytestmark = pytest.mark.e2e

BAPPERIDA = "5.01.5.05.0.00.01.0000"
DISDIK = "1.01.2.22.0.00.01.0000"
SETTINGS = ServiceSettings(service="tests")

COMMANDS: list[tuple[str, str, Role, dict[str, object]]] = [
    ("directive", "/instruksi", "sekretaris", {"json": {"text": "x"}}),
    ("directive", "/perintah", "kasubag_pp", {"json": {"text": "x"}}),
    ("directive", "/cancel", "kepala_badan", {"json": {"reason": "x"}}),
    ("documents", "/units/SET/rows", "staf", {"files": {"file": ("r.csv", b"kode,nama\n", "text/csv")}}),
    ("documents", "/units/SET/files", "staf", {"files": {"files": ("surat.txt", b"surat", "text/plain")}}),
    ("documents", "/collection/complete", "staf", {}),
    ("documents", "/drafts/awal", "staf", {"json": {}}),
    ("documents", "/drafts/akhir", "staf", {"json": {"changes": []}}),
    (
        "meetings",
        "/meetings",
        "staf",
        {
            "json": {
                "draft_version": 1,
                "draft_sha256": "0" * 64,
                "held_at": "2026-01-05T01:00:00Z",
                "place": "x",
                "agenda": "x",
            }
        },
    ),
    ("meetings", f"/meetings/{uuid4()}/attendance", "staf", {"json": {"attendees": [{"name": "x"}]}}),
    ("meetings", f"/meetings/{uuid4()}/minutes", "staf", {"json": {"points": ["x"]}}),
    ("approvals", "/paraf", "kasubag_pp", {"json": {"version": 1, "content_sha256": "0" * 64}}),
    ("approvals", "/sign", "kepala_badan", {"json": {"version": 1, "content_sha256": "0" * 64}}),
    ("approvals", "/return", "sekretaris", {"json": {"version": 1, "content_sha256": "0" * 64, "notes": "x"}}),
    ("notifier", "/distribution", "staf", {"json": {"version": 1, "content_sha256": "0" * 64}}),
    ("notifier", "/distribution/receipts", "staf", {"json": {"recipient": "x", "received_at": "2026-01-05T01:00:00Z"}}),
]
"""Every command on a cycle, by service, with the SOP role that takes it. Bodies are well-formed (a
malformed body is a 422 of the request, before anything else) but name nothing of the cycle: the OPD is
checked before any rule of its state."""


@pytest.fixture(scope="module")
def stack() -> StackSettings:
    return StackSettings()


def _plan_year() -> int:
    """A plan year no other test or demo opens: far ahead, and distinct per run."""
    return 2060 + uuid4().int % 40


async def test_a_person_acts_only_on_their_own_opds_cycle_and_readers_see_all(stack: StackSettings) -> None:
    sop = load_sop()
    disdik = Http(stack.service_url, everyone(SETTINGS, opd=DISDIK))
    try:
        cycle = HttpCycle(disdik, sop, opd="Dinas Pendidikan", year=_plan_year(), opd_code=DISDIK, key_prefix="e2e-opd")
        await cycle.run(STEPS[1])
        for service in ("directive", "documents", "meetings", "approvals", "notifier"):
            await disdik.wait_due(service, cycle.renja_id, 2)
    finally:
        await disdik.close()
    async with httpx.AsyncClient(timeout=60) as client:
        for service, path, role, kwargs in COMMANDS:
            url = stack.service_url(service) + f"/renja/{cycle.renja_id}{path}"
            method = "PUT" if service == "meetings" and path != "/meetings" else "POST"
            r = await client.request(method, url, headers=auth(SETTINGS, role, opd=BAPPERIDA), **kwargs)  # type: ignore[arg-type]
            assert r.status_code == 403, f"{service} {path}: {r.status_code} {r.text[:300]}"
            assert r.json()["error"] == "other_opd", f"{service} {path}: {r.text[:300]}"
            assert DISDIK in r.json()["message"]
        # the OPD's own people are not refused for their OPD (the instruksi is due and theirs)
        r = await client.post(
            stack.service_url("directive") + f"/renja/{cycle.renja_id}/instruksi",
            json={"text": "Koordinasikan penyusunan Renja."},
            headers=auth(SETTINGS, "sekretaris", opd=DISDIK),
        )
        assert r.status_code == 201, r.text
        # readers across OPDs: the auditor (no OPD) and Bapperida's people read the Dinas' cycle
        for headers in (auth(SETTINGS, "auditor"), auth(SETTINGS, "kepala_badan", opd=BAPPERIDA)):
            for _ in range(300):  # the audit folds the arahan from Kafka
                r = await client.get(stack.service_url("audit") + f"/renja/{cycle.renja_id}/timeline", headers=headers)
                if r.status_code != 404:
                    break
                await asyncio.sleep(0.2)
            assert r.status_code == 200, r.text
            r = await client.get(
                stack.service_url("directive") + f"/renja/{cycle.renja_id}/directives", headers=headers
            )
            assert r.status_code == 200 and [d["level"] for d in r.json()][:1] == ["arahan"]
        # the cycle keeps the registry's identity snapshot, with the registry's version and hash
        r = await client.get(
            stack.service_url("directive") + f"/renja/{cycle.renja_id}/state", headers=auth(SETTINGS, "auditor")
        )
        identity = r.json()["state"]["opd_identity"]
        registry = load_registry()
        assert identity["name"] == "Dinas Pendidikan Kabupaten Bengkulu Utara"
        assert identity["registry_sha256"] == registry.sha256


async def test_a_plan_year_already_begun_is_refused_with_422_saying_why(stack: StackSettings) -> None:
    year = datetime.now(UTC).year  # the current year: its plan year began on 1 January
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(
            stack.service_url("directive") + "/renja",
            json={"opd": "Dinas Pendidikan", "opd_code": DISDIK, "fiscal_year": year, "text": "Susun Renja"},
            headers=auth(SETTINGS, "kepala_badan", opd=DISDIK),
        )
    assert r.status_code == 422 and r.json()["error"] == "plan_year_begun", r.text
    assert f"Tahun rencana {year} sudah dimulai" in r.json()["message"]
    assert f"tahun rencana {year + 1}" in r.json()["message"]


async def test_registry_errors_are_4xx_naming_the_opd(stack: StackSettings) -> None:
    unknown = "9.99.0.00.0.00.01.0000"
    async with httpx.AsyncClient(timeout=60) as client:
        url = stack.service_url("directive") + "/renja"
        body = {"opd": "Dinas X", "fiscal_year": _plan_year(), "text": "Susun Renja"}
        r = await client.get(url, headers=auth(SETTINGS, "auditor", opd=unknown))
        assert r.status_code == 401 and unknown in r.json()["message"], r.text
        r = await client.post(
            url, json={**body, "opd_code": DISDIK}, headers=auth(SETTINGS, "kepala_badan", opd=BAPPERIDA)
        )
        assert r.status_code == 403 and r.json()["error"] == "opd_not_allowed", r.text
        r = await client.get(stack.service_url("audit") + f"/registry/opd/{DISDIK}", headers=auth(SETTINGS, "auditor"))
        assert r.status_code == 200 and r.json()["head_title"] == "Kepala Dinas Pendidikan"
        r = await client.get(stack.service_url("audit") + f"/registry/opd/{unknown}", headers=auth(SETTINGS, "auditor"))
        assert r.status_code == 404
