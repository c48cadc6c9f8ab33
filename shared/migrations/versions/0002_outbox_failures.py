"""Outbox rows the broker refuses for good (e.g. too large) are set aside with the reason.

Revision ID: plumbing_0002
"""

from alembic import op

revision = "plumbing_0002"
down_revision = "plumbing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN publish_error text, ADD COLUMN publish_failed_at timestamptz")
    # The relay skips every stream that has such a row, so this lookup must be cheap.
    op.execute(
        "CREATE INDEX events_publish_failed_idx ON events (stream_id)"
        " WHERE publish_failed_at IS NOT NULL AND published_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX events_publish_failed_idx")
    op.execute("ALTER TABLE events DROP COLUMN publish_error, DROP COLUMN publish_failed_at")
