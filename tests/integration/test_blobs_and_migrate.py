"""Stateless documents (issue 15 item 1) and the migration lock (item 2), against the real Postgres:
file bytes live chunked in the documents database; N migrators at once on a fresh database all succeed."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.documents.blobs import PostgresBlobStore
from shared.db import migrate
from shared.settings import ServiceSettings

pytestmark = pytest.mark.integration

DOCUMENTS_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "documents" / "migrations"


@pytest.fixture
async def fresh_db(settings: ServiceSettings) -> AsyncIterator[str]:
    """An empty database, nothing migrated; dropped afterwards."""
    name = f"t_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(settings.postgres_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield settings.postgres_dsn(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_four_migrators_at_once_all_succeed_and_apply_each_revision_once(fresh_db: str) -> None:
    await asyncio.gather(*(migrate(fresh_db, DOCUMENTS_MIGRATIONS) for _ in range(4)))
    conn = await asyncpg.connect(fresh_db)
    try:
        heads = sorted(r["version_num"] for r in await conn.fetch("SELECT version_num FROM alembic_version"))
        assert heads == ["documents_0002", "plumbing_0003"]
        assert await conn.fetchval("SELECT count(*) FROM blobs") == 0
    finally:
        await conn.close()


@pytest.fixture
async def blobs(fresh_db: str) -> AsyncIterator[tuple[PostgresBlobStore, asyncpg.Pool]]:
    await migrate(fresh_db, DOCUMENTS_MIGRATIONS)
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield PostgresBlobStore(lambda: pool, chunk_bytes=1000), pool
    finally:
        await pool.close()


async def test_a_blob_is_stored_in_chunks_and_read_back_whole(blobs: tuple[PostgresBlobStore, asyncpg.Pool]) -> None:
    store, pool = blobs
    data = os.urandom(2500)
    sha = await store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert [len(c) async for c in store.chunks(sha)] == [1000, 1000, 500]
    assert await store.read(sha) == data
    assert await store.put(data) == sha  # the same bytes again: nothing new
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM blob_chunks") == 3
        assert await conn.fetchval("SELECT size_bytes FROM blobs WHERE sha256 = $1", sha) == 2500


async def test_an_empty_file_is_one_empty_chunk(blobs: tuple[PostgresBlobStore, asyncpg.Pool]) -> None:
    store, _ = blobs
    assert await store.read(await store.put(b"")) == b""


async def test_replicas_storing_the_same_bytes_at_once_store_them_once(
    blobs: tuple[PostgresBlobStore, asyncpg.Pool],
) -> None:
    store, pool = blobs
    data = os.urandom(4321)
    shas = await asyncio.gather(*(store.put(data) for _ in range(4)))
    assert set(shas) == {hashlib.sha256(data).hexdigest()}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM blobs") == 1
        assert await conn.fetchval("SELECT count(*) FROM blob_chunks") == 5
    assert await store.read(shas[0]) == data


async def test_an_unknown_or_malformed_hash_is_refused(blobs: tuple[PostgresBlobStore, asyncpg.Pool]) -> None:
    store, _ = blobs
    with pytest.raises(FileNotFoundError):
        await store.read("0" * 64)
    with pytest.raises(ValueError, match="not a SHA-256"):
        await store.read("../etc/passwd")
