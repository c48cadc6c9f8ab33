"""The audit projection remembers which version of its fold built it (``audit_meta``).

Revision ID: audit_0002
"""

from alembic import op

revision = "audit_0002"
down_revision = "audit_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE audit_meta (key text PRIMARY KEY, value text NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE audit_meta")
