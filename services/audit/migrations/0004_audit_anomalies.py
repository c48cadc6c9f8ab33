"""The audit records anomalies: events on the log that the SOP would not have decided where they stand
(``shared.sop.classify``: an unknown Renja, the wrong role, a step not due, a second completion, anything
but a receipt after a cancellation), and an event id seen again with other bytes (``duplicate_id``).

One row per flagged Kafka record. The flagged event stays in its Renja's hash chain (``position``); a
duplicate id is not chained again, its row names the position of the event first stored under that id.
Part of the projection (a fold of the log): emptied and refilled with the other tables on a refold, and
rebuilt, compared and swapped with them (``services.audit.tables.BASE_TABLES``).

Revision ID: audit_0004
"""

from alembic import op

revision = "audit_0004"
down_revision = "audit_0003"
branch_labels = None
depends_on = None

# Literal statements, so this revision never changes under a later edit.
STATEMENTS = [
    """
    CREATE TABLE audit_anomalies (
        kafka_partition integer     NOT NULL,
        kafka_offset    bigint      NOT NULL,
        event_id        uuid        NOT NULL,
        renja_id        uuid        NOT NULL,
        position        integer,
        kind            text        NOT NULL,
        step_number     integer,
        message         text        NOT NULL,
        event_type      text        NOT NULL,
        actor_role      text        NOT NULL,
        occurred_at     timestamptz NOT NULL,
        PRIMARY KEY (kafka_partition, kafka_offset)
    )
    """,
    "CREATE INDEX audit_anomalies_renja ON audit_anomalies (renja_id, position)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE audit_anomalies")
