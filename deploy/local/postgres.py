"""The private PostgreSQL 15 cluster of the local stack, and the services' databases in it.

Owns ``initdb`` (once), ``pg_ctl start``/``stop -m fast`` on our own data dir, port and socket dir (Debian's
system cluster is never used), the ``SELECT 1`` health probe and ``CREATE DATABASE`` of the missing ones.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil

import asyncpg

from deploy.local.process import StackError, read_pid, run_once, wait_gone
from deploy.local.settings import StackSettings

POSTGRES_OS_USER = "postgres"
"""The system account initdb/postgres run as when we are root (both refuse to run as root)."""

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


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
        return read_pid(self.data_dir / "postmaster.pid", f"-D {self.data_dir}")

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

    def _server_options(self) -> str:
        """``pg_ctl -o``'s value: our port, socket dir, listen address and connection limit, shell-quoted."""
        return shlex.join(
            [
                *("-p", str(self.s.postgres_port), "-k", str(self.s.postgres_socket_dir)),
                *("-c", f"listen_addresses={self.s.postgres_host}"),
                *("-c", f"max_connections={self.s.postgres_max_connections}"),
            ]
        )

    async def start(self) -> None:
        """``initdb`` if the data dir is empty, then ``pg_ctl start -w`` (returns once it accepts)."""
        initdb, pg_ctl = self._bin("initdb"), self._bin("pg_ctl")
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            await run_once(
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
        server_opts = self._server_options()
        await run_once(
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
        await run_once(
            self._as_owner(
                [
                    *(self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w"),
                    *("-t", str(int(self.s.stop_timeout_s)), "stop"),
                ]
            ),
            log_path=self.log_path,
            timeout_s=self.s.stop_timeout_s + 10,
        )
        if not await wait_gone(pid, self.s.stop_timeout_s):
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
