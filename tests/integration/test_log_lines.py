"""Logs a pipeline can trust: a real service process (uvicorn, as the stack runs it) writes only JSON lines
of one schema; a request's lines carry its request id, a dead-lettered record's line names its own ids."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.directive.settings import DirectiveSettings
from shared.kafka import ensure_topics
from shared.logging import CORRELATION_KEYS
from shared.manifest import app_of
from tests.kit.factories import directive
from tests.kit.signing import signed
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCHEMA = {"message", "level", "logger", "service", "timestamp", *CORRELATION_KEYS}
ARAHAN = {"opd": "Dinas Log", "fiscal_year": 2027, "text": "Susun Renja", "addressee_name": "Ir. Ratna Sari Dewi"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def service_process(tmp_path: Path, topic: str) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    """``uvicorn services.directive.main:create_app --factory`` on a fresh database and ``topic``; yields a
    client and the log file (stdout and stderr), complete once the process has stopped."""
    base = DirectiveSettings(environment="test")
    db = f"t_{uuid4().hex[:10]}_logs"
    admin = await asyncpg.connect(base.postgres_dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{db}"')
    port = free_port()
    log_path = tmp_path / "directive.log"
    env = {
        **os.environ,
        "RENJA_ENVIRONMENT": "test",
        "RENJA_POSTGRES_DATABASE": db,
        "RENJA_EVENT_TOPIC": topic,
        "RENJA_DLQ_TOPIC_PREFIX": f"{topic}.dlq.",
        "RENJA_CONSUMER_GROUP": f"directive.{topic}",
        "RENJA_RELAY_POLL_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RENJA_TRACING", None)
    await ensure_topics(base.kafka_bootstrap, {f"{topic}.dlq.directive.{topic}": (1, {})})
    argv = [sys.executable, "-m", "uvicorn", app_of("directive"), "--factory", "--port", str(port)]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the service never became ready:\n" + log_path.read_text()[-3000:])
            yield client, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, key=key, value=value, headers=headers)
    finally:
        await producer.stop()


def lines_of(log_path: Path) -> list[dict[str, Any]]:
    """Every line of the log as JSON (a line that is not JSON fails the test, quoted)."""
    parsed = []
    for number, line in enumerate(log_path.read_text().splitlines(), 1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"log line {number} is not JSON: {line!r}")
    return parsed


async def test_every_line_is_json_of_one_schema_and_a_dead_letter_names_its_own_record(
    tmp_path: Path, topic: str
) -> None:
    s = DirectiveSettings(environment="test")
    good = directive()
    # the poison record shares the good one's partition (same key), after it, with an id of its own
    poison_id, poison_renja = str(uuid4()), str(good.renja_id)
    async with service_process(tmp_path, topic) as (client, log_path):
        r = await client.post("/renja", json=ARAHAN, headers={**auth(s, "kepala_badan"), "X-Request-ID": "req-1"})
        assert r.status_code == 201, r.text
        assert r.headers["x-request-id"] == "req-1"
        assert (await client.get("/renja", headers=auth(s, "auditor"))).headers["x-request-id"]
        assert (await client.get("/no/such/route")).status_code == 404
        assert (await client.get(f"/renja?token={'a' * 40}", headers={"X-Request-ID": "bad id!"})).status_code == 401
        # a good record (its ids are bound while it is handled), then a poison one with other ids
        rec = signed(good)  # as its producing service signs it: only the poison is dead-lettered
        poison_headers = [(k, v) for k, v in rec.headers if k != "ce_id"] + [("ce_id", poison_id.encode())]
        records = [(rec.key, rec.value, rec.headers), (poison_renja.encode(), b"{not json", poison_headers)]
        await produce(s.kafka_bootstrap, topic, records)
        for _ in range(300):
            if '"dead_lettered"' in log_path.read_text():
                break
            await asyncio.sleep(0.2)
    lines = lines_of(log_path)
    assert len(lines) > 10
    for line in lines:
        assert line.keys() >= SCHEMA, line
        assert "event" not in line, line
        assert line["service"] == "directive"
    assert not [x for x in lines if x["level"] in ("error", "critical")], "a normal run logs no error"
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    created = [x for x in access if x["http_method"] == "POST" and x["http_path"] == "/renja"]
    assert created and created[0]["request_id"] == "req-1" and created[0]["http_status"] == 201
    bad_id = [x for x in access if str(x["http_path"]).startswith("/renja?token")]
    assert bad_id and bad_id[0]["request_id"] not in (None, "bad id!") and "aaaa" not in bad_id[0]["http_path"]
    assert any(x["logger"] == "uvicorn.error" and "Started server process" in x["message"] for x in lines)
    dead = [x for x in lines if x["message"] == "dead_lettered"]
    assert len(dead) == 1 and dead[0]["reason"] == "not_json"
    assert (dead[0]["event_id"], dead[0]["renja_id"]) == (poison_id, poison_renja)
