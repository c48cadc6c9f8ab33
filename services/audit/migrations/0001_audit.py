"""Audit projection tables: every event in log order with its hash chain, one row per Renja cycle,
the log positions folded so far, and records that could not be decoded.

Revision ID: audit_0001
"""

from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = ("audit",)
depends_on = ("plumbing_0001",)

# The DDL lives in services/audit/store.py (PROJECTION_DDL) because a rebuild creates the same tables
# under other names; the statements are literal copies so this revision never changes under a later edit.
STATEMENTS = [
    """
    CREATE TABLE audit_events (
        kafka_partition integer     NOT NULL,
        kafka_offset    bigint      NOT NULL,
        event_id        uuid        NOT NULL,
        renja_id        uuid        NOT NULL,
        position        integer     NOT NULL,
        event_type      text        NOT NULL,
        source          text        NOT NULL,
        actor_name      text        NOT NULL,
        actor_nip       text        NOT NULL,
        actor_role      text        NOT NULL,
        occurred_at     timestamptz NOT NULL,
        step_number     integer,
        draft_version   integer,
        content_sha256  text,
        event           jsonb       NOT NULL,
        event_hash      text        NOT NULL,
        chain_hash      text        NOT NULL,
        PRIMARY KEY (renja_id, position),
        UNIQUE (event_id)
    )
    """,
    """
    CREATE TABLE audit_cycles (
        renja_id        uuid        PRIMARY KEY,
        opd             text,
        fiscal_year     integer,
        status          text        NOT NULL,
        current_step    integer,
        events          integer     NOT NULL,
        head_position   integer     NOT NULL,
        head_hash       text        NOT NULL,
        first_at        timestamptz NOT NULL,
        last_at         timestamptz NOT NULL,
        signed_position integer,
        signed_hash     text,
        signature_b64   text,
        state           jsonb       NOT NULL
    )
    """,
    """
    CREATE TABLE audit_offsets (
        kafka_partition integer PRIMARY KEY,
        next_offset     bigint  NOT NULL
    )
    """,
    """
    CREATE TABLE audit_rejects (
        kafka_partition integer NOT NULL,
        kafka_offset    bigint  NOT NULL,
        reason          text    NOT NULL,
        detail          text    NOT NULL,
        PRIMARY KEY (kafka_partition, kafka_offset)
    )
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE audit_rejects, audit_offsets, audit_cycles, audit_events")
