"""The names of the audit projection's tables, and the operations on a whole set of them.

One copy of the projection is five tables (``BASE_TABLES``); the live copy has the bare names, a
rebuild writes a copy with a suffix (``audit_events_rebuild``, …) and swaps it in by renaming. Every
module that writes or reads the projection names its tables through a :class:`TableSet`, so the live
fold and a rebuild run the same SQL against different copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

BASE_TABLES: tuple[str, ...] = ("audit_events", "audit_cycles", "audit_offsets", "audit_rejects", "audit_anomalies")
"""The projection's tables; a rebuild creates each again with a suffix and swaps them in by renaming."""


@dataclass(frozen=True, slots=True)
class TableSet:
    """The names of one copy of the projection: ``suffix=""`` is live, ``"_rebuild"`` a rebuild."""

    suffix: str = ""

    @property
    def events(self) -> str:
        return f"audit_events{self.suffix}"

    @property
    def cycles(self) -> str:
        return f"audit_cycles{self.suffix}"

    @property
    def offsets(self) -> str:
        return f"audit_offsets{self.suffix}"

    @property
    def rejects(self) -> str:
        return f"audit_rejects{self.suffix}"

    @property
    def anomalies(self) -> str:
        return f"audit_anomalies{self.suffix}"

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(f"{name}{self.suffix}" for name in BASE_TABLES)


LIVE = TableSet("")
REBUILD = TableSet("_rebuild")


async def create_tables(conn: asyncpg.Connection, target: TableSet, like: TableSet = LIVE) -> None:
    """(Re)create ``target``'s tables empty, with the columns, keys and indexes of ``like``'s."""
    for base in BASE_TABLES:
        await conn.execute(f"DROP TABLE IF EXISTS {base}{target.suffix}")
        await conn.execute(f"CREATE TABLE {base}{target.suffix} (LIKE {base}{like.suffix} INCLUDING ALL)")


async def drop_tables(conn: asyncpg.Connection, target: TableSet) -> None:
    """Drop ``target``'s tables if they exist (scratch tables after a comparison)."""
    for table in target.all:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")


async def swap_in_keeping(conn: asyncpg.Connection, target: TableSet, schema: str) -> None:
    """Inside the caller's transaction: live tables moved into a new schema ``schema`` (kept, with their
    indexes, for an investigation), ``target`` → live names. ``schema`` must be a plain lowercase name."""
    if not schema.replace("_", "").isalnum() or schema.lower() != schema:
        raise ValueError(f"not a plain schema name: {schema!r}")
    await conn.execute(f"CREATE SCHEMA {schema}")
    for base in BASE_TABLES:
        await conn.execute(f"ALTER TABLE {base} SET SCHEMA {schema}")
        await conn.execute(f"ALTER TABLE {base}{target.suffix} RENAME TO {base}")


async def swap_in(conn: asyncpg.Connection, target: TableSet) -> None:
    """Inside the caller's transaction: live tables → ``*_old`` (dropped), ``target`` → live names."""
    for base in BASE_TABLES:
        await conn.execute(f"ALTER TABLE {base} RENAME TO {base}_old")
        await conn.execute(f"ALTER TABLE {base}{target.suffix} RENAME TO {base}")
    for base in BASE_TABLES:
        await conn.execute(f"DROP TABLE {base}_old")
