"""The local no-Docker stack (``deploy/local``): ``up`` idempotence, status, topics, repair after a crash.

The session fixture brings the stack up through the same function ``renja up`` calls and leaves it
running for the other integration/e2e tests; the crash test restores it before it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.local import stack
from deploy.local.settings import StackSettings
from shared import manifest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
async def running_stack() -> AsyncIterator[StackSettings]:
    """The stack, brought up (idempotently) once per session and left running afterwards."""
    settings = StackSettings()
    await stack.up(settings, echo=lambda _line: None)
    yield settings


async def renja_status_json() -> tuple[int, dict[str, Any]]:
    """Run the real CLI, ``renja status --json``, in a child process: ``(exit code, parsed JSON)``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "status",
        "--json",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    try:
        document = json.loads(out)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"status --json printed no JSON: {out!r} / {err!r}") from exc
    return proc.returncode, document


async def admin_client(settings: StackSettings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000)
    await admin.start()
    return admin


async def test_status_json_reports_kafka_postgres_and_mail_healthy_with_pids(
    running_stack: StackSettings,
) -> None:
    code, document = await renja_status_json()

    components = document["components"]
    for name, address in (
        ("kafka", running_stack.kafka_bootstrap),
        ("postgres", running_stack.postgres_address),
        ("mail", running_stack.mail_address),
    ):
        assert components[name]["healthy"] is True, components
        assert isinstance(components[name]["pid"], int)
        assert components[name]["address"] == address
    all_healthy = all(c["healthy"] for c in components.values())
    assert (code == 0) == all_healthy


async def test_status_lists_every_existing_service_module(running_stack: StackSettings) -> None:
    _, document = await renja_status_json()

    expected = {name for name in running_stack.service_ports if (REPO_ROOT / "services" / name / "main.py").exists()}
    listed = set(document["components"]) - {"kafka", "postgres", "mail"}
    assert listed == expected


async def test_second_up_is_a_no_op_that_changes_no_pid(running_stack: StackSettings) -> None:
    before = await stack.status(running_stack)
    lines: list[str] = []

    actions = await stack.up(running_stack, echo=lines.append)

    after = await stack.status(running_stack)
    assert set(actions.values()) == {"unchanged"}, actions
    assert {n: s.pid for n, s in after.items()} == {n: s.pid for n, s in before.items()}
    assert "stack: everything already healthy, nothing to do" in lines


async def test_every_service_database_exists(running_stack: StackSettings) -> None:
    for db in (spec.database for spec in manifest.SERVICES):
        conn = await asyncpg.connect(running_stack.postgres_dsn(db), timeout=10)
        try:
            assert await conn.fetchval("SELECT current_database()") == db
        finally:
            await conn.close()


async def test_event_topic_has_six_partitions_and_infinite_retention(running_stack: StackSettings) -> None:
    admin = await admin_client(running_stack)
    try:
        [topic] = await admin.describe_topics([running_stack.event_topic])
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, running_stack.event_topic)])
    finally:
        await admin.close()

    assert topic["error_code"] == 0
    assert len(topic["partitions"]) >= 6
    [resource] = response.to_object()["resources"]
    configs = {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}
    assert configs["retention.ms"] == "-1"
    assert configs["retention.bytes"] == "-1"
    assert configs["cleanup.policy"] == "delete"


async def test_one_dead_letter_topic_per_consumer_group(running_stack: StackSettings) -> None:
    admin = await admin_client(running_stack)
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()

    for spec in manifest.SERVICES:
        assert f"renja.events.dlq.{spec.consumer_group}" in topics


async def test_mail_sink_writes_each_message_as_an_eml_file(running_stack: StackSettings) -> None:
    before = set(running_stack.mail_dir.glob("*.eml"))
    message = EmailMessage()
    message["From"] = "renja@bappeda.example"
    message["To"] = "sekretaris@bappeda.example"
    message["Subject"] = "Uji kotak surat lokal"
    message.set_content("Renja 2027 menunggu paraf Anda.")

    await aiosmtplib.send(message, hostname=running_stack.mail_host, port=running_stack.mail_port, timeout=10)

    [new_file] = set(running_stack.mail_dir.glob("*.eml")) - before
    text = new_file.read_text()
    assert "X-Envelope-To: sekretaris@bappeda.example" in text
    assert "Subject: Uji kotak surat lokal" in text


async def _wait_until_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while stack.pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        await asyncio.sleep(0.1)


async def test_killed_kafka_is_reported_unhealthy_then_restarted_by_up(running_stack: StackSettings) -> None:
    kafka_pid = (await stack.status(running_stack))["kafka"].pid
    assert kafka_pid is not None
    os.kill(kafka_pid, signal.SIGKILL)
    await _wait_until_gone(kafka_pid, 10)

    code, document = await renja_status_json()
    assert code != 0
    assert document["components"]["kafka"] == {
        "address": running_stack.kafka_bootstrap,
        "pid": None,
        "healthy": False,
    }
    assert document["components"]["postgres"]["healthy"] is True

    lines: list[str] = []
    actions = await stack.up(running_stack, echo=lines.append)

    assert actions["kafka"] == "restarted"
    assert actions["postgres"] == "unchanged"
    after = await stack.status(running_stack)
    assert after["kafka"].healthy
    assert after["kafka"].pid not in (None, kafka_pid)
    # The log survived the crash: no topic had to be created again.
    assert not [line for line in lines if "created topics" in line], lines


def test_settings_round_trip_through_the_child_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("RENJA_")]:
        monkeypatch.delenv(key)  # independent of the stack this test session runs against
    custom = StackSettings(kafka_port=19092, postgres_port=15432, service_ports={"audit": 9106}, databases=("audit",))
    for key, value in custom.as_env().items():
        monkeypatch.setenv(key, value)

    rebuilt = StackSettings()

    assert rebuilt == custom
    assert rebuilt.kafka_bootstrap == "127.0.0.1:19092"
    assert rebuilt.postgres_dsn("audit") == "postgresql://postgres@127.0.0.1:15432/audit"
    assert rebuilt.dlq_topics == ("renja.events.dlq.audit",)


def _processes_under(run_dir: Path) -> list[str]:
    """Command lines of live processes that mention ``run_dir`` (our Postgres, Kafka, mail sink…)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if str(run_dir) in cmdline and state != "Z":  # zombies are already gone, only not yet reaped
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


async def test_down_leaves_no_process_behind_and_up_brings_everything_back(running_stack: StackSettings) -> None:
    before = await stack.status(running_stack)
    pids = [st.pid for st in before.values() if st.pid is not None]
    assert pids
    await stack.down(running_stack, echo=lambda _line: None)
    for pid in pids:
        await _wait_until_gone(pid, 30)
    assert not [pid for pid in pids if stack.pid_alive(pid)]
    assert _processes_under(running_stack.run_dir) == []
    assert not any(st.healthy for st in (await stack.status(running_stack)).values())

    # The rest of the session (and the developer's shell) gets its stack back.
    actions = await stack.up(running_stack, echo=lambda _line: None)
    assert set(actions.values()) <= {"started", "restarted"}
    assert all(st.healthy for st in (await stack.status(running_stack)).values())
