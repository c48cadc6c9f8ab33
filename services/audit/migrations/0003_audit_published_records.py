"""The audit keeps each record as it was published: the Kafka key, the identifying CloudEvents headers
(``ce_id``, ``ce_type``, ``ce_source``, ``ce_subject``, ``ce_time``) and the value bytes, which the
hash chain now covers (``services.audit.hashchain``, record layout v2).

Rows folded before this revision have no record bytes to fill the new columns with, so it empties the
projection (offsets included): the projection is a fold of the log, and the live consumer folds it again
from offset 0 on start-up, as after a ``PROJECTION_VERSION`` bump (which comes with this revision).

Revision ID: audit_0003
"""

from alembic import op

revision = "audit_0003"
down_revision = "audit_0002"
branch_labels = None
depends_on = None

# Literal statements, so this revision never changes under a later edit. Header values are text: the
# decoder refuses a header that is not UTF-8 and checks these five against the event, so text is exact.
STATEMENTS = [
    "TRUNCATE audit_events, audit_cycles, audit_offsets, audit_rejects",
    """
    ALTER TABLE audit_events
        ADD COLUMN record_key bytea NOT NULL,
        ADD COLUMN ce_id      text  NOT NULL,
        ADD COLUMN ce_type    text  NOT NULL,
        ADD COLUMN ce_source  text  NOT NULL,
        ADD COLUMN ce_subject text,
        ADD COLUMN ce_time    text,
        ADD COLUMN value      bytea NOT NULL
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("TRUNCATE audit_events, audit_cycles, audit_offsets, audit_rejects")
    op.execute(
        "ALTER TABLE audit_events DROP COLUMN record_key, DROP COLUMN ce_id, DROP COLUMN ce_type,"
        " DROP COLUMN ce_source, DROP COLUMN ce_subject, DROP COLUMN ce_time, DROP COLUMN value"
    )
