"""The rolling-upgrade drill (issue 10, item 5): two releases of the code on one running local stack.

Owns the drill's steps and checks; run it with ``make drill-rolling-upgrade`` (not part of ``make test``):

1. a "newer release" is this work tree's ``HEAD`` (``git archive``) in a temp dir, patched with
   ``newer-release.patch``: ``DirectiveIssued`` gains a defaulted ``priority`` the newer decider fills,
   an *arahan* also emits ``renja.DirectiveAcknowledged.v1`` (a type the old release does not know), and
   the audit's ``PROJECTION_VERSION`` goes 8 → 9 because its fold changed: it now chains that type;
2. the stack (``RENJA_*`` from the environment: source ``.env.ports`` first) runs with ``directive`` from
   the newer copy and every other service from this tree; one whole cycle is driven over HTTP; checks:
   distributed at every service, no new dead letter on any DLQ topic, ``renja reconcile`` (old release)
   clean, the (restarted, old) audit logged the new type as skipped and every old consumer counted it
   (``renja_consumer_unknown_types_skipped_total`` on ``/metrics``);
3. every service restarts from the newer copy: the audit refolds (mark 4, refold logged, rows rebuilt,
   the new type now chained); every chain verifies (newer ``renja verify``) and ``renja reconcile`` is
   clean; then every service restarts again from the same release: same fold, so no refold (same mark, no
   refold log, the very same row tuples: same ``xmin``), chains and reconcile again.

Without the version bump (an unchanged fold mark for a fold that changed) step 3 fails: the records the
old audit skipped are missing from its chains (``verify`` against Kafka, ``reconcile``).

A short report is printed; the exit code is 1 if any check failed. In ``finally`` every service is stopped
and started again from this tree (as ``renja up`` does; the old audit then refolds back to its own
version) and the temp copy is removed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx

from deploy.local import supervisor
from deploy.local.drills.report import Report
from deploy.local.process import spawn
from deploy.local.services import Service, existing_services
from deploy.local.settings import StackSettings
from shared.dlq import dead_letters
from shared.manifest import SERVICES, app_of, database_of
from shared.settings import ServiceSettings
from shared.sop import load_sop
from tests.kit.driver import STEPS, Http, HttpCycle
from tests.kit.rows import load_rows
from tests.kit.tokens import everyone

HERE = Path(__file__).resolve().parent
PATCH = HERE / "newer-release.patch"
NEW_TYPE = "renja.DirectiveAcknowledged.v1"
UPGRADED_FIRST = "directive"


def make_newer_copy(repo: Path, dest: Path) -> None:
    """``HEAD`` of ``repo`` exported into ``dest`` and patched there (never in ``repo``)."""
    archive = subprocess.run(["git", "-C", str(repo), "archive", "HEAD"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    subprocess.run(["git", "apply", str(PATCH)], cwd=dest, check=True)


async def start_from(settings: StackSettings, name: str, root: Path) -> None:
    """Stop service ``name`` and start the same uvicorn command from ``root`` (same port, same env)."""
    svc = Service(settings, name)
    await svc.stop()
    argv = [sys.executable, "-m", "uvicorn", app_of(name), "--factory"]
    argv += ["--host", settings.service_host, "--port", str(svc.port)]
    env = {**svc.env(), "PYTHONPATH": str(root)}
    spawn(argv, log_path=svc.log_path, pid_file=svc.pid_file, cwd=root, env=env)
    deadline = time.monotonic() + svc.start_timeout_s
    while not await svc.healthy():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} from {root} not healthy; see {svc.log_path}")
        await asyncio.sleep(0.5)


def renja_cli(root: Path, settings: StackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """``renja <args>`` run by the release in ``root`` against the stack."""
    env = {**os.environ, **settings.as_env(), "PYTHONPATH": str(root)}
    argv = [sys.executable, "-c", "from cli.main import app; app()", *args]
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)


async def dlq_count(settings: StackSettings) -> int:
    """Dead letters on every consuming service's DLQ topic."""
    total = 0
    for spec in SERVICES:
        if spec.consumes:
            total += len(await dead_letters(settings.kafka_bootstrap, spec.dlq_topic))
    return total


async def drive_cycle(settings: StackSettings) -> tuple[str, int]:
    """One whole cycle over HTTP (steps 1..11, step 11 with every recipient's receipt) for a fresh OPD;
    the Renja id and the number of receipts."""
    api = Http(settings.service_url, everyone(ServiceSettings(service="drill")), timeout_s=60)
    try:
        run = int(time.time()) % 1_000_000
        opd = f"OPD Drill Rolling {run}"
        cycle = HttpCycle(api, load_sop(), opd=opd, year=2031, rows=load_rows(), key_prefix=f"drill-{run}")
        for n in range(1, 12):
            await cycle.run(STEPS[n])
        return cycle.renja_id, len(cycle.receipts)
    finally:
        await api.close()


async def not_distributed(settings: StackSettings, renja_id: str, timeout_s: float = 60) -> list[str]:
    """The services whose own state of the Renja is not ``distributed`` after up to ``timeout_s``."""
    api = Http(settings.service_url, everyone(ServiceSettings(service="drill")), timeout_s=10)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            behind = []
            for spec in SERVICES:
                if spec.name == "audit":
                    continue
                r = await api.client.get(
                    api.url(spec.name, f"/renja/{renja_id}/state"),
                    headers={"Authorization": f"Bearer {api.tokens['auditor']}"},
                )
                if r.status_code != 200 or r.json()["state"]["status"] != "distributed":
                    behind.append(spec.name)
            if not behind or time.monotonic() > deadline:
                return behind
            await asyncio.sleep(0.5)
    finally:
        await api.close()


async def audit_holds(settings: StackSettings, renja_id: str, want: int, timeout_s: float = 120) -> int:
    """Wait until the audit stores ``want`` events of the Renja; the count it reached."""
    conn = await asyncpg.connect(settings.postgres_dsn(database_of("audit")))
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            got = int(await conn.fetchval("SELECT count(*) FROM audit_events WHERE renja_id = $1", UUID(renja_id)))
            if got >= want or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Marks:
    """What a refold would change: the stored projection version and the ``xmin`` of a Renja's audit rows
    (a rebuilt row is a new tuple); plus every Renja in the audit."""

    version: str | None
    xmins: list[str]
    renjas: list[UUID]


async def audit_marks(settings: StackSettings, renja_id: str | None) -> Marks:
    """The audit's ``Marks`` (``xmins`` empty when ``renja_id`` is None)."""
    conn = await asyncpg.connect(settings.postgres_dsn(database_of("audit")))
    try:
        version = await conn.fetchval("SELECT value FROM audit_meta WHERE key = 'projection_version'")
        rows = await conn.fetch(
            "SELECT xmin::text AS x FROM audit_events WHERE renja_id = $1 ORDER BY position",
            UUID(renja_id) if renja_id else None,
        )
        renjas = [r["renja_id"] for r in await conn.fetch("SELECT DISTINCT renja_id FROM audit_events")]
        return Marks(version, [r["x"] for r in rows], renjas)
    finally:
        await conn.close()


async def skipped_counts(settings: StackSettings, names: list[str]) -> dict[str, float]:
    """Each service's ``renja_consumer_unknown_types_skipped_total`` for ``NEW_TYPE`` (its ``/metrics``)."""
    line = f'renja_consumer_unknown_types_skipped_total{{event_type="{NEW_TYPE}"}} '
    counts: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for name in names:
            text = (await client.get(f"{settings.service_url(name)}/metrics")).text
            counts[name] = sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))
    return counts


def log_has(path: Path, since: int, *needles: str) -> bool:
    """Whether one line written to ``path`` after byte ``since`` holds every needle."""
    with path.open("rb") as f:
        f.seek(since)
        return any(all(n in line for n in needles) for line in f.read().decode(errors="replace").splitlines())


def reconcile(root: Path, settings: StackSettings, report: Report, label: str) -> None:
    done = renja_cli(root, settings, "reconcile", "--json")
    try:
        body = json.loads(done.stdout)
        detail = f"counts {body['counts']}, {len(body['discrepancies'])} discrepancies"
        if body["discrepancies"]:
            detail += f": {body['discrepancies'][:3]}"
    except (ValueError, KeyError):
        detail = (done.stdout + done.stderr)[-400:]
    report.check(f"renja reconcile ({label}) clean", done.returncode == 0, detail)


async def mixed_phase(settings: StackSettings, newer: Path, report: Report) -> str:
    """``directive`` on the newer release, the rest on the old one: a whole cycle and its checks."""
    print(f"== mixed: {UPGRADED_FIRST} from the newer copy, the others from {settings.repo_root}", flush=True)
    consumers = [s.name for s in SERVICES if s.consumes and s.name not in ("audit", UPGRADED_FIRST)]
    dlq_before = await dlq_count(settings)
    skipped_before = await skipped_counts(settings, consumers)
    # A fresh old-release audit: it logs the first record of each unknown type once per process.
    await start_from(settings, "audit", settings.repo_root)
    audit_log = Service(settings, "audit").log_path
    since = audit_log.stat().st_size
    await start_from(settings, UPGRADED_FIRST, newer)
    renja_id, receipts = await drive_cycle(settings)
    behind = await not_distributed(settings, renja_id)
    report.check(
        "the cycle reached distribution at every service",
        not behind,
        f"Renja {renja_id}, {receipts} receipts" + (f"; not distributed at {behind}" if behind else ""),
    )
    want = 11 + receipts  # the known events; the new type is skipped
    got = await audit_holds(settings, renja_id, want=want)
    report.check(f"the audit holds the cycle's {want} known events", got == want, f"{got} rows")
    await asyncio.sleep(2)  # let every consumer go past the records
    dlq_after = await dlq_count(settings)
    report.check("no dead letter on any DLQ topic", dlq_after == dlq_before, f"{dlq_before} before, {dlq_after} after")
    reconcile(settings.repo_root, settings, report, "old release")
    audit_skipped = log_has(audit_log, since, "audit_unknown_event_type_skipped", NEW_TYPE)
    report.check(f"the audit logged {NEW_TYPE} as skipped", audit_skipped)
    skipped = {n: c - skipped_before[n] for n, c in (await skipped_counts(settings, consumers)).items()}
    report.check("every old consumer counted the new type as skipped", all(skipped.values()), f"{skipped}")
    return renja_id


async def restart_all(settings: StackSettings, newer: Path, renja_id: str) -> tuple[Marks, Marks, bool]:
    """Restart every service from ``newer``; the audit's marks before and after, and whether it logged a refold."""
    before = await audit_marks(settings, renja_id)
    audit_log = Service(settings, "audit").log_path
    since = audit_log.stat().st_size
    for name in existing_services(settings):
        await start_from(settings, name, newer)
    await asyncio.sleep(3)  # the audit's live consumer resumes (or starts its refold)
    return before, await audit_marks(settings, renja_id), log_has(audit_log, since, "audit_projection_refold")


async def chains_and_reconcile(settings: StackSettings, newer: Path, report: Report, label: str) -> None:
    """Once the newer ``renja reconcile`` is clean (or 120 s passed): every chain verified, reconcile checked."""
    deadline = time.monotonic() + 120
    while renja_cli(newer, settings, "reconcile").returncode != 0 and time.monotonic() < deadline:
        await asyncio.sleep(2)
    renjas = (await audit_marks(settings, None)).renjas
    bad = []
    for rid in renjas:
        done = renja_cli(newer, settings, "verify", str(rid))
        if done.returncode != 0:
            bad.append(f"{rid}: {(done.stdout + done.stderr)[-200:]}")
    report.check(f"renja verify ({label}): all {len(renjas)} chains intact", not bad, "; ".join(bad[:3]))
    reconcile(newer, settings, report, label)


async def upgraded_phase(settings: StackSettings, newer: Path, renja_id: str, report: Report) -> None:
    """Every service on the newer release, twice: the first start refolds (the audit's fold changed: it now
    chains the new type, ``PROJECTION_VERSION`` 8 → 9), the second does not (same release, same fold)."""
    print("== all upgraded: every service from the newer copy (the audit's fold changed: 8 -> 9)", flush=True)
    before, after, refolded = await restart_all(settings, newer, renja_id)
    report.check("the audit's version mark moved to the newer fold", after.version == "9", f"{before.version} -> 9")
    report.check("the audit refolded (refold logged, rows rebuilt)", refolded and after.xmins != before.xmins)
    got = await audit_holds(settings, renja_id, want=len(before.xmins) + 1)
    report.check(f"the refold chained {NEW_TYPE} too", got == len(before.xmins) + 1, f"{got} rows")
    await chains_and_reconcile(settings, newer, report, "newer release, after the refold")
    print("== restarted again from the newer copy (same fold)", flush=True)
    before, after, refolded = await restart_all(settings, newer, renja_id)
    report.check("the audit's version mark is unchanged", after.version == before.version, f"{after.version}")
    report.check(
        "the audit did not refold (no refold log, same row tuples)", not refolded and after.xmins == before.xmins
    )
    await chains_and_reconcile(settings, newer, report, "newer release, again")


async def run() -> int:
    settings = StackSettings()
    report = Report()
    newer = Path(tempfile.mkdtemp(prefix="renja-newer-"))
    try:
        make_newer_copy(settings.repo_root, newer)
        await supervisor.up(settings, echo=lambda line: None)
        renja_id = await mixed_phase(settings, newer, report)
        await upgraded_phase(settings, newer, renja_id, report)
    except Exception as exc:  # the drill reports any failure as a failed check
        traceback.print_exc()
        report.check("the drill ran to the end", False, f"{type(exc).__name__}: {exc}")
    finally:
        for name in existing_services(settings):
            await Service(settings, name).stop()
        await supervisor.up(settings, echo=lambda line: None)  # this tree's services again
        shutil.rmtree(newer, ignore_errors=True)
    failed = [name for name, ok, _ in report.checks if not ok]
    print(f"rolling upgrade drill: {len(report.checks) - len(failed)}/{len(report.checks)} checks passed", flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
