"""Where the documents service keeps file bytes (uploads and rendered PDF/DOCX): a small content-addressed
store interface and its implementations.

- ``PostgresBlobStore`` (the default, ``RENJA_FILE_STORE=postgres``): the bytes live in the documents
  database itself (``blobs`` + ``blob_chunks``, migration ``documents_0002``), split into chunks of
  ``CHUNK_BYTES`` so no single row or message carries a whole large file; so the service keeps no state on
  local disk and any replica can serve any file. Backing up the documents database backs up the files.
- ``DirectoryBlobStore`` (``RENJA_FILE_STORE=directory``): files under ``RENJA_FILES_DIR``, for a
  deployment that mounts a shared volume (and for the bytes written before the Postgres store existed).

An S3-compatible store would be one more class with the same three methods (not built: not needed yet).

Invariants (every store):
- a blob is named by the SHA-256 (lowercase hex) of its bytes; ``put`` of the same bytes twice is harmless;
- a blob is visible only once whole: the Postgres store writes the chunks and the ``blobs`` row in one
  transaction, the directory store renames a fsynced temp file;
- ``read``/``chunks`` of an unknown hash raise ``FileNotFoundError``; a malformed hash ``ValueError``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import asyncpg

from services.documents.store import FileStore

CHUNK_BYTES = 1024 * 1024  # 1 MiB per blob_chunks row


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits; ``ValueError`` otherwise."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a SHA-256: {sha256!r}")
    return sha256


class BlobStore(Protocol):
    """A content-addressed store of file bytes (see the module docstring for the invariants)."""

    async def put(self, data: bytes) -> str:
        """Store ``data``; its SHA-256."""
        ...

    def chunks(self, sha256: str) -> AsyncIterator[bytes]:
        """The stored bytes in order, chunk by chunk; ``FileNotFoundError`` when absent."""
        ...

    async def read(self, sha256: str) -> bytes:
        """The whole stored bytes; ``FileNotFoundError`` when absent."""
        ...


class PostgresBlobStore:
    """Blobs in the service's own database, chunked (``CHUNK_BYTES``), through the service's pool."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.pool = pool
        self.chunk_bytes = chunk_bytes

    async def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        async with self.pool().acquire() as conn:
            if await conn.fetchval("SELECT 1 FROM blobs WHERE sha256 = $1", sha):
                return sha
            async with conn.transaction():
                # Two replicas storing the same bytes at once: the second waits on the row lock of the
                # first's insert, then finds the blob whole and inserts nothing.
                chunks = [
                    (sha, seq, data[offset : offset + self.chunk_bytes])
                    for seq, offset in enumerate(range(0, max(len(data), 1), self.chunk_bytes))
                ]
                inserted = await conn.fetchval(
                    "INSERT INTO blobs (sha256, size_bytes, chunk_count) VALUES ($1, $2, $3) "
                    "ON CONFLICT (sha256) DO NOTHING RETURNING 1",
                    sha,
                    len(data),
                    len(chunks),
                )
                if inserted:
                    await conn.executemany("INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)", chunks)
        return sha

    async def chunks(self, sha256: str) -> AsyncIterator[bytes]:
        check_sha256(sha256)
        async with self.pool().acquire() as conn:
            count = await conn.fetchval("SELECT chunk_count FROM blobs WHERE sha256 = $1", sha256)
            if count is None:
                raise FileNotFoundError(f"blob {sha256} is not in the documents database")
            for seq in range(count):  # one chunk per query: memory stays at one chunk
                chunk = await conn.fetchval("SELECT data FROM blob_chunks WHERE sha256 = $1 AND seq = $2", sha256, seq)
                if chunk is None:
                    raise FileNotFoundError(f"blob {sha256}: chunk {seq} of {count} is missing")
                yield bytes(chunk)

    async def read(self, sha256: str) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(sha256)])


class DirectoryBlobStore:
    """Blobs as files ``root/<sha256>`` (``services.documents.store.FileStore``), used off the event loop."""

    def __init__(self, root: Path) -> None:
        self.files = FileStore(root)

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(self.files.put, data)

    async def chunks(self, sha256: str) -> AsyncIterator[bytes]:
        yield await self.read(sha256)

    async def read(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.files.read, sha256)
