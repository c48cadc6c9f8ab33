"""Postgres access for services: an asyncpg pool opened with retries, and Alembic migrations at start-up.

Invariants:
- every service talks only to its own database (``ServiceSettings.database``);
- migrations are Alembic revisions: the shared plumbing branch (``shared/migrations/versions``: events
  + outbox flag, inbox, process state, idempotency keys) plus the service's own branch
  (``services/<name>/migrations``); ``upgrade heads`` applies both, and is safe to run on every start.
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
    cfg.set_main_option("sqlalchemy.url", dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    return cfg


async def migrate(dsn: str, service_migrations: Path | None) -> None:
    """Run ``alembic upgrade heads`` for this service's database (in a worker thread: Alembic is sync)."""
    cfg = alembic_config(dsn, service_migrations)
    await asyncio.to_thread(command.upgrade, cfg, "heads")
    log.info("migrations_applied", location=str(service_migrations))
