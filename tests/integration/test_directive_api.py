"""Directive service (steps 1-3, cancellation) through HTTP, on real Postgres and Kafka."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import pytest

from services.directive.main import create_app
from services.directive.settings import DirectiveSettings
from tests.kit.kafkatools import read_all
from tests.kit.servicekit import run_service
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

ARAHAN = {
    "opd": "Bappeda Kota Bogor",
    "fiscal_year": 2027,
    "text": "Susun Renja 2027 sesuai Renstra",
    "addressee_name": "Ir. Ratna Sari Dewi",
}


async def test_steps_1_to_3_in_order_by_their_roles(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        r = await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))
        assert r.status_code == 201, r.text
        renja_id = r.json()["renja_id"]
        assert r.json()["next_step"] == {"number": 2, "role": "sekretaris"}

        r = await client.post(f"/renja/{renja_id}/perintah", json={"text": "x"}, headers=auth(s, "kasubag_pp"))
        assert r.status_code == 409 and r.json()["error"] == "out_of_order" and r.json()["due_step"] == 2

        r = await client.post(f"/renja/{renja_id}/instruksi", json={"text": "Segera"}, headers=auth(s, "staf"))
        assert r.status_code == 403

        r = await client.post(f"/renja/{renja_id}/instruksi", json={"text": "Segera"}, headers=auth(s, "sekretaris"))
        assert r.status_code == 201, r.text
        r = await client.post(
            f"/renja/{renja_id}/perintah", json={"text": "Kumpulkan data"}, headers=auth(s, "kasubag_pp")
        )
        assert r.status_code == 201 and r.json()["next_step"] == {"number": 4, "role": "staf"}

        r = await client.get(f"/renja/{renja_id}/directives", headers=auth(s, "auditor"))
        assert [d["level"] for d in r.json()] == ["arahan", "instruksi", "perintah"]
        records = await read_all(s.kafka_bootstrap, topic, expect=3)
        assert [dict(x.headers)["ce_type"] for x in records] == [b"renja.DirectiveIssued.v2"] * 3
        assert {x.key for x in records} == {renja_id.encode()}


async def test_the_arahans_opd_code_is_published_on_every_directive(topic: str) -> None:
    code = "5.01.5.05.0.00.01.0000"
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        r = await client.post("/renja", json={**ARAHAN, "opd_code": code}, headers=auth(s, "kepala_badan", opd=code))
        assert r.status_code == 201, r.text
        renja_id = r.json()["renja_id"]
        r = await client.post(
            f"/renja/{renja_id}/instruksi", json={"text": "Segera"}, headers=auth(s, "sekretaris", opd=code)
        )
        assert r.status_code == 201, r.text
        records = await read_all(s.kafka_bootstrap, topic, expect=2)
        assert [json.loads(x.value)["opd_code"] for x in records] == [code, code]
        r = await client.post(
            "/renja", json={**ARAHAN, "fiscal_year": 2029, "opd_code": ""}, headers=auth(s, "kepala_badan")
        )
        assert r.status_code == 422


async def test_one_cycle_per_opd_and_year(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        assert (await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))).status_code == 201
        r = await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))
        assert r.status_code == 409 and r.json()["error"] == "already_started"
        r = await client.post("/renja", json={**ARAHAN, "fiscal_year": 2028}, headers=auth(s, "kepala_badan"))
        assert r.status_code == 201


@pytest.mark.parametrize(
    "variant",
    [
        "Bappeda Kota Bogor ",
        "BAPPEDA KOTA BOGOR",
        "Bappeda\u200b Kota Bogor",
        "\ufeffBappeda  Kota\u00a0Bogor",
        "bappeda kota\u2060 bogor\t",
    ],
)
async def test_a_variant_of_the_same_opd_name_is_the_same_cycle(topic: str, variant: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        assert (await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))).status_code == 201
        r = await client.post("/renja", json={**ARAHAN, "opd": variant}, headers=auth(s, "kepala_badan"))
        assert r.status_code == 409 and r.json()["error"] == "already_started", r.text


async def test_the_opd_name_is_stored_normalised_and_an_invisible_name_is_refused(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        r = await client.post("/renja", json={**ARAHAN, "opd": " Bappeda\u200b  Kota Bogor "},
                              headers=auth(s, "kepala_badan"))  # fmt: skip
        assert r.status_code == 201, r.text
        records = await read_all(s.kafka_bootstrap, topic, expect=1)
        assert json.loads(records[0].value)["opd"] == "Bappeda Kota Bogor"
        r = await client.get("/renja", headers=auth(s, "auditor"))
        assert [c["opd"] for c in r.json()] == ["Bappeda Kota Bogor"]
        for empty in (" ", "\u200b\u200d", "\ufeff \t"):
            r = await client.post("/renja", json={**ARAHAN, "opd": empty}, headers=auth(s, "kepala_badan"))
            assert r.status_code == 422 and "opd" in r.json()["message"], r.text


async def test_a_cancelled_cycle_does_not_block_a_new_one(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        head = auth(s, "kepala_badan")
        first = (await client.post("/renja", json=ARAHAN, headers=head)).json()["renja_id"]
        r = await client.post(f"/renja/{first}/cancel", json={"reason": "Tahun salah"}, headers=head)
        assert r.status_code == 201, r.text
        r = await client.post("/renja", json={**ARAHAN, "opd": "bappeda kota bogor"}, headers=head)
        assert r.status_code == 201, r.text
        second = r.json()["renja_id"]
        assert second != first
        # The new cycle is open again: a third start for the same OPD and year is refused.
        r = await client.post("/renja", json=ARAHAN, headers=head)
        assert r.status_code == 409 and second in r.json()["message"]
        r = await client.get("/renja", headers=auth(s, "auditor"))
        assert {(c["renja_id"], c["status"]) for c in r.json()} == {(first, "cancelled"), (second, "in_progress")}


async def test_bad_input_gets_a_clear_4xx(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        r = await client.post("/renja", json={"opd": "", "fiscal_year": "next"}, headers=auth(s, "kepala_badan"))
        assert r.status_code == 422 and "fiscal_year" in r.json()["message"]
        assert (await client.post("/renja", json=ARAHAN)).status_code == 401
        r = await client.post("/renja", json=ARAHAN, headers={"Authorization": "Bearer not-a-jwt"})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = await client.post("/renja", json=ARAHAN, headers=auth(s, "auditor"))
        assert r.status_code == 403
        r = await client.post(f"/renja/{uuid4()}/instruksi", json={"text": "x"}, headers=auth(s, "sekretaris"))
        assert r.status_code == 404  # nothing started: this Renja is unknown


async def test_fifty_concurrent_identical_requests_make_one_event(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        headers = {**auth(s, "kepala_badan"), "Idempotency-Key": "arahan-2027-bogor"}
        responses = await asyncio.gather(*[client.post("/renja", json=ARAHAN, headers=headers) for _ in range(50)])
        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["renja_id"] for r in responses}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 49
        records = await read_all(s.kafka_bootstrap, topic, expect=1, timeout=5)
        assert len(records) == 1
        r = await client.post("/renja", json={**ARAHAN, "text": "lain"}, headers=headers)
        assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"


async def test_head_cancels_and_nothing_follows(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        renja_id = (await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))).json()["renja_id"]
        r = await client.post(f"/renja/{renja_id}/cancel", json={"reason": "x"}, headers=auth(s, "sekretaris"))
        assert r.status_code == 403
        r = await client.post(
            f"/renja/{renja_id}/cancel", json={"reason": "Diganti siklus baru"}, headers=auth(s, "kepala_badan")
        )
        assert r.status_code == 201, r.text
        r = await client.post(f"/renja/{renja_id}/instruksi", json={"text": "x"}, headers=auth(s, "sekretaris"))
        assert r.status_code == 409 and r.json()["error"] == "renja_closed"


async def test_oversized_or_unstorable_text_is_a_4xx_and_nothing_is_stored(topic: str) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        r = await client.post("/renja", json={**ARAHAN, "text": "x" * 1_200_000}, headers=auth(s, "kepala_badan"))
        assert r.status_code == 422 and "text" in r.json()["message"]
        r = await client.post("/renja", json={**ARAHAN, "opd": "Bappeda\u0000Bogor"}, headers=auth(s, "kepala_badan"))
        assert r.status_code == 422 and r.json()["error"] == "invalid_value"
        r = await client.post(f"/renja/{uuid4()}/instruksi", json={"text": "x"}, headers=auth(s, "sekretaris"))
        assert r.status_code == 404  # an unknown Renja is not "out of order"
        ok = await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))
        assert ok.status_code == 201  # the service goes on; only the good request became an event
        records = await read_all(s.kafka_bootstrap, topic, expect=1, timeout=5)
        assert len(records) == 1
