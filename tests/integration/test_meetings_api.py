"""Meetings service (SOP step 6) through HTTP, on real Postgres and Kafka; steps 1-5 come from the kit's SOP driver."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from services.meetings.domain import NotulenIn, notulen_sha256
from services.meetings.main import create_app
from services.meetings.settings import MeetingsSettings
from shared.settings import ServiceSettings
from tests.kit.driver import Cycle, publish_until
from tests.kit.kafkatools import read_all
from tests.kit.servicekit import run_service, wait_state
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

ATTENDANCE = {
    "attendees": [
        {
            "name": "Dewi Lestari, S.Kom. (fiktif)",
            "nip": "199001102015032004",
            "unit": "Subbag PP",
            "position": "Staf",
            "present": True,
            "signed_at": "2026-03-02T02:05:00Z",
        },
        {
            "name": "Rudi Hartono (fiktif)",
            "nip": "198803032012121001",
            "unit": "Bidang Ekonomi",
            "position": "Kepala Bidang",
            "present": False,
        },
        {"name": "Tamu Bappenas (fiktif)", "unit": "Bappenas", "present": True},
    ]
}
MINUTES = {
    "points": ["Pembahasan pagu indikatif per program", "Keselarasan dengan Renstra"],
    "decisions": ["Pagu program 1.01 disesuaikan"],
    "requested_changes": [{"kode": "1.01.01", "field": "pagu", "new_value": "1500000000", "note": "sesuai KUA"}],
}


def _schedule_body(driven: Cycle, **overrides: Any) -> dict[str, Any]:
    body = {
        "draft_version": driven.state.awal_version,
        "draft_sha256": driven.state.awal_sha256,
        "held_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "place": "Ruang Rapat Bappeda",
        "agenda": "Konsultasi Rancangan Awal Renja",
    }
    return {**body, **overrides}


async def _at_step_6(client: httpx.AsyncClient, s: ServiceSettings, topic: str) -> Cycle:
    driven = await publish_until(s, topic, step=5)
    await wait_state(client, s, driven.renja_id, until=lambda st: st["due_step"] == 6)
    return driven


async def _held_events(s: ServiceSettings, topic: str, expect: int, timeout: float = 15) -> list[dict[str, Any]]:
    records = await read_all(s.kafka_bootstrap, topic, expect=expect, timeout=timeout)
    return [json.loads(r.value) for r in records if dict(r.headers)["ce_type"] == b"renja.MeetingHeld.v1"]


async def test_meeting_is_held_once_attendance_and_minutes_exist(topic: str) -> None:
    async with run_service(create_app, MeetingsSettings, topic=topic) as (client, s):
        driven = await _at_step_6(client, s, topic)
        rid = driven.renja_id
        r = await client.post(f"/renja/{rid}/meetings", json=_schedule_body(driven), headers=auth(s, "staf"))
        assert r.status_code == 201, r.text
        mid = r.json()["meeting_id"]
        assert r.json()["status"] == "scheduled" and r.json()["missing"] == ["daftar_hadir", "notulen"]

        r = await client.put(f"/renja/{rid}/meetings/{mid}/minutes", json=MINUTES, headers=auth(s, "staf"))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "scheduled" and r.json()["missing"] == ["daftar_hadir"]
        # Re-PUT before held replaces the notulen.
        changed = {**MINUTES, "decisions": ["Pagu program 1.01 disesuaikan", "Indikator diperjelas"]}
        r = await client.put(f"/renja/{rid}/meetings/{mid}/minutes", json=changed, headers=auth(s, "staf"))
        assert r.status_code == 200 and r.json()["notulen"]["decisions"][1] == "Indikator diperjelas"

        r = await client.put(f"/renja/{rid}/meetings/{mid}/attendance", json=ATTENDANCE, headers=auth(s, "staf"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "held" and body["missing"] == [] and body["held_event_id"]
        expected_hash = notulen_sha256(
            UUID(mid), driven.state.awal_version or 0, driven.state.awal_sha256 or "", NotulenIn.model_validate(changed)
        )
        assert body["notulen_sha256"] == expected_hash

        state = await wait_state(client, s, rid, until=lambda st: st["due_step"] == 7)
        assert state["meeting_id"] == mid and state["notulen_sha256"] == expected_hash

        (held,) = await _held_events(s, topic, expect=len(driven.events) + 1)
        assert held["event_id"] == body["held_event_id"] and held["meeting_id"] == mid
        assert held["notulen_sha256"] == expected_hash and held["source"] == "meetings"
        assert [a["present"] for a in held["attendees"]] == [True, False, True]
        assert held["requested_changes"][0]["kode"] == "1.01.01"
        assert held["draft_version"] == driven.state.awal_version

        # After held the records are final, and no second meeting can be scheduled.
        r = await client.put(f"/renja/{rid}/meetings/{mid}/minutes", json=MINUTES, headers=auth(s, "staf"))
        assert r.status_code == 409, r.text
        r = await client.put(f"/renja/{rid}/meetings/{mid}/attendance", json=ATTENDANCE, headers=auth(s, "staf"))
        assert r.status_code == 409
        r = await client.post(f"/renja/{rid}/meetings", json=_schedule_body(driven), headers=auth(s, "staf"))
        assert r.status_code == 409 and r.json()["error"] == "out_of_order" and r.json()["due_step"] == 7

        r = await client.get(f"/renja/{rid}/meetings/{mid}", headers=auth(s, "auditor"))
        assert r.status_code == 200 and r.json()["attendees"][2]["nip"] == ""
        r = await client.get(f"/renja/{rid}/meetings", headers=auth(s, "kepala_badan"))
        assert [m["meeting_id"] for m in r.json()] == [mid]


async def test_wrong_role_wrong_order_and_stale_draft_are_refused(topic: str) -> None:
    async with run_service(create_app, MeetingsSettings, topic=topic) as (client, s):
        early = await publish_until(s, topic, step=4)
        await wait_state(client, s, early.renja_id, until=lambda st: st["due_step"] == 5)
        fake = {
            "draft_version": 1,
            "draft_sha256": "a" * 64,
            "held_at": "2026-03-02T02:00:00+07:00",
            "place": "Ruang Rapat",
            "agenda": "Konsultasi",
        }
        r = await client.post(f"/renja/{early.renja_id}/meetings", json=fake, headers=auth(s, "staf"))
        assert r.status_code == 409 and r.json()["error"] == "out_of_order" and r.json()["due_step"] == 5

        driven = await _at_step_6(client, s, topic)
        rid = driven.renja_id
        for role in ("kasubag_pp", "auditor"):
            r = await client.post(f"/renja/{rid}/meetings", json=_schedule_body(driven), headers=auth(s, role))
            assert r.status_code == 403, role
        stale = _schedule_body(driven, draft_sha256="b" * 64)
        r = await client.post(f"/renja/{rid}/meetings", json=stale, headers=auth(s, "staf"))
        assert r.status_code == 409 and r.json()["error"] == "stale_version"
        r = await client.post(
            f"/renja/{rid}/meetings", json=_schedule_body(driven, draft_version=9), headers=auth(s, "staf")
        )
        assert r.status_code == 409 and r.json()["error"] == "stale_version"

        mid = (
            await client.post(f"/renja/{rid}/meetings", json=_schedule_body(driven), headers=auth(s, "staf"))
        ).json()["meeting_id"]
        r = await client.put(f"/renja/{rid}/meetings/{mid}/attendance", json=ATTENDANCE, headers=auth(s, "sekretaris"))
        assert r.status_code == 403
        r = await client.put(f"/renja/{rid}/meetings/{uuid4()}/attendance", json=ATTENDANCE, headers=auth(s, "staf"))
        assert r.status_code == 404
        r = await client.put(f"/renja/{uuid4()}/meetings/{mid}/minutes", json=MINUTES, headers=auth(s, "staf"))
        assert r.status_code == 404


async def test_bad_attendance_and_minutes_get_422(topic: str) -> None:
    async with run_service(create_app, MeetingsSettings, topic=topic) as (client, s):
        driven = await _at_step_6(client, s, topic)
        rid = driven.renja_id
        r = await client.post(
            f"/renja/{rid}/meetings",
            json=_schedule_body(driven, held_at="2026-03-02T09:00:00"),
            headers=auth(s, "staf"),
        )
        assert r.status_code == 422 and "held_at" in r.json()["message"]  # naive time refused
        mid = (
            await client.post(f"/renja/{rid}/meetings", json=_schedule_body(driven), headers=auth(s, "staf"))
        ).json()["meeting_id"]
        url = f"/renja/{rid}/meetings/{mid}"
        nobody = {"attendees": [{**a, "present": False} for a in ATTENDANCE["attendees"]]}
        r = await client.put(f"{url}/attendance", json=nobody, headers=auth(s, "staf"))
        assert r.status_code == 422 and "present" in r.json()["message"]
        short_nip = {"attendees": [{"name": "X", "nip": "12345678901234567", "present": True}]}
        r = await client.put(f"{url}/attendance", json=short_nip, headers=auth(s, "staf"))
        assert r.status_code == 422 and "nip" in r.json()["message"]
        twice = {"attendees": [ATTENDANCE["attendees"][0], ATTENDANCE["attendees"][0]]}
        r = await client.put(f"{url}/attendance", json=twice, headers=auth(s, "staf"))
        assert r.status_code == 422 and "more than once" in r.json()["message"]
        r = await client.put(f"{url}/attendance", json={"attendees": []}, headers=auth(s, "staf"))
        assert r.status_code == 422
        r = await client.put(f"{url}/minutes", json={**MINUTES, "points": []}, headers=auth(s, "staf"))
        assert r.status_code == 422 and "points" in r.json()["message"]
        r = await client.put(f"{url}/minutes", json={**MINUTES, "points": ["  "]}, headers=auth(s, "staf"))
        assert r.status_code == 422 and "points" in r.json()["message"]
        # A requested change that could never apply to a Renja row is refused before it becomes final.
        for change, words in (
            ({"kode": "9.99.99", "field": "pagu", "new_value": "-5"}, "rupiah"),
            ({"kode": "5.01.01", "field": "pagu_n1", "new_value": "sejuta"}, "rupiah"),
            ({"kode": "5.01.01", "field": "pagu", "new_value": str(2**63)}, "rupiah"),
            ({"kode": "5.01.01", "field": "pagu", "new_value": ""}, "needs an amount"),
            ({"kode": "5.1.1", "field": "nama", "new_value": "Program"}, "nomenclature code"),
            ({"kode": "5.01.01 ", "field": "nama", "new_value": "Program"}, "nomenclature code"),
            ({"kode": "5.01.01", "field": "kode", "new_value": "5.01.02"}, "cannot be changed"),
            ({"kode": "5.01.01", "field": "warna", "new_value": "merah"}, "cannot be changed"),
            ({"kode": "5.01.01", "field": "nama", "new_value": "  "}, "nama cannot be empty"),
        ):
            good = {"kode": "5.01.01.2.01", "field": "Pagu Indikatif", "new_value": "Rp 1.250.000.000"}
            body = {**MINUTES, "requested_changes": [good, change]}
            r = await client.put(f"{url}/minutes", json=body, headers=auth(s, "staf"))
            assert r.status_code == 422 and r.json()["error"] == "invalid_request", (change, r.text)
            message = r.json()["message"]
            assert "requested_changes[1]" in message and repr(change["kode"]) in message and words in message, message
            assert "requested_changes[0]" not in message
        r = await client.get(url, headers=auth(s, "staf"))
        assert r.json()["missing"] == ["daftar_hadir", "notulen"]  # nothing of the refused input was kept
        fine = [
            {"kode": "5.01.01.2.01.0001", "field": "pagu n+1", "new_value": "1,000,000"},
            {"kode": "5.01.01", "field": "Sumber Dana", "new_value": "DAU"},
        ]
        r = await client.put(f"{url}/minutes", json={**MINUTES, "requested_changes": fine}, headers=auth(s, "staf"))
        assert r.status_code == 200, r.text


async def test_meeting_in_the_future_cannot_be_held_yet(topic: str) -> None:
    async with run_service(create_app, MeetingsSettings, topic=topic) as (client, s):
        driven = await _at_step_6(client, s, topic)
        rid = driven.renja_id
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        r = await client.post(
            f"/renja/{rid}/meetings", json=_schedule_body(driven, held_at=tomorrow), headers=auth(s, "staf")
        )
        assert r.status_code == 201
        mid = r.json()["meeting_id"]
        assert (
            await client.put(f"/renja/{rid}/meetings/{mid}/attendance", json=ATTENDANCE, headers=auth(s, "staf"))
        ).status_code == 200
        r = await client.put(f"/renja/{rid}/meetings/{mid}/minutes", json=MINUTES, headers=auth(s, "staf"))
        assert r.status_code == 422 and "future" in r.json()["message"]
        r = await client.get(f"/renja/{rid}/meetings/{mid}", headers=auth(s, "staf"))
        assert r.json()["status"] == "scheduled" and r.json()["notulen"] is None


async def test_a_meeting_before_the_awal_existed_or_over_a_year_ahead_is_refused(topic: str) -> None:
    async with run_service(create_app, MeetingsSettings, topic=topic) as (client, s):
        driven = await _at_step_6(client, s, topic)
        rid = driven.renja_id
        awal_at = driven.state.awal_created_at
        assert awal_at is not None
        for held_at, words in (
            (awal_at - timedelta(minutes=1), "before Rancangan Awal"),
            (datetime(2020, 3, 2, 2, tzinfo=UTC), "before Rancangan Awal"),
            (datetime.now(UTC) + timedelta(days=400), "more than a year ahead"),
        ):
            body = _schedule_body(driven, held_at=held_at.isoformat())
            r = await client.post(f"/renja/{rid}/meetings", json=body, headers=auth(s, "staf"))
            assert r.status_code == 422 and r.json()["error"] == "invalid_command", r.text
            assert words in r.json()["message"]
        assert (await client.get(f"/renja/{rid}/meetings", headers=auth(s, "staf"))).json() == []
        for held_at in (awal_at, datetime.now(UTC) + timedelta(days=300)):
            body = _schedule_body(driven, held_at=held_at.isoformat())
            r = await client.post(f"/renja/{rid}/meetings", json=body, headers=auth(s, "staf"))
            assert r.status_code == 201, r.text


async def test_same_idempotency_key_replays_and_makes_one_event(topic: str) -> None:
    async with run_service(create_app, MeetingsSettings, topic=topic) as (client, s):
        driven = await _at_step_6(client, s, topic)
        rid = driven.renja_id
        headers = {**auth(s, "staf"), "Idempotency-Key": "jadwal-rapat-1"}
        half_hour_ago = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
        first, second = [
            await client.post(
                f"/renja/{rid}/meetings", json=_schedule_body(driven, held_at=half_hour_ago), headers=headers
            )
            for _ in range(2)
        ]
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json() and second.headers.get("Idempotent-Replayed") == "true"
        mid = first.json()["meeting_id"]
        r = await client.get(f"/renja/{rid}/meetings", headers=auth(s, "staf"))
        assert len(r.json()) == 1

        await client.put(f"/renja/{rid}/meetings/{mid}/attendance", json=ATTENDANCE, headers=auth(s, "staf"))
        headers = {**auth(s, "staf"), "Idempotency-Key": "notulen-rapat-1"}
        responses = await asyncio.gather(
            *[client.put(f"/renja/{rid}/meetings/{mid}/minutes", json=MINUTES, headers=headers) for _ in range(5)]
        )
        assert {r.status_code for r in responses} == {200}
        assert len({r.json()["held_event_id"] for r in responses}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 4
        # A later retry of the same request still replays, while a different body under the key is refused.
        r = await client.put(f"/renja/{rid}/meetings/{mid}/minutes", json=MINUTES, headers=headers)
        assert r.status_code == 200 and r.headers.get("Idempotent-Replayed") == "true"
        r = await client.put(f"/renja/{rid}/meetings/{mid}/minutes", json={**MINUTES, "decisions": []}, headers=headers)
        assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"

        held = await _held_events(s, topic, expect=len(driven.events) + 1)
        await asyncio.sleep(1.0)  # give a (wrong) second event time to reach the topic
        held = await _held_events(s, topic, expect=len(driven.events) + 1)
        assert len(held) == 1 and held[0]["event_id"] == responses[0].json()["held_event_id"]


async def test_attendance_and_minutes_sent_at_once_hold_the_meeting_once(topic: str) -> None:
    async with run_service(create_app, MeetingsSettings, topic=topic) as (client, s):
        driven = await _at_step_6(client, s, topic)
        rid = driven.renja_id
        r = await client.post(f"/renja/{rid}/meetings", json=_schedule_body(driven), headers=auth(s, "staf"))
        mid = r.json()["meeting_id"]
        attendance, minutes = await asyncio.gather(
            client.put(f"/renja/{rid}/meetings/{mid}/attendance", json=ATTENDANCE, headers=auth(s, "staf")),
            client.put(f"/renja/{rid}/meetings/{mid}/minutes", json=MINUTES, headers=auth(s, "staf")),
        )
        assert (attendance.status_code, minutes.status_code) == (200, 200), (attendance.text, minutes.text)
        assert sorted([attendance.json()["status"], minutes.json()["status"]]) == ["held", "scheduled"]
        r = await client.get(f"/renja/{rid}/meetings/{mid}", headers=auth(s, "staf"))
        assert r.json()["status"] == "held" and r.json()["missing"] == []
        await asyncio.sleep(1.0)
        held = await _held_events(s, topic, expect=len(driven.events) + 1)
        assert [e["meeting_id"] for e in held] == [mid]
