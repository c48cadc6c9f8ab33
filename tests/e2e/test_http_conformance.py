"""HTTP conformance on the running stack: schemathesis (bounded) over every service's OpenAPI document finds
no 5xx and no status code the document does not list; 401 says how to authenticate, 405 what is allowed.

As the auditor (read-only: the fuzzed requests change nothing on the stack; every command answers the
documented 403). ``POST /rebuild/compare`` is left out: it replays the whole log, a benchmark, not a probe.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from shared.manifest import BY_NAME
from shared.settings import ServiceSettings
from tests.kit.tokens import token

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 5
"""Fuzzed examples per operation (65 operations; plus each operation's own examples): the six services'
runs take about two minutes together on an idle machine."""


def base_url(settings: ServiceSettings, name: str) -> str:
    port = settings.service_ports.get(name, BY_NAME[name].port)
    return f"http://{settings.service_host}:{port}"


def schemathesis(settings: ServiceSettings, name: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base_url(settings, name)}/openapi.json",
        "--checks",
        "not_a_server_error,status_code_conformance",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,fuzzing",
        "--seed",
        "16",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        *(["--exclude-path", "/rebuild/compare"] if name == "audit" else []),
        "--suppress-health-check",
        "all",
        "--no-color",
        "-H",
        f"Authorization: Bearer {token(settings, 'auditor')}",
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("name", ["directive", "documents", "meetings", "approvals", "notifier", "audit"])
async def test_no_5xx_and_no_undocumented_status(settings: ServiceSettings, name: str) -> None:
    run = await asyncio.to_thread(schemathesis, settings, name)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


async def test_401_names_the_scheme_and_405_lists_the_allowed_methods(settings: ServiceSettings) -> None:
    async with httpx.AsyncClient(base_url=base_url(settings, "directive"), timeout=10) as client:
        r = await client.get("/renja")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = await client.delete("/renja")
        # Starlette names the methods of the first route on that path (here POST; GET /renja is another route)
        assert r.status_code == 405 and "POST" in r.headers["allow"].replace(" ", "").split(",")
        assert r.json()["error"] == "method_not_allowed"
    async with httpx.AsyncClient(base_url=base_url(settings, "documents"), timeout=10) as client:
        auditor = {"Authorization": f"Bearer {token(settings, 'auditor')}"}
        r = await client.get(f"/renja/{'0' * 8}-0000-0000-0000-{'0' * 12}/drafts/{2**31}", headers=auditor)
        assert r.status_code == 422 and "2147483647" in r.json()["message"], r.text
