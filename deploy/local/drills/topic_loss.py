"""The topic-loss drill (issue 11, item 5): ``renja.events`` is deleted and written again from the
services' own event tables, on the running local stack.

Run it with ``make drill-topic-loss`` (needs ``make up``; not part of ``make test``): it deletes the
stack's event log, which every other test reads, so it must not run beside them. The steps are the
runbook of ``docs/operations.md`` (*Recovering a lost event log*):

1. one whole cycle over HTTP (steps 1..11); wait until every outbox is empty and ``renja reconcile`` is
   clean — the baseline; note each Renja's chain head in the audit;
2. stop every service; delete ``renja.events``; create it again with the stack's settings
   (``deploy.local.kafka_broker.Kafka.ensure_topics``: partitions, infinite retention);
3. ``renja republish`` (order across services from the audit's chain positions); a second run sends
   nothing (idempotent);
4. the audit's database is kept aside under another name (its offsets and rows describe the lost log);
   ``renja up`` creates a fresh one and starts every service; the audit folds the new log from offset 0;
5. ``renja rebuild audit`` (the rebuild from the log equals the live projection), ``renja reconcile``
   clean, ``renja verify`` intact for every Renja, and every Renja's chain head equal to the one noted
   in step 1 (same events, same order, same hashes).

A short report is printed; the exit code is 1 if any check failed. Whatever happens, every service is
started again (``renja up``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import traceback
from uuid import UUID

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local import supervisor
from deploy.local.drills.report import Report
from deploy.local.kafka_broker import Kafka
from deploy.local.process import StackError
from deploy.local.services import Service, existing_services
from deploy.local.settings import StackSettings
from services.audit.keys import load_signing_key
from services.audit.settings import AuditSettings
from services.audit.verify import verify_renja
from shared.manifest import PRODUCERS, database_of
from shared.settings import ServiceSettings
from shared.sop import load_sop
from tests.kit.driver import STEPS, Http, HttpCycle
from tests.kit.rows import load_rows
from tests.kit.tokens import everyone


def renja_cli(settings: StackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """``renja <args>`` against the stack."""
    env = {**os.environ, **settings.as_env()}
    argv = [sys.executable, "-c", "from cli.main import app; app()", *args]
    return subprocess.run(argv, cwd=settings.repo_root, env=env, capture_output=True, text=True, timeout=900)


async def drive_cycle(settings: StackSettings) -> str:
    """One whole cycle over HTTP (steps 1..11) for a fresh OPD; the Renja id."""
    api = Http(settings.service_url, everyone(ServiceSettings(service="drill")), timeout_s=120)
    try:
        run = int(time.time()) % 1_000_000
        cycle = HttpCycle(
            api, load_sop(), opd=f"OPD Drill Topic {run}", year=2031, rows=load_rows(), key_prefix=f"topic-{run}"
        )
        for n in range(1, 12):
            await cycle.run(STEPS[n])
        return cycle.renja_id
    finally:
        await api.close()


async def outboxes_empty(settings: StackSettings, timeout_s: float = 120) -> bool:
    """Whether every producing service's outbox is empty (waits up to ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = 0
        for name in PRODUCERS:
            conn = await asyncpg.connect(settings.postgres_dsn(database_of(name)))
            try:
                pending += int(await conn.fetchval("SELECT count(*) FROM events WHERE published_at IS NULL"))
            finally:
                await conn.close()
        if pending == 0:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(1)


def reconcile_until_clean(settings: StackSettings, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        done = renja_cli(settings, "reconcile", "--json")
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(3)


def reconcile_detail(done: subprocess.CompletedProcess[str]) -> str:
    try:
        body = json.loads(done.stdout)
        return f"counts {body['counts']}, {len(body['discrepancies'])} discrepancies {body['discrepancies'][:3]}"
    except (ValueError, KeyError):
        return (done.stdout + done.stderr)[-400:]


async def chain_heads(settings: StackSettings, database: str) -> dict[UUID, tuple[int, str]]:
    """Every Renja's last chain position and hash in an audit database."""
    conn = await asyncpg.connect(settings.postgres_dsn(database))
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT ON (renja_id) renja_id, position, chain_hash FROM audit_events"
            " ORDER BY renja_id, position DESC"
        )
        return {r["renja_id"]: (r["position"], r["chain_hash"]) for r in rows}
    finally:
        await conn.close()


async def up(settings: StackSettings, attempts: int = 5) -> None:
    """``renja up``, again while a service is slow to become healthy (a loaded machine); raises the last
    ``StackError`` after ``attempts``."""
    for attempt in range(1, attempts + 1):
        try:
            await supervisor.up(settings, echo=lambda line: None)
            return
        except StackError:
            if attempt == attempts:
                raise
            print(f"   renja up: not healthy yet, again ({attempt}/{attempts})", flush=True)


async def delete_and_recreate_topic(settings: StackSettings) -> None:
    """Delete ``renja.events``, wait until it is gone, create it again with the stack's settings."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        await admin.delete_topics([settings.event_topic], timeout_ms=30000)
        for _ in range(120):
            if settings.event_topic not in set(await admin.list_topics()):
                break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"{settings.event_topic} was not deleted within 60 s")
    finally:
        await admin.close()
    for _ in range(60):  # the broker may still be finishing the deletion
        try:
            created = await Kafka(settings).ensure_topics()
        except Exception:
            await asyncio.sleep(1)
            continue
        if settings.event_topic in created:
            return
        await asyncio.sleep(1)
    raise RuntimeError(f"{settings.event_topic} could not be created again")


async def audit_caught_up(settings: StackSettings, want: int, timeout_s: float = 300) -> int:
    """Events in the fresh audit once it holds ``want`` (or ``timeout_s`` passed)."""
    deadline = time.monotonic() + timeout_s
    got = 0
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(settings.postgres_dsn(database_of("audit")))
            try:
                got = int(await conn.fetchval("SELECT count(*) FROM audit_events"))
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            got = 0
        if got >= want:
            return got
        await asyncio.sleep(1)
    return got


async def broken_chains(renjas: list[UUID]) -> list[str]:
    """``renja verify`` of every Renja, in process (one connection): those not intact, with the reason."""
    cfg = AuditSettings()
    public = load_signing_key(cfg).public_key()
    conn = await asyncpg.connect(cfg.postgres_dsn())
    bad: list[str] = []
    try:
        for rid in renjas:
            found = await verify_renja(conn, rid, public, bootstrap=cfg.kafka_bootstrap, topic=cfg.event_topic)
            if found is None or not found.ok:
                bad.append(f"{rid}: {'missing' if found is None else found.reason}")
    finally:
        await conn.close()
    return bad


async def drill(settings: StackSettings, report: Report) -> None:
    print("== 1. a whole cycle, then the baseline", flush=True)
    renja_id = await drive_cycle(settings)
    report.check("every outbox empty", await outboxes_empty(settings))
    done = reconcile_until_clean(settings)
    report.check("renja reconcile clean before the loss", done.returncode == 0, reconcile_detail(done))
    before = await chain_heads(settings, database_of("audit"))
    report.check(f"the drill's Renja {renja_id} is in the audit", UUID(renja_id) in before)

    print("== 2. services stopped; renja.events deleted and created again", flush=True)
    for name in existing_services(settings):
        await Service(settings, name).stop()
    await delete_and_recreate_topic(settings)
    done = renja_cli(settings, "reconcile", "--json")
    report.check("reconcile sees the loss", done.returncode != 0, reconcile_detail(done)[:200])

    print("== 3. renja republish (twice)", flush=True)
    first = renja_cli(settings, "republish")
    report.check("renja republish succeeded", first.returncode == 0, first.stdout.strip().replace("\n", "; "))
    second = renja_cli(settings, "republish")
    report.check(
        "a second republish sends nothing", second.returncode == 0 and "sent: 0" in second.stdout, second.stdout.strip()
    )

    print("== 4. the audit's database kept aside; renja up (a fresh audit folds the new log)", flush=True)
    aside = f"audit_before_topic_loss_{int(time.time())}"
    admin = await asyncpg.connect(settings.postgres_dsn("postgres"))
    try:
        await admin.execute(f'ALTER DATABASE "{database_of("audit")}" RENAME TO "{aside}"')
    finally:
        await admin.close()
    print(f"   kept aside as {aside}", flush=True)
    await up(settings)
    got = await audit_caught_up(settings, want=sum(pos for pos, _ in before.values()))
    report.check("the fresh audit folded every event", got >= sum(p for p, _ in before.values()), f"{got} events")

    print("== 5. rebuild, reconcile, verify, chain heads", flush=True)
    rebuilt = renja_cli(settings, "rebuild", "audit")
    report.check("renja rebuild audit: equal", rebuilt.returncode == 0, rebuilt.stdout.strip()[-300:])
    done = reconcile_until_clean(settings)
    report.check("renja reconcile clean after the recovery", done.returncode == 0, reconcile_detail(done))
    after = await chain_heads(settings, database_of("audit"))
    verified = renja_cli(settings, "verify", renja_id)
    report.check(f"renja verify {renja_id}: intact", verified.returncode == 0, verified.stdout.strip()[-200:])
    bad = await broken_chains(sorted(after))
    report.check(f"verify: all {len(after)} chains intact", not bad, "; ".join(bad[:3]))
    differ = [str(r) for r in before if after.get(r) != before[r]]
    report.check(
        f"every chain head equals the one before the loss ({len(before)} Renja)", not differ, ", ".join(differ[:5])
    )


async def run() -> int:
    settings = StackSettings()
    report = Report()
    try:
        await up(settings)
        await drill(settings, report)
    except Exception as exc:  # the drill reports any failure as a failed check
        traceback.print_exc()
        report.check("the drill ran to the end", False, f"{type(exc).__name__}: {exc}")
    finally:
        await up(settings)
    failed = [name for name, ok, _ in report.checks if not ok]
    print(f"topic-loss drill: {len(report.checks) - len(failed)}/{len(report.checks)} checks passed", flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
