"""Meetings service table: the step 6 consultation meetings with their daftar hadir and notulen.

Revision ID: meetings_0001
"""

from alembic import op

revision = "meetings_0001"
down_revision = None
branch_labels = ("meetings",)
depends_on = ("plumbing_0001",)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE meetings (
            meeting_id       uuid PRIMARY KEY,
            renja_id         uuid        NOT NULL,
            draft_version    integer     NOT NULL,
            draft_sha256     text        NOT NULL,
            held_at          timestamptz NOT NULL,
            place            text        NOT NULL,
            agenda           text        NOT NULL,
            scheduled_by     text        NOT NULL,
            scheduled_at     timestamptz NOT NULL,
            attendance       jsonb,
            attendance_by    text,
            attendance_at    timestamptz,
            notulen          jsonb,
            notulen_sha256   text,
            notulen_by       text,
            notulen_at       timestamptz,
            rev              integer     NOT NULL DEFAULT 0,
            held_event_id    uuid UNIQUE,
            held_recorded_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX meetings_by_renja ON meetings (renja_id, scheduled_at)")
    # At most one meeting per Renja completes step 6 (the decider refuses a second; this is the backstop).
    op.execute("CREATE UNIQUE INDEX meetings_one_held_per_renja ON meetings (renja_id) WHERE held_event_id IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP TABLE meetings")
