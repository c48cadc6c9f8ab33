"""The no-Docker local stack supervisor: private Postgres 15, a KRaft Kafka node, the SMTP sink, services.

Owns starting, health-checking and stopping every local process of the stack, and the one-time setup
steps that make them usable (initdb, ``CREATE DATABASE``, Kafka storage format, topic creation).

Invariants:
- ``up`` is idempotent: a component whose process is alive *and* answers a real client call is left
  alone; a dead or unresponsive one is (re)started; start order is postgres → databases → kafka →
  topics → mail → services, each waited for with a bounded timeout.
- Processes are detached (own session, pid files in the run dir), so they outlive the ``renja up``
  command; ``down`` stops exactly the processes named by those pid files, and only when their command
  line still matches what we started (a recycled pid is never signalled).
- Nothing outside the run dir is touched: the Postgres cluster is private (own data dir, port and
  socket dir); Debian's system cluster is never used.
- Only one ``up``/``down`` runs at a time (an ``flock`` on ``<run_dir>/stack.lock``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.local.settings import StackSettings

Echo = Callable[[str], None]
"""Where progress lines go (``print`` for the CLI, a list's ``append`` in tests)."""

POSTGRES_OS_USER = "postgres"
"""The system account initdb/postgres run as when we are root (both refuse to run as root)."""

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TOPIC_ALREADY_EXISTS = 36
_INFINITE_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


class StackError(RuntimeError):
    """A component could not be prepared, started or stopped; the message names the log file to read."""


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


# ---------------------------------------------------------------------------------------------------
# Process helpers
# ---------------------------------------------------------------------------------------------------

# Children started by *this* Python process. Kept so that a child that dies is reaped (poll) instead
# of lingering as a zombie that os.kill(pid, 0) would still report as alive.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (reaps it if it is our own dead child)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 (state) follows the parenthesised command name, which may itself contain spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _read_pid(pid_file: Path, marker: str) -> int | None:
    """The pid on ``pid_file``'s first line if that process lives and its command line contains ``marker``.

    The marker check keeps us from ever signalling an unrelated process that reused a stale pid.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return None
    if pid in _CHILDREN:
        # Our own child: no need to match (and right after spawn the JDK launcher may re-exec
        # itself, during which /proc/<pid>/cmdline reads empty).
        return pid
    return pid if marker in _cmdline(pid) else None


def _spawn(argv: list[str], *, log_path: Path, pid_file: Path, cwd: Path, env: Mapping[str, str]) -> int:
    """Start ``argv`` detached (own session and process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


async def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def _terminate(pid: int, timeout_s: float) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if it is still there after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if await _wait_gone(pid, timeout_s):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if not await _wait_gone(pid, 10.0):
        raise StackError(f"process {pid} survived SIGKILL")


async def _run(
    argv: list[str],
    *,
    log_path: Path,
    timeout_s: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> None:
    """Run a one-shot command to completion, output appended to ``log_path``; ``StackError`` if it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=new_session,
        )
        try:
            returncode = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise StackError(f"{shlex.join(argv)} timed out after {timeout_s:.0f}s; see {log_path}") from None
    if returncode != 0:
        raise StackError(f"{shlex.join(argv)} exited with {returncode}; see {log_path}")


async def _tcp_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


# ---------------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------------


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


class Postgres:
    """The private PostgreSQL 15 cluster: ``initdb`` once, then ``pg_ctl start``/``stop -m fast``."""

    name = "postgres"

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.address = settings.postgres_address
        self.log_path = settings.log_dir / "postgres.log"
        self.start_timeout_s = settings.postgres_start_timeout_s
        self.data_dir = settings.postgres_data_dir

    def _as_owner(self, argv: list[str]) -> list[str]:
        # initdb and postgres refuse to run as root; as root we run them as the postgres account.
        if os.geteuid() == 0:
            return ["runuser", "-u", POSTGRES_OS_USER, "--", *argv]
        return argv

    def _bin(self, tool: str) -> str:
        path = self.s.pg_bin_dir / tool
        if not path.exists():
            raise StackError(f"{path} not found: install Debian's postgresql-15 (`make setup`)")
        return str(path)

    def pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid`` in our data dir, if that process is alive."""
        return _read_pid(self.data_dir / "postmaster.pid", f"-D {self.data_dir}")

    def has_run_before(self) -> bool:
        # A clean stop removes postmaster.pid; one left behind means the server died.
        return (self.data_dir / "postmaster.pid").exists()

    async def healthy(self) -> bool:
        """Alive and answering ``SELECT 1`` on its TCP port (a real client round trip)."""
        if self.pid() is None:
            return False
        try:
            conn = await asyncpg.connect(
                host=self.s.postgres_host,
                port=self.s.postgres_port,
                user=self.s.postgres_user,
                database="postgres",
                timeout=3,
            )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        try:
            return bool(await conn.fetchval("SELECT 1") == 1)
        finally:
            await conn.close()

    def _prepare_dirs(self) -> None:
        self.s.postgres_socket_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch(exist_ok=True)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if os.geteuid() == 0:
            # The server (running as postgres) writes its data dir, socket and the log file itself.
            for path in (self.s.postgres_socket_dir, self.log_path):
                shutil.chown(path, POSTGRES_OS_USER, POSTGRES_OS_USER)
            for root, dirs, files in os.walk(self.data_dir):
                shutil.chown(root, POSTGRES_OS_USER, POSTGRES_OS_USER)
                for entry in (*dirs, *files):
                    shutil.chown(os.path.join(root, entry), POSTGRES_OS_USER, POSTGRES_OS_USER)

    async def start(self) -> None:
        """``initdb`` if the data dir is empty, then ``pg_ctl start -w`` (returns once it accepts)."""
        initdb, pg_ctl = self._bin("initdb"), self._bin("pg_ctl")
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            await _run(
                self._as_owner(
                    [
                        *(initdb, "-D", str(self.data_dir), "-A", "trust", "-U", self.s.postgres_user),
                        *("-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
                    ]
                ),
                log_path=self.log_path,
                timeout_s=self.start_timeout_s,
            )
        stale = self.data_dir / "postmaster.pid"
        if stale.exists() and self.pid() is None:
            # Left by a killed server whose pid is gone (or reused): postgres would refuse to start.
            stale.unlink()
        server_opts = shlex.join(
            [
                "-p",
                str(self.s.postgres_port),
                "-k",
                str(self.s.postgres_socket_dir),
                "-c",
                f"listen_addresses={self.s.postgres_host}",
                "-c",
                f"max_connections={self.s.postgres_max_connections}",
            ]
        )
        await _run(
            self._as_owner(
                [
                    *(pg_ctl, "-D", str(self.data_dir), "-l", str(self.log_path), "-o", server_opts),
                    *("-w", "-t", str(int(self.start_timeout_s)), "start"),
                ]
            ),
            log_path=self.log_path,
            timeout_s=self.start_timeout_s + 10,
            new_session=True,
        )

    async def stop(self) -> None:
        """``pg_ctl stop -m fast`` (rolls back open transactions, no crash recovery needed next start)."""
        pid = self.pid()
        if pid is None:
            return
        await _run(
            self._as_owner(
                [
                    *(self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w"),
                    *("-t", str(int(self.s.stop_timeout_s)), "stop"),
                ]
            ),
            log_path=self.log_path,
            timeout_s=self.s.stop_timeout_s + 10,
        )
        if not await _wait_gone(pid, self.s.stop_timeout_s):
            raise StackError(f"postgres (pid {pid}) did not stop; see {self.log_path}")

    async def ensure_databases(self) -> list[str]:
        """Create each database of ``settings.databases`` that is missing; returns the created names."""
        conn = await asyncpg.connect(
            host=self.s.postgres_host,
            port=self.s.postgres_port,
            user=self.s.postgres_user,
            database="postgres",
            timeout=10,
        )
        try:
            existing = {row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")}
            created = []
            for db in self.s.databases:
                if not _DB_NAME.match(db):
                    raise StackError(f"refusing database name {db!r}: expected [a-z_][a-z0-9_]*")
                if db not in existing:
                    # Identifiers cannot be bound as parameters; the name was validated above.
                    await conn.execute(f'CREATE DATABASE "{db}"')
                    created.append(db)
            return created
        finally:
            await conn.close()


def _new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 chars), as Kafka's
    ``Uuid.randomUuid`` does; one starting with ``-`` is redrawn because the CLI would read it as a flag."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


class Kafka:
    """One KRaft node (broker + controller) run from the Maven jars with ``java -cp 'libs/*'``."""

    name = "kafka"

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.address = settings.kafka_bootstrap
        self.log_path = settings.log_dir / "kafka.log"
        self.out_path = settings.log_dir / "kafka.out"
        self.start_timeout_s = settings.kafka_start_timeout_s
        self.pid_file = settings.run_dir / "kafka.pid"
        self.properties = settings.kafka_dir / "server.properties"
        self.data_dir = settings.kafka_dir / "data"
        self.cluster_id_file = settings.kafka_dir / "cluster-id"

    def pid(self) -> int | None:
        """The broker JVM's pid if alive and started with *our* server.properties."""
        return _read_pid(self.pid_file, str(self.properties))

    def has_run_before(self) -> bool:
        return self.pid_file.exists()

    async def healthy(self) -> bool:
        """Alive and answering ``describe_cluster`` through the admin client (not just an open port)."""
        if self.pid() is None or not await _tcp_open(self.s.kafka_host, self.s.kafka_port):
            return False
        admin = AIOKafkaAdminClient(bootstrap_servers=self.s.kafka_bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 10)
            await asyncio.wait_for(admin.describe_cluster(), 10)
        except Exception:  # any client failure means "not ready yet"; the caller polls again
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        return True

    def server_properties(self) -> str:
        """The generated single-node combined ``server.properties`` (static voter quorum)."""
        s = self.s
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.kafka_host}:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port},"
            f"CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": str(s.replication_factor),
            "min.insync.replicas": "1",
            # Internal topics default to RF 3 and would never become available on one node.
            "offsets.topic.replication.factor": str(s.replication_factor),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(s.replication_factor),
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            # After a crash the restarted node cannot register until its old broker session expires
            # (DUPLICATE_BROKER_REGISTRATION); the 9 s default made `up` after a kill take ~17 s.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
            # Tests start consumers constantly; the default 3 s delay only slows every first join.
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created explicitly (ensure_topics), so a typo never makes a new empty topic.
            "auto.create.topics.enable": "false",
        }
        header = "# Generated by deploy/local/stack.py on every start; edit StackSettings instead.\n"
        return header + "".join(f"{key}={value}\n" for key, value in lines.items())

    def _java_argv(self, main_class: str, heap: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError("java not found on PATH: install a JDK 17 (`make setup` expects one)")
        if not any(self.s.kafka_libs_dir.glob("kafka_2.13-*.jar")):
            raise StackError(f"Kafka jars missing in {self.s.kafka_libs_dir}: run `make setup`")
        return [
            java,
            *heap.split(),
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.s.kafka_log4j_config}",
            f"-Dkafka.logs.dir={self.s.log_dir}",
            "-cp",
            f"{self.s.kafka_libs_dir}/*",
            main_class,
            *args,
        ]

    async def start(self) -> None:
        """Write server.properties, format storage once (``--ignore-formatted``), start the broker JVM."""
        self.s.kafka_dir.mkdir(parents=True, exist_ok=True)
        self.s.log_dir.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(self.server_properties())
        if not self.cluster_id_file.exists():
            self.cluster_id_file.write_text(_new_cluster_id() + "\n")
        cluster_id = self.cluster_id_file.read_text().strip()
        if not (self.data_dir / "meta.properties").exists():
            # Formatting is a separate JVM start (~1-2 s); skipped once meta.properties exists.
            await _run(
                self._java_argv(
                    "kafka.tools.StorageTool",
                    "-Xmx256m",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(self.properties),
                    "--ignore-formatted",
                ),
                log_path=self.out_path,
                timeout_s=60,
            )
        argv = self._java_argv("kafka.Kafka", self.s.kafka_heap_opts, str(self.properties))
        _spawn(argv, log_path=self.out_path, pid_file=self.pid_file, cwd=self.s.run_dir, env=os.environ)

    async def stop(self) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after ``stop_timeout_s``."""
        pid = self.pid()
        if pid is not None:
            await _terminate(pid, self.s.stop_timeout_s)
        self.pid_file.unlink(missing_ok=True)

    async def ensure_topics(self) -> list[str]:
        """Create the event log and the dead-letter topics that are missing; returns the created names.

        ``renja.events``: ``event_topic_partitions`` partitions; every topic: infinite retention
        (``retention.ms=-1``, ``retention.bytes=-1``, ``cleanup.policy=delete``), RF from settings.
        """
        s = self.s
        wanted = {s.event_topic: s.event_topic_partitions} | {dlq: 1 for dlq in s.dlq_topics}
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=15000)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=s.replication_factor,
                    topic_configs=dict(_INFINITE_RETENTION),
                )
                for name, partitions in wanted.items()
                if name not in existing
            ]
            if not missing:
                return []
            response = await admin.create_topics(missing, timeout_ms=30000)
            for topic_error in response.topic_errors:
                name, code = topic_error[0], topic_error[1]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise StackError(f"creating topic {name} failed with Kafka error {topic_error[1:]}")
            return [topic.name for topic in missing]
        finally:
            await admin.close()


class Mail:
    """The SMTP sink (``python -m deploy.local.mailsink``) writing ``.eml`` files to the mail dir."""

    name = "mail"
    _marker = "deploy.local.mailsink"

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.address = settings.mail_address
        self.log_path = settings.log_dir / "mail.log"
        self.start_timeout_s = settings.mail_start_timeout_s
        self.pid_file = settings.run_dir / "mail.pid"

    def pid(self) -> int | None:
        """The sink's pid if alive."""
        return _read_pid(self.pid_file, self._marker)

    def has_run_before(self) -> bool:
        return self.pid_file.exists()

    async def healthy(self) -> bool:
        """Alive and greeting with an SMTP ``220`` banner."""
        if self.pid() is None:
            return False
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.s.mail_host, self.s.mail_port), 2)
        except (OSError, TimeoutError):
            return False
        try:
            banner = await asyncio.wait_for(reader.readline(), 2)
            writer.write(b"QUIT\r\n")
            await writer.drain()
            return banner.startswith(b"220")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def start(self) -> None:
        """Start the sink detached."""
        argv = [sys.executable, "-m", self._marker, "--host", self.s.mail_host]
        argv += ["--port", str(self.s.mail_port), "--dir", str(self.s.mail_dir)]
        env = {**os.environ, **self.s.as_env(), "PYTHONUNBUFFERED": "1"}
        _spawn(argv, log_path=self.log_path, pid_file=self.pid_file, cwd=self.s.repo_root, env=env)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``."""
        pid = self.pid()
        if pid is not None:
            await _terminate(pid, self.s.stop_timeout_s)
        self.pid_file.unlink(missing_ok=True)


class Service:
    """One service: ``uvicorn services.<name>.main:create_app --factory`` on its port."""

    def __init__(self, settings: StackSettings, name: str) -> None:
        self.s = settings
        self.name = name
        self.port = settings.service_ports[name]
        self.address = f"{settings.service_host}:{self.port}"
        self.log_path = settings.log_dir / f"{name}.log"
        self.start_timeout_s = settings.service_start_timeout_s
        self.pid_file = settings.run_dir / f"{name}.pid"
        self._marker = f"services.{name}.main:create_app"

    def pid(self) -> int | None:
        """The uvicorn process's pid if alive."""
        return _read_pid(self.pid_file, self._marker)

    def has_run_before(self) -> bool:
        return self.pid_file.exists()

    async def healthy(self) -> bool:
        """Alive, ``GET /healthz`` and ``GET /readyz`` both answer 200."""
        if self.pid() is None:
            return False
        base = self.s.service_url(self.name)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=3.0) as client:
                for path in ("/healthz", "/readyz"):
                    if (await client.get(path)).status_code != 200:
                        return False
        except httpx.HTTPError:
            return False
        return True

    def env(self) -> dict[str, str]:
        """The child's environment: ours, plus every ``RENJA_*`` stack setting, plus for convenience
        ``RENJA_SERVICE`` (its name), ``RENJA_DATABASE_URL`` (its own database's DSN) and
        ``RENJA_KAFKA_BOOTSTRAP``."""
        return {
            **os.environ,
            **self.s.as_env(),
            "RENJA_SERVICE": self.name,
            "RENJA_DATABASE_URL": self.s.postgres_dsn(self.name),
            "RENJA_KAFKA_BOOTSTRAP": self.s.kafka_bootstrap,
            "PYTHONUNBUFFERED": "1",
        }

    async def start(self) -> None:
        """Start uvicorn detached, cwd = repo root (so ``services.<name>`` imports from the work tree)."""
        argv = [sys.executable, "-m", "uvicorn", self._marker, "--factory"]
        argv += ["--host", self.s.service_host, "--port", str(self.port)]
        _spawn(argv, log_path=self.log_path, pid_file=self.pid_file, cwd=self.s.repo_root, env=self.env())

    async def stop(self) -> None:
        """SIGTERM (uvicorn drains and runs the lifespan shutdown), then SIGKILL after ``stop_timeout_s``."""
        pid = self.pid()
        if pid is not None:
            await _terminate(pid, self.s.stop_timeout_s)
        self.pid_file.unlink(missing_ok=True)


def existing_services(settings: StackSettings) -> list[str]:
    """Names from ``settings.service_ports`` whose module ``services/<name>/main.py`` exists."""
    return [name for name in settings.service_ports if (settings.repo_root / "services" / name / "main.py").exists()]


def components(settings: StackSettings) -> list[Component]:
    """Every component of the stack in start order: postgres, kafka, mail, then existing services."""
    found: list[Component] = [Postgres(settings), Kafka(settings), Mail(settings)]
    found += [Service(settings, name) for name in existing_services(settings)]
    return found


# ---------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------


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
    if all(action == "unchanged" for action in actions.values()):
        echo("stack: everything already healthy, nothing to do")
    return actions


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
