"""The timeline page in a real browser: headless Chromium loads it from the running audit service over
HTTP and the rendered DOM shows every SOP step, the overdue marks and the intact chain."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
import uvicorn

from services.audit.main import create_app
from services.audit.settings import AuditSettings
from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from tests.integration.test_audit_projection import SOP, START, publish, wait_rows
from tests.kit.driver import cycle_events
from tests.kit.tokens import auth

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def served(topic: str, tmp_path: Path, settings: ServiceSettings) -> AsyncIterator[tuple[str, AuditSettings]]:
    """The audit service on a real socket (uvicorn), with its own fresh database and the test topic."""
    db = f"t_{uuid4().hex[:10]}_audit"
    admin = await asyncpg.connect(settings.postgres_dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{db}"')
    cfg = AuditSettings(
        environment="test", postgres_database=db, event_topic=topic, dlq_topic_prefix=f"{topic}.dlq.", run_dir=tmp_path
    )
    await ensure_topics(cfg.kafka_bootstrap, {cfg.dlq_topic: (1, {})})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started:
                break
            await asyncio.sleep(0.1)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}", cfg
    finally:
        server.should_exit = True
        await task
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


async def chromium(*args: str, cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={cwd / 'profile'}",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_the_timeline_page_renders_every_step_in_headless_chromium(
    served: tuple[str, AuditSettings], tmp_path: Path
) -> None:
    base, cfg = served
    # one event every 7 h from Monday 08:00 WIB (some at night); a return at step 9 repeats steps 7-9
    events = cycle_events(SOP, uuid4(), start=START, gap=timedelta(hours=7), returns=(9,), receipts=2)
    await publish(cfg.kafka_bootstrap, cfg.event_topic, events)
    await wait_rows(cfg.postgres_dsn(), len(events))
    token = auth(cfg, "auditor")["Authorization"].removeprefix("Bearer ")
    url = f"{base}/renja/{events[0].renja_id}/timeline.html?token={token}"

    dom = await chromium("--dump-dom", url, cwd=tmp_path)
    for step in SOP.steps:
        assert f'id="step-{step.number}"' in dom, f"step {step.number} missing from the rendered page"
        assert step.name in dom
    assert "Selesai (didistribusikan)" in dom
    assert "terlambat" in dom  # a 7-hour gap in office hours exceeds the 15- and 30-minute standards
    assert "utuh" in dom and "tidak utuh" not in dom
    assert "ke-2" in dom  # the repeated steps after the return show both attempts

    shot = tmp_path / "timeline.png"
    await chromium(f"--screenshot={shot}", "--window-size=1400,2200", url, cwd=tmp_path)
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("RENJA_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
