"""Approvals service table: the parafs (steps 8-9), signatures (step 10) and returns recorded here.

Revision ID: approvals_0001
"""

from alembic import op

revision = "approvals_0001"
down_revision = None
branch_labels = ("approvals",)
depends_on = ("plumbing_0001",)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE approval_records (
            event_id              uuid PRIMARY KEY,
            renja_id              uuid        NOT NULL,
            kind                  text        NOT NULL CHECK (kind IN ('paraf', 'signature', 'return')),
            step                  integer     NOT NULL CHECK (step BETWEEN 8 AND 10),
            version               integer     NOT NULL,
            content_sha256        text        NOT NULL,
            actor_name            text        NOT NULL,
            actor_nip             text        NOT NULL,
            actor_role            text        NOT NULL,
            recorded_at           timestamptz NOT NULL,
            note                  text        NOT NULL DEFAULT '',
            warnings_acknowledged jsonb       NOT NULL DEFAULT '[]',
            key_id                text,
            public_key_b64        text,
            signature_b64         text
        )
        """
    )
    op.execute("CREATE INDEX approval_records_by_renja ON approval_records (renja_id, recorded_at)")
    op.execute(
        "CREATE INDEX approval_records_by_signature ON approval_records (signature_b64) WHERE kind = 'signature'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE approval_records")
