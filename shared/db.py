"""Postgres access for services: an asyncpg pool opened with retries, and Alembic migrations at start-up.

Invariants:
- every service talks only to its own database (``ServiceSettings.database``);
- migrations are Alembic revisions: the shared plumbing branch (``shared/migrations/versions``: events
  + outbox flag, inbox, process state, idempotency keys) plus the service's own branch
  (``services/<name>/migrations``); ``upgrade heads`` applies both, and is safe to run on every start;
- ``migrate`` holds a session-level Postgres advisory lock (``MIGRATION_LOCK_KEY``, per database) while
  Alembic runs, so N replicas starting at once (or ``renja migrate`` beside a start) migrate one after the
  other: the first applies the revisions, the others then find nothing left to do.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import structlog
from alembic import command
from alembic.config import Config
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

log = structlog.get_logger(__name__)

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
CONNECT_ERRORS = (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


async def create_pool(dsn: str, *, max_size: int = 10, wait_seconds: float = 120.0) -> asyncpg.Pool:
    """Open a pool, retrying with exponential backoff while Postgres is not reachable (start order free).

    Raises the last connection error after ``wait_seconds``.
    """
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(CONNECT_ERRORS),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(wait_seconds),
        reraise=True,
    ):
        with attempt:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, command_timeout=60)
            assert pool is not None
            return pool
    raise AssertionError("unreachable")


def alembic_config(dsn: str, service_migrations: Path | None) -> Config:
    """Alembic config over the shared plumbing branch plus the service's own version folder."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SHARED_MIGRATIONS))
    locations = [str(SHARED_MIGRATIONS / "versions")]
    if service_migrations is not None:
        locations.append(str(service_migrations))
    cfg.set_main_option("version_locations", " ".join(locations))
    cfg.set_main_option("path_separator", "space")
    # The DSN as asyncpg reads it (libpq's sslmode/sslrootcert/... query parameters included), handed to
    # env.py outside the ini options (no %-interpolation of a URL-quoted password).
    cfg.attributes["dsn"] = dsn
    return cfg


# pg_advisory_lock key of the migrations (any fixed bigint; "renja-mi" in ASCII). Locks are per database.
MIGRATION_LOCK_KEY = 0x72656E6A612D6D69


async def migrate(dsn: str, service_migrations: Path | None, *, lock_wait_seconds: float = 600.0) -> None:
    """Run ``alembic upgrade heads`` for this service's database (in a worker thread: Alembic is sync),
    under the database's migration advisory lock (waiting up to ``lock_wait_seconds`` for another
    migrator; ``TimeoutError`` after that). The lock is held on its own connection and released however
    the upgrade ends (and by Postgres if this process dies)."""
    cfg = alembic_config(dsn, service_migrations)
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(lock_wait_seconds):
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await asyncio.to_thread(command.upgrade, cfg, "heads")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
    log.info("migrations_applied", location=str(service_migrations))
