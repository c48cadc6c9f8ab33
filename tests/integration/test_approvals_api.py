"""Approvals service (SOP steps 8-10 and returns) through HTTP, on real Postgres and Kafka.

Steps 1-7 come from ``tests.kit.driver``; the signing key is generated into a per-test run directory.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_public_key
from pydantic import ValidationError

from services.approvals.main import create_app
from services.approvals.settings import ApprovalsSettings
from services.approvals.signing import SigningKeyError, load_signer
from shared.settings import ServiceSettings
from shared.sop import RenjaState
from tests.kit.driver import Cycle, DriveOptions, publish_until
from tests.kit.kafkatools import read_all
from tests.kit.servicekit import run_service, wait_state
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration


def _draft(driven: Cycle, **extra: Any) -> dict[str, Any]:
    return {"version": driven.state.akhir_version, "content_sha256": driven.state.akhir_sha256, **extra}


async def _at_step_8(
    client: httpx.AsyncClient, s: ServiceSettings, topic: str, options: DriveOptions | None = None
) -> Cycle:
    driven = await publish_until(s, topic, step=7, options=options)
    await wait_state(client, s, driven.renja_id, until=lambda st: st["due_step"] == 8)
    return driven


async def _events_of(s: ServiceSettings, topic: str, ce_type: str, expect: int) -> list[dict[str, Any]]:
    records = await read_all(s.kafka_bootstrap, topic, expect=expect, timeout=15)
    return [json.loads(r.value) for r in records if dict(r.headers)["ce_type"] == ce_type.encode()]


async def test_paraf_paraf_sign_in_order_and_the_signature_verifies(topic: str, tmp_path: Path) -> None:
    async with run_service(create_app, ApprovalsSettings, topic=topic, run_dir=tmp_path) as (client, s):
        driven = await _at_step_8(client, s, topic)
        rid = driven.renja_id
        url = f"/renja/{rid}"

        r = await client.post(f"{url}/paraf", json=_draft(driven), headers=auth(s, "staf"))
        assert r.status_code == 403
        r = await client.post(f"{url}/paraf", json=_draft(driven), headers=auth(s, "sekretaris"))
        assert r.status_code == 409 and r.json()["error"] == "out_of_order" and r.json()["due_step"] == 8
        r = await client.post(f"{url}/sign", json=_draft(driven), headers=auth(s, "kepala_badan"))
        assert r.status_code == 409 and r.json()["error"] == "out_of_order"
        r = await client.post(f"{url}/paraf", json=_draft(driven, version=1), headers=auth(s, "kasubag_pp"))
        assert r.status_code == 409 and r.json()["error"] == "stale_version"
        r = await client.post(
            f"{url}/paraf", json=_draft(driven, content_sha256="c" * 64), headers=auth(s, "kasubag_pp")
        )
        assert r.status_code == 409 and r.json()["error"] == "stale_version"

        r = await client.post(
            f"{url}/paraf", json=_draft(driven, note="Sudah diperiksa"), headers=auth(s, "kasubag_pp")
        )
        assert r.status_code == 201, r.text
        assert r.json()["record"]["step"] == 8 and r.json()["next_step"]["number"] == 9
        r = await client.post(
            f"{url}/paraf", json=_draft(driven, warnings_acknowledged=["W-PAGU-01"]), headers=auth(s, "sekretaris")
        )
        assert r.status_code == 201 and r.json()["next_step"]["role"] == "kepala_badan"

        r = await client.post(f"{url}/sign", json=_draft(driven), headers=auth(s, "sekretaris"))
        assert r.status_code == 403
        r = await client.post(
            f"{url}/sign", json=_draft(driven, content_sha256="d" * 64), headers=auth(s, "kepala_badan")
        )
        assert r.status_code == 409 and r.json()["error"] == "stale_version"
        r = await client.post(f"{url}/sign", json=_draft(driven), headers=auth(s, "kepala_badan"))
        assert r.status_code == 201, r.text
        signed = r.json()["record"]
        assert signed["kind"] == "signature" and r.json()["next_step"]["number"] == 11

        key = (await client.get("/keys/public")).json()  # no token needed
        assert key["key_id"] == signed["key_id"] and key["public_key_b64"] == signed["public_key_b64"]
        content = (driven.state.akhir_sha256 or "").encode("utf-8")
        signature = base64.b64decode(signed["signature_b64"])
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key_b64"])).verify(signature, content)
        pem_key = load_pem_public_key(key["public_key_pem"].encode())
        assert isinstance(pem_key, Ed25519PublicKey)
        pem_key.verify(signature, content)  # raises InvalidSignature if not

        r = await client.post(
            "/verify", json={"content_sha256": driven.state.akhir_sha256, "signature_b64": signed["signature_b64"]}
        )
        assert r.status_code == 200 and r.json()["valid"] is True
        assert [x["renja_id"] for x in r.json()["recorded"]] == [str(rid)]
        r = await client.post("/verify", json={"content_sha256": "e" * 64, "signature_b64": signed["signature_b64"]})
        assert r.json()["valid"] is False and r.json()["recorded"] == []
        r = await client.post("/verify", json={"content_sha256": "e" * 64, "signature_b64": "not base64!"})
        assert r.status_code == 200 and r.json()["valid"] is False

        r = await client.get(f"{url}/approvals", headers=auth(s, "auditor"))
        assert [(a["kind"], a["step"]) for a in r.json()] == [("paraf", 8), ("paraf", 9), ("signature", 10)]
        assert r.json()[0]["note"] == "Sudah diperiksa" and r.json()[1]["warnings_acknowledged"] == ["W-PAGU-01"]

        (event,) = await _events_of(s, topic, "renja.Signed.v1", expect=len(driven.events) + 3)
        assert event["signature_b64"] == signed["signature_b64"] and event["source"] == "approvals"
        assert event["version"] == driven.state.akhir_version
        await wait_state(client, s, rid, until=lambda st: st["due_step"] == 11 and st["signed"])


async def test_return_sends_the_draft_back_to_step_7_and_a_new_version_needs_both_parafs(
    topic: str, tmp_path: Path
) -> None:
    async with run_service(create_app, ApprovalsSettings, topic=topic, run_dir=tmp_path) as (client, s):
        driven = await _at_step_8(client, s, topic)
        url = f"/renja/{driven.renja_id}"
        old = _draft(driven)
        assert (await client.post(f"{url}/paraf", json=old, headers=auth(s, "kasubag_pp"))).status_code == 201
        r = await client.post(f"{url}/return", json={**old, "notes": "x"}, headers=auth(s, "kasubag_pp"))
        assert r.status_code == 409 and r.json()["error"] == "out_of_order"  # step 9 is due, not 8
        r = await client.post(f"{url}/return", json={**old, "notes": "x"}, headers=auth(s, "staf"))
        assert r.status_code == 403
        r = await client.post(f"{url}/return", json={**old, "notes": " "}, headers=auth(s, "sekretaris"))
        assert r.status_code == 422
        r = await client.post(
            f"{url}/return", json={**old, "notes": "Perbaiki indikator program 1.02"}, headers=auth(s, "sekretaris")
        )
        assert r.status_code == 201, r.text
        assert r.json()["record"]["kind"] == "return" and r.json()["record"]["step"] == 9
        assert r.json()["next_step"]["number"] == 7

        state = await wait_state(client, s, driven.renja_id, until=lambda st: st["due_step"] == 7)
        assert state["returns"] == 1 and state["parafs"] == []
        r = await client.post(f"{url}/paraf", json=old, headers=auth(s, "kasubag_pp"))
        assert r.status_code == 409 and r.json()["due_step"] == 7

        # Step 7 again (the documents service's job): a new Rancangan Akhir version.
        driven.state = RenjaState.model_validate(state)
        driven = await publish_until(s, topic, step=7, driven=driven)
        assert driven.state.akhir_version == (old["version"] or 0) + 1
        await wait_state(client, s, driven.renja_id, until=lambda st: st["due_step"] == 8)
        r = await client.post(f"{url}/paraf", json=old, headers=auth(s, "kasubag_pp"))
        assert r.status_code == 409 and r.json()["error"] == "stale_version"
        for role in ("kasubag_pp", "sekretaris"):
            r = await client.post(f"{url}/paraf", json=_draft(driven), headers=auth(s, role))
            assert r.status_code == 201, r.text
        r = await client.post(
            f"{url}/return", json={**_draft(driven), "notes": "Lampiran belum lengkap"}, headers=auth(s, "kepala_badan")
        )
        assert r.status_code == 201 and r.json()["record"]["step"] == 10
        r = await client.get(f"{url}/approvals", headers=auth(s, "staf"))
        assert [(a["kind"], a["step"], a["version"]) for a in r.json()] == [
            ("paraf", 8, old["version"]), ("return", 9, old["version"]),
            ("paraf", 8, driven.state.akhir_version), ("paraf", 9, driven.state.akhir_version),
            ("return", 10, driven.state.akhir_version),
        ]  # fmt: skip


async def test_blocking_findings_refuse_the_paraf_but_allow_a_return(topic: str, tmp_path: Path) -> None:
    async with run_service(create_app, ApprovalsSettings, topic=topic, run_dir=tmp_path) as (client, s):
        driven = await _at_step_8(client, s, topic, DriveOptions(akhir_blocking_findings=2))
        url = f"/renja/{driven.renja_id}"
        r = await client.post(f"{url}/paraf", json=_draft(driven), headers=auth(s, "kasubag_pp"))
        assert r.status_code == 409 and r.json()["error"] == "blocking_findings"
        r = await client.post(
            f"{url}/return", json={**_draft(driven), "notes": "Temuan blocking"}, headers=auth(s, "kasubag_pp")
        )
        assert r.status_code == 201
        r = await client.get(f"/renja/{driven.renja_id}/approvals", headers=auth(s, "auditor"))
        assert [a["kind"] for a in r.json()] == ["return"]


async def test_concurrent_parafs_by_the_same_kasubag_make_exactly_one(topic: str, tmp_path: Path) -> None:
    async with run_service(create_app, ApprovalsSettings, topic=topic, run_dir=tmp_path) as (client, s):
        renjas = [await _at_step_8(client, s, topic) for _ in range(3)]
        for driven in renjas:
            url = f"/renja/{driven.renja_id}/paraf"
            first, second = await asyncio.gather(
                client.post(url, json=_draft(driven), headers=auth(s, "kasubag_pp")),
                client.post(url, json=_draft(driven), headers=auth(s, "kasubag_pp")),
            )
            assert sorted([first.status_code, second.status_code]) == [201, 409], (first.text, second.text)
        initialed = await _events_of(s, topic, "renja.Initialed.v1", expect=sum(len(d.events) for d in renjas) + 3)
        await asyncio.sleep(1.0)  # a wrong second paraf would have reached the topic by now
        initialed = await _events_of(s, topic, "renja.Initialed.v1", expect=sum(len(d.events) for d in renjas) + 3)
        assert sorted(e["renja_id"] for e in initialed) == sorted(str(d.renja_id) for d in renjas)


async def test_same_idempotency_key_replays_paraf_and_sign_with_one_event_each(topic: str, tmp_path: Path) -> None:
    async with run_service(create_app, ApprovalsSettings, topic=topic, run_dir=tmp_path) as (client, s):
        driven = await _at_step_8(client, s, topic)
        url = f"/renja/{driven.renja_id}"
        headers = {**auth(s, "kasubag_pp"), "Idempotency-Key": "paraf-8-v2"}
        first = await client.post(f"{url}/paraf", json=_draft(driven), headers=headers)
        again = await client.post(f"{url}/paraf", json=_draft(driven), headers=headers)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json() and again.headers.get("Idempotent-Replayed") == "true"
        r = await client.post(f"{url}/paraf", json=_draft(driven, note="lain"), headers=headers)
        assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"

        await client.post(f"{url}/paraf", json=_draft(driven), headers=auth(s, "sekretaris"))
        headers = {**auth(s, "kepala_badan"), "Idempotency-Key": "ttd-v2"}
        first = await client.post(f"{url}/sign", json=_draft(driven), headers=headers)
        again = await client.post(f"{url}/sign", json=_draft(driven), headers=headers)
        assert first.status_code == again.status_code == 201, again.text
        assert first.json() == again.json() and again.headers.get("Idempotent-Replayed") == "true"

        expect = len(driven.events) + 3
        await asyncio.sleep(1.0)
        records = await read_all(s.kafka_bootstrap, topic, expect=expect, timeout=15)
        types = [dict(x.headers)["ce_type"] for x in records]
        assert types.count(b"renja.Initialed.v1") == 2 and types.count(b"renja.Signed.v1") == 1
        r = await client.get(f"{url}/approvals", headers=auth(s, "auditor"))
        assert [a["kind"] for a in r.json()] == ["paraf", "paraf", "signature"]


async def test_unknown_renja_and_missing_token(topic: str, tmp_path: Path) -> None:
    async with run_service(create_app, ApprovalsSettings, topic=topic, run_dir=tmp_path) as (client, s):
        rid = "00000000-0000-4000-8000-000000000001"
        r = await client.get(f"/renja/{rid}/approvals", headers=auth(s, "auditor"))
        assert r.status_code == 404
        body = {"version": 1, "content_sha256": "a" * 64}
        assert (await client.post(f"/renja/{rid}/paraf", json=body)).status_code == 401
        r = await client.post(f"/renja/{rid}/paraf", json=body, headers=auth(s, "auditor"))
        assert r.status_code == 403
        r = await client.post(f"/renja/{rid}/paraf", json={**body, "version": 0}, headers=auth(s, "kasubag_pp"))
        assert r.status_code == 422


def test_generated_key_is_reused_on_restart_and_a_key_file_is_honoured(tmp_path: Path) -> None:
    first = load_signer(ApprovalsSettings(environment="test", run_dir=tmp_path))
    again = load_signer(ApprovalsSettings(environment="test", run_dir=tmp_path))
    assert first.key_id == again.key_id and first.public_key_b64() == again.public_key_b64()
    key_file = tmp_path / "keys" / "approvals-signing-ed25519.pem"
    assert key_file.exists() and key_file.stat().st_mode & 0o077 == 0

    private = Ed25519PrivateKey.generate()
    configured = tmp_path / "agency.pem"
    configured.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    signer = load_signer(ApprovalsSettings(environment="production", jwt_secret="s" * 40, signing_key_file=configured))
    private.public_key().verify(signer.sign(b"abc"), b"abc")
    assert signer.key_id != first.key_id

    with pytest.raises(ValidationError, match="RENJA_SIGNING_KEY_FILE"):
        ApprovalsSettings(environment="production", jwt_secret="x" * 40)
    configured.write_text("not a key")
    with pytest.raises(SigningKeyError, match="PKCS#8"):
        load_signer(ApprovalsSettings(environment="test", signing_key_file=configured))
