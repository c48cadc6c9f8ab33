"""Notifier service (step 11, next-actor mails, webhooks) through HTTP, on real Postgres, Kafka and SMTP.

Earlier steps are published onto the test topic with ``tests.kit.driver``; mails go to an ``aiosmtpd``
server started here; webhooks go to a tiny HTTP receiver started here on a loopback port.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from services.notifier import signing
from services.notifier.main import create_app
from services.notifier.settings import NotifierSettings
from shared.settings import ServiceSettings
from shared.sop import load_sop
from tests.kit.driver import publish_until
from tests.kit.kafkatools import publish, read_all
from tests.kit.servicekit import run_service, wait_state
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

SOP = load_sop()
RECEIVED_AT = "2026-01-05T09:30:00+07:00"  # long before any test's distribution (the driver's clock is now)
# Step timers off: the driver's cycles are 3 hours old, so during office hours their steps would be
# overdue and the timers' notices would add mails these tests do not count (tests/integration/test_step_timers).
FAST: dict[str, Any] = {
    "dispatch_poll_seconds": 0.1,
    "retry_base_seconds": 0.2,
    "retry_max_seconds": 1.0,
    "timers_enabled": False,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(check: Callable[[], Awaitable[Any] | Any], *, timeout_s: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last value: {value!r}")
        await asyncio.sleep(0.1)


# --- an SMTP server that keeps what it receives ---------------------------------------------------------


@dataclass
class MailCapture:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]


@contextmanager
def smtp_server() -> Iterator[tuple[MailCapture, int]]:
    capture = MailCapture()
    port = free_port()
    controller = Controller(capture, hostname="127.0.0.1", port=port, server_hostname="test-smtp")
    controller.start()
    try:
        yield capture, port
    finally:
        controller.stop()


# --- a webhook receiver answering a scripted list of statuses -------------------------------------------


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if ":" in h)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status = self.statuses.pop(0) if self.statuses else 200
        self.requests.append((headers, body, status))
        writer.write(f"HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    def delivered_ids(self) -> list[str]:
        return [h["webhook-id"] for h, _, status in self.requests if status == 200]


@asynccontextmanager
async def webhook_receiver(statuses: list[int] | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(statuses=list(statuses or []))
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks/renja"
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


async def register(client: httpx.AsyncClient, s: ServiceSettings, url: str, types: list[str]) -> dict[str, Any]:
    r = await client.post("/webhooks", json={"url": url, "event_types": types}, headers=auth(s, "sekretaris"))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


# --- step 11 --------------------------------------------------------------------------------------------


async def test_distribution_of_the_signed_renja_mails_each_recipient_and_takes_receipts_once(topic: str) -> None:
    with smtp_server() as (mails, smtp_port):
        async with (
            webhook_receiver() as receiver,
            run_service(create_app, NotifierSettings, topic=topic, mail_port=smtp_port, **FAST) as (client, s),
        ):
            # The notifier's own events skip its consumer (their inbox rows commit with the command), so
            # their webhooks are queued by the command itself: checked at the end.
            await register(client, s, receiver.url, ["renja.Distributed.v1", "renja.ReceiptRecorded.v1"])
            driven = await publish_until(s, topic, step=10)
            await wait_state(client, s, driven.renja_id, until=lambda st: st["due_step"] == 11)
            rid = driven.renja_id
            signed_sha = driven.state.signed_sha256
            assert signed_sha is not None
            signed = {"version": driven.state.signed_version, "content_sha256": signed_sha}

            r = await client.post(f"/renja/{rid}/distribution", json=signed, headers=auth(s, "kasubag_pp"))
            assert r.status_code == 403 and r.json()["error"] == "wrong_role" and r.json()["due_step"] == 11
            r = await client.post(f"/renja/{rid}/distribution", json=signed, headers=auth(s, "auditor"))
            assert r.status_code == 403
            stale = {**signed, "content_sha256": "0" * 64}
            r = await client.post(f"/renja/{rid}/distribution", json=stale, headers=auth(s, "staf"))
            assert r.status_code == 409 and r.json()["error"] == "stale_version", r.text

            headers = {**auth(s, "staf"), "Idempotency-Key": "distribusi-1"}
            first = await client.post(f"/renja/{rid}/distribution", json=signed, headers=headers)
            assert first.status_code == 201, first.text
            replay = await client.post(f"/renja/{rid}/distribution", json=signed, headers=headers)
            assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
            assert replay.json() == first.json()
            body = first.json()
            year = driven.state.fiscal_year
            assert body["archive_ref"] == f"ARSIP/RENJA/BAPPEDA-KOTA-BOGOR/{year}/{signed_sha[:12]}"
            assert body["recipients"] == [r.name for r in SOP.distribution]

            # Every configured recipient gets one mail with the archive reference and a personal receipt link.
            for recipient in SOP.distribution:
                await eventually(lambda rc=recipient: mails.to(rc.email))  # type: ignore[misc]
            links = {}
            for recipient in SOP.distribution:
                (msg,) = mails.to(recipient.email)
                text = msg.get_content()
                assert body["archive_ref"] in msg["Subject"] and body["archive_ref"] in text
                links[recipient.name] = re.search(r"/receipts/(\S+)", text).group(1)  # type: ignore[union-attr]
            assert len(set(links.values())) == len(links)

            # The distribution is on the log, once (the replay appended nothing).
            records = await read_all(s.kafka_bootstrap, topic, expect=11)
            assert [dict(x.headers)["ce_type"] for x in records].count(b"renja.Distributed.v1") == 1

            # Receipts: staff on behalf of one recipient, once; another through their own link.
            first_name, second_name = SOP.distribution[0].name, SOP.distribution[1].name
            receipt = {"recipient": first_name, "received_by": "Petugas TU (fiktif)", "received_at": RECEIVED_AT}
            r = await client.post(f"/renja/{rid}/distribution/receipts", json=receipt, headers=auth(s, "staf"))
            assert r.status_code == 422 and "before it was distributed" in r.json()["message"], r.text
            receipt["received_at"] = datetime.now(UTC).isoformat()
            r = await client.post(f"/renja/{rid}/distribution/receipts", json=receipt, headers=auth(s, "staf"))
            assert r.status_code == 201, r.text
            r = await client.post(f"/renja/{rid}/distribution/receipts", json=receipt, headers=auth(s, "staf"))
            assert r.status_code == 409 and r.json()["error"] == "already_recorded"
            r = await client.post(
                f"/renja/{rid}/distribution/receipts",
                json={"recipient": "Bukan Penerima", "received_at": RECEIVED_AT},
                headers=auth(s, "staf"),
            )
            assert r.status_code == 422
            r = await client.post(f"/renja/{rid}/distribution/receipts", json=receipt, headers=auth(s, "auditor"))
            assert r.status_code == 403

            r = await client.get(f"/receipts/{links[second_name]}")
            assert r.status_code == 200 and r.json()["recipient"] == second_name
            r = await client.post(f"/receipts/{links[second_name]}", json={"received_by": "Kepala Bidang (fiktif)"})
            assert r.status_code == 201, r.text
            r = await client.post(f"/receipts/{links[second_name]}", json={"received_by": "lagi"})
            assert r.status_code == 409
            assert (await client.post("/receipts/not-a-token", json={"received_by": "x"})).status_code == 404

            r = await client.get(f"/renja/{rid}/distribution", headers=auth(s, "auditor"))
            assert r.status_code == 200, r.text
            proof = r.json()
            assert proof["archive_ref"] == body["archive_ref"] and proof["complete"] is False
            by_name = {p["name"]: p for p in proof["recipients"]}
            assert by_name[first_name]["received"] and by_name[first_name]["received_by"] == "Petugas TU (fiktif)"
            assert by_name[second_name]["received"] and by_name[second_name]["received_by"] == "Kepala Bidang (fiktif)"
            assert not by_name[SOP.distribution[2].name]["received"]
            assert {p["mail_status"] for p in proof["recipients"]} == {"sent"}

            await eventually(lambda: len(receiver.delivered_ids()) == 3)
            types = sorted(json.loads(b)["type"] for _, b, _ in receiver.requests)
            assert types == ["renja.Distributed.v1", "renja.ReceiptRecorded.v1", "renja.ReceiptRecorded.v1"]
            assert first.json()["events"][0]["event_id"] in receiver.delivered_ids()


async def test_distribution_before_signing_is_refused(topic: str) -> None:
    async with run_service(create_app, NotifierSettings, topic=topic, **FAST) as (client, s):
        driven = await publish_until(s, topic, step=9)
        await wait_state(client, s, driven.renja_id, until=lambda st: st["due_step"] == 10)
        rid = driven.renja_id
        draft = {"version": driven.state.akhir_version, "content_sha256": driven.state.akhir_sha256}
        r = await client.post(f"/renja/{rid}/distribution", json=draft, headers=auth(s, "staf"))
        assert r.status_code == 409 and r.json()["error"] == "out_of_order" and r.json()["due_step"] == 10
        r = await client.post(
            f"/renja/{rid}/distribution/receipts",
            json={"recipient": SOP.distribution[0].name, "received_at": RECEIVED_AT},
            headers=auth(s, "staf"),
        )
        assert r.status_code == 409
        assert (await client.get(f"/renja/{rid}/distribution", headers=auth(s, "staf"))).status_code == 404


# --- next-actor mails -----------------------------------------------------------------------------------


async def test_next_actor_is_mailed_over_smtp_when_a_step_becomes_due(topic: str) -> None:
    with smtp_server() as (mails, smtp_port):
        async with run_service(create_app, NotifierSettings, topic=topic, mail_port=smtp_port, **FAST) as (_, s):
            assert isinstance(s, NotifierSettings)
            driven = await publish_until(s, topic, step=1)
            sekretaris = s.people["sekretaris"]
            (msg,) = await eventually(lambda: mails.to(sekretaris.email))
            assert msg["To"].addresses[0].addr_spec == sekretaris.email
            subject = msg["Subject"]
            step2 = SOP.step(2)
            assert f"Langkah 2: {step2.activity}" in subject
            assert f"{driven.state.opd} {driven.state.fiscal_year}" in subject
            assert f"mutu baku {step2.standard_minutes} menit kerja" in subject

            await publish_until(s, topic, step=2, driven=driven)
            kasubag = s.people["kasubag_pp"]
            (msg,) = await eventually(lambda: mails.to(kasubag.email))
            assert "Langkah 3:" in msg["Subject"]
            await asyncio.sleep(0.5)
            assert len(mails.to(sekretaris.email)) == 1  # one mail per step that became due


async def test_mail_waits_in_the_outbox_while_smtp_is_down_and_a_superseded_step_is_not_mailed(topic: str) -> None:
    port = free_port()  # nothing listens here yet
    async with run_service(create_app, NotifierSettings, topic=topic, mail_port=port, **FAST) as (_, s):
        assert isinstance(s, NotifierSettings)
        conn = await asyncpg.connect(s.postgres_dsn())
        try:

            async def tries(step: int) -> int:
                sql = "SELECT coalesce(max(attempts), 0) FROM outbound_messages WHERE due_step = $1"
                return int(await conn.fetchval(sql, step))

            async def retried(step: int) -> bool:
                return await tries(step) >= 2

            driven = await publish_until(s, topic, step=1)
            await eventually(lambda: retried(2))  # step 2's mail failed twice and is still queued
            await publish_until(s, topic, step=2, driven=driven)
            await eventually(lambda: retried(3))
            capture = MailCapture()
            controller = Controller(capture, hostname="127.0.0.1", port=port, server_hostname="test-smtp")
            controller.start()
            try:
                (msg,) = await eventually(lambda: capture.to(s.people["kasubag_pp"].email))
                assert "Langkah 3:" in msg["Subject"]
                await asyncio.sleep(0.5)
                # Step 2 was done before the server came back: its mail is dropped, not sent late.
                assert capture.to(s.people["sekretaris"].email) == []
                row = await conn.fetchrow(
                    "SELECT sent_at, skipped_at, last_error FROM outbound_messages WHERE due_step = 2"
                )
                assert row["sent_at"] is None and row["skipped_at"] is not None
                assert "superseded" in row["last_error"]
            finally:
                controller.stop()
        finally:
            await conn.close()


# --- webhooks -------------------------------------------------------------------------------------------


async def test_webhook_admin_roles_and_validation(topic: str) -> None:
    async with run_service(create_app, NotifierSettings, topic=topic, **FAST) as (client, s):
        good = {"url": "http://127.0.0.1:9/hook", "event_types": ["renja.Signed.v1"]}
        assert (await client.post("/webhooks", json=good, headers=auth(s, "auditor"))).status_code == 403
        assert (await client.post("/webhooks", json=good, headers=auth(s, "staf"))).status_code == 403
        r = await client.post("/webhooks", json={**good, "event_types": ["Signed"]}, headers=auth(s, "kepala_badan"))
        assert r.status_code == 422 and "Signed" in r.json()["message"]
        r = await client.post("/webhooks", json={**good, "url": "ftp://x/y"}, headers=auth(s, "kepala_badan"))
        assert r.status_code == 422
        r = await client.post("/webhooks", json=good, headers=auth(s, "kepala_badan"))
        assert r.status_code == 201
        hook = r.json()
        assert hook["secret"].startswith("whsec_") and len(signing.secret_key(hook["secret"])) == 24
        listed = (await client.get("/webhooks", headers=auth(s, "auditor"))).json()
        assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
        assert (await client.delete(f"/webhooks/{hook['id']}", headers=auth(s, "auditor"))).status_code == 403
        assert (await client.delete(f"/webhooks/{hook['id']}", headers=auth(s, "sekretaris"))).status_code == 204
        assert (await client.delete(f"/webhooks/{hook['id']}", headers=auth(s, "sekretaris"))).status_code == 404
        assert (await client.get("/webhooks", headers=auth(s, "sekretaris"))).json() == []


async def test_in_production_a_webhook_to_an_internal_address_is_refused(topic: str) -> None:
    async with run_service(create_app, NotifierSettings, topic=topic, **FAST) as (client, s):
        head = auth(s, "kepala_badan")
        # Loopback receivers stay allowed outside production (every webhook test here relies on it).
        r = await client.post("/webhooks", json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}, headers=head)
        assert r.status_code == 201, r.text
        s.environment = "production"  # the running app reads its settings object on each request
        try:
            for url in ("https://127.0.0.1/hook", "https://localhost:8443/hook", "https://10.0.0.7/x",
                        "https://169.254.169.254/latest/meta-data/", "https://[fd00::1]/x", "https://0.0.0.0/x",
                        "https://[::ffff:192.168.1.1]/x"):  # fmt: skip
                r = await client.post("/webhooks", json={"url": url, "event_types": ["*"]}, headers=head)
                assert r.status_code == 422 and "address" in r.json()["message"], (url, r.text)
            r = await client.post("/webhooks", json={"url": "http://93.184.216.34/x", "event_types": ["*"]},
                                  headers=head)  # fmt: skip
            assert r.status_code == 422 and "https" in r.json()["message"]
            r = await client.post("/webhooks", json={"url": "https://93.184.216.34/x", "event_types": ["*"]},
                                  headers=head)  # fmt: skip
            assert r.status_code == 201, r.text
        finally:
            s.environment = "test"
        listed = (await client.get("/webhooks", headers=head)).json()
        assert sorted(h["url"] for h in listed) == ["http://127.0.0.1:9/hook", "https://93.184.216.34/x"]


async def test_webhook_is_signed_and_delivered_once_per_event_even_if_consumed_twice(topic: str) -> None:
    async with (
        webhook_receiver() as receiver,
        run_service(create_app, NotifierSettings, topic=topic, **FAST) as (
            client,
            s,
        ),
    ):
        hook = await register(client, s, receiver.url, ["renja.DirectiveIssued.v2"])
        driven = await publish_until(s, topic, step=1)
        arahan = driven.events[0]
        await publish(s, topic, [arahan])  # the same event id again: a redelivery
        driven = await publish_until(s, topic, step=2, driven=driven)
        instruksi = driven.events[1]
        # Same partition (key = Renja id): once the second event is delivered, the duplicate was consumed.
        await eventually(lambda: str(instruksi.event_id) in receiver.delivered_ids())
        await asyncio.sleep(0.5)
        assert receiver.delivered_ids() == [str(arahan.event_id), str(instruksi.event_id)]

        headers, body, _ = receiver.requests[0]
        ts = int(headers["webhook-timestamp"])
        assert abs(ts - time.time()) < 120
        assert signing.verify(
            hook["secret"], headers["webhook-id"], ts, body, headers["webhook-signature"], now=int(time.time())
        )
        # The same check by hand, from the secret alone (what a subscriber would write).
        key = signing.secret_key(hook["secret"])
        import base64
        import hashlib
        import hmac

        mac = hmac.new(key, f"{headers['webhook-id']}.{ts}.".encode() + body, hashlib.sha256).digest()
        assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
        payload = json.loads(body)
        assert payload["type"] == "renja.DirectiveIssued.v2" and payload["id"] == str(arahan.event_id)
        assert payload["data"]["level"] == "arahan" and payload["subject"] == str(driven.renja_id)

        deliveries = (await client.get(f"/webhooks/{hook['id']}/deliveries", headers=auth(s, "auditor"))).json()
        assert [(d["event_id"], d["status"], d["attempts"]) for d in deliveries] == [
            (str(arahan.event_id), "delivered", 1),
            (str(instruksi.event_id), "delivered", 1),
        ]


async def test_webhook_is_retried_with_backoff_until_the_receiver_accepts(topic: str) -> None:
    async with (
        webhook_receiver(statuses=[500, 500]) as receiver,
        run_service(create_app, NotifierSettings, topic=topic, **FAST) as (client, s),
    ):
        hook = await register(client, s, receiver.url, ["*"])
        driven = await publish_until(s, topic, step=1)
        event_id = str(driven.events[0].event_id)
        await eventually(lambda: receiver.delivered_ids() == [event_id])
        assert [(h["webhook-id"], status) for h, _, status in receiver.requests] == [
            (event_id, 500),
            (event_id, 500),
            (event_id, 200),
        ]
        (delivery,) = (await client.get(f"/webhooks/{hook['id']}/deliveries", headers=auth(s, "sekretaris"))).json()
        assert delivery["status"] == "delivered" and delivery["attempts"] == 3 and delivery["last_status"] == 200


async def test_webhook_gives_up_after_the_configured_attempts(topic: str) -> None:
    async with (
        webhook_receiver(statuses=[503] * 10) as receiver,
        run_service(create_app, NotifierSettings, topic=topic, webhook_max_attempts=2, **FAST) as (client, s),
    ):
        hook = await register(client, s, receiver.url, ["renja.DirectiveIssued.v2"])
        await publish_until(s, topic, step=1)

        async def failed() -> list[dict[str, Any]]:
            r = await client.get(f"/webhooks/{hook['id']}/deliveries", headers=auth(s, "sekretaris"))
            return [d for d in r.json() if d["status"] == "failed"]

        (delivery,) = await eventually(failed)
        assert delivery["attempts"] == 2 and delivery["last_status"] == 503 and "503" in delivery["last_error"]
        await asyncio.sleep(1.0)
        assert len(receiver.requests) == 2
