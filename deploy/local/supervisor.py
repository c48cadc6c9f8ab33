"""The no-Docker local stack supervisor: private Postgres 15, a KRaft Kafka node, the SMTP sink, services.

Owns the order, health-checking and repair of every local process of the stack (each component is its
own module: ``postgres``, ``kafka_broker``, ``mail``, ``services``; process plumbing is ``process``), and
the one-time setup steps that make them usable (``CREATE DATABASE``, topic creation).

Invariants:
- ``up`` is idempotent: a component whose process is alive *and* answers a real client call is left
  alone; a dead or unresponsive one is (re)started; start order is postgres → databases → kafka →
  topics → mail → signing keys → services, each waited for with a bounded timeout.
- Each publishing service's Ed25519 signing key and the key registry (``shared.origin``) are generated
  under ``<run_dir>/keys/`` when missing (development only; never overwritten).
- Processes are detached (own session, pid files in the run dir), so they outlive the ``renja up``
  command; ``down`` stops exactly the processes named by those pid files, and only when their command
  line still matches what we started (a recycled pid is never signalled).
- Nothing outside the run dir is touched: the Postgres cluster is private (own data dir, port and
  socket dir); Debian's system cluster is never used.
- Only one ``up``/``down`` runs at a time (an ``flock`` on ``<run_dir>/stack.lock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from deploy.local.kafka_broker import Kafka
from deploy.local.mail import Mail
from deploy.local.postgres import Postgres
from deploy.local.process import StackError
from deploy.local.services import Service, existing_services
from deploy.local.settings import StackSettings
from shared import manifest
from shared.origin import ensure_local_keys

Echo = Callable[[str], None]
"""Where progress lines go (``print`` for the CLI, a list's ``append`` in tests)."""


@dataclass(frozen=True)
class ComponentStatus:
    """One component's state: ``address`` is ``host:port``, ``pid`` the live process or ``None``."""

    name: str
    address: str
    pid: int | None
    healthy: bool
    log: Path


def status_document(statuses: Mapping[str, ComponentStatus]) -> dict[str, Any]:
    """The JSON shape of ``renja status --json``.

    ``{"components": {NAME: {"address": "host:port", "pid": int | None, "healthy": bool}}}``.
    """
    return {
        "components": {
            name: {"address": st.address, "pid": st.pid, "healthy": st.healthy} for name, st in statuses.items()
        }
    }


class Component(Protocol):
    """What the supervisor needs from each managed process."""

    name: str
    address: str
    log_path: Path
    start_timeout_s: float

    def pid(self) -> int | None: ...
    def has_run_before(self) -> bool: ...
    async def healthy(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def components(settings: StackSettings) -> list[Component]:
    """Every component of the stack in start order: postgres, kafka, mail, then existing services."""
    found: list[Component] = [Postgres(settings), Kafka(settings), Mail(settings)]
    found += [Service(settings, name) for name in existing_services(settings)]
    return found


@contextlib.contextmanager
def _stack_lock(settings: StackSettings) -> Iterator[None]:
    """Serialise ``up``/``down`` across processes with an exclusive ``flock`` on ``stack.lock``."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    with (settings.run_dir / "stack.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_hint(component: Component) -> str:
    """The log file(s) to read when ``component`` fails (Kafka writes two: log4j's and stdout)."""
    if isinstance(component, Kafka):
        return f"{component.log_path} and {component.out_path}"
    return str(component.log_path)


async def _wait_healthy(component: Component, timeout_s: float, *, fail_if_dead: bool) -> bool:
    """Poll ``healthy()`` every 0.5 s for up to ``timeout_s``; ``StackError`` if the process dies."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await component.healthy():
            return True
        if fail_if_dead and component.pid() is None:
            raise StackError(f"{component.name} exited while starting; see {_log_hint(component)}")
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)


async def ensure_component(component: Component, echo: Echo) -> str:
    """Make one component healthy; returns ``"unchanged"``, ``"started"`` or ``"restarted"``.

    A live but unresponsive process gets a 10 s grace period (another ``up`` may still be starting
    it) before it is stopped and started again. Raises ``StackError`` naming the log file on failure.
    """
    pid = component.pid()
    if pid is not None and await component.healthy():
        echo(f"{component.name}: already healthy (pid {pid}, {component.address})")
        return "unchanged"
    action = "restarted" if component.has_run_before() else "started"
    if pid is not None:
        if await _wait_healthy(component, 10.0, fail_if_dead=False):
            echo(f"{component.name}: became healthy (pid {pid}, {component.address})")
            return "unchanged"
        echo(f"{component.name}: pid {pid} is alive but unhealthy, restarting")
        await component.stop()
        action = "restarted"
    elif action == "restarted":
        echo(f"{component.name}: not running (crashed or killed), restarting")
    started = time.monotonic()
    await component.start()
    if not await _wait_healthy(component, component.start_timeout_s, fail_if_dead=True):
        raise StackError(
            f"{component.name} not healthy after {component.start_timeout_s:.0f}s; see {_log_hint(component)}"
        )
    echo(
        f"{component.name}: {action}, healthy in {time.monotonic() - started:.1f}s "
        f"(pid {component.pid()}, {component.address})"
    )
    return action


async def up(settings: StackSettings, echo: Echo = print) -> dict[str, str]:
    """Bring the whole stack up, idempotently; returns ``{component: "unchanged"|"started"|"restarted"}``.

    Order: postgres → its databases → kafka → topics → mail → services (in parallel). Raises
    ``StackError`` (naming the log file) when a component cannot be made healthy in its timeout.
    """
    actions: dict[str, str] = {}
    with _stack_lock(settings):
        await _ensure_infrastructure(settings, echo, actions)
        await _ensure_services(settings, echo, actions)
    if all(action == "unchanged" for action in actions.values()):
        echo("stack: everything already healthy, nothing to do")
    return actions


async def _ensure_infrastructure(settings: StackSettings, echo: Echo, actions: dict[str, str]) -> None:
    """Postgres → its databases → Kafka → topics → mail, one after the other; records each action."""
    postgres = Postgres(settings)
    actions[postgres.name] = await ensure_component(postgres, echo)
    created_dbs = await postgres.ensure_databases()
    if created_dbs:
        echo(f"postgres: created databases {', '.join(created_dbs)}")
    kafka = Kafka(settings)
    actions[kafka.name] = await ensure_component(kafka, echo)
    created_topics = await kafka.ensure_topics()
    if created_topics:
        echo(f"kafka: created topics {', '.join(created_topics)}")
    mail = Mail(settings)
    actions[mail.name] = await ensure_component(mail, echo)


async def _ensure_services(settings: StackSettings, echo: Echo, actions: dict[str, str]) -> None:
    """Every existing service in parallel; records each action, then one ``StackError`` naming every failure."""
    registry = ensure_local_keys(settings.run_dir / "keys", [s.name for s in manifest.SERVICES if s.publishes])
    echo(f"keys: signing keys and registry in {registry.parent}")
    services = [Service(settings, name) for name in existing_services(settings)]
    results = await asyncio.gather(*(ensure_component(svc, echo) for svc in services), return_exceptions=True)
    errors: list[str] = []
    for svc, result in zip(services, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(str(result))
        else:
            actions[svc.name] = result
    if errors:
        raise StackError("; ".join(errors))


async def down(settings: StackSettings, echo: Echo = print) -> None:
    """Stop services, mail, Kafka (SIGTERM then SIGKILL) and Postgres (``pg_ctl stop -m fast``).

    Services are looked up by every configured name, not just existing modules, so a service whose
    module was removed while running is still stopped. Leaves no process of ours behind.
    """
    with _stack_lock(settings):
        services = [Service(settings, name) for name in settings.service_ports]
        await asyncio.gather(*(_stop(svc, echo) for svc in services))
        for component in (Mail(settings), Kafka(settings), Postgres(settings)):
            await _stop(component, echo)


async def _stop(component: Component, echo: Echo) -> None:
    """Stop one component and say how long it took (a missing service is not worth a line)."""
    pid = component.pid()
    if pid is None:
        await component.stop()  # still clears a stale pid file
        if not isinstance(component, Service):
            echo(f"{component.name}: not running")
        return
    started = time.monotonic()
    await component.stop()
    echo(f"{component.name}: stopped pid {pid} in {time.monotonic() - started:.1f}s")


async def status(settings: StackSettings) -> dict[str, ComponentStatus]:
    """Check every component concurrently: ``{name: ComponentStatus}`` in start order."""
    found = components(settings)

    async def check(component: Component) -> ComponentStatus:
        healthy = await component.healthy()
        return ComponentStatus(component.name, component.address, component.pid(), healthy, component.log_path)

    results = await asyncio.gather(*(check(c) for c in found))
    return {st.name: st for st in results}
