"""Directive service tables: one Renja cycle per OPD and fiscal year, and the directives issued.

Revision ID: directive_0001
"""

from alembic import op

revision = "directive_0001"
down_revision = None
branch_labels = ("directive",)
depends_on = ("plumbing_0001",)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE cycles (
            renja_id    uuid PRIMARY KEY,
            opd         text    NOT NULL,
            fiscal_year integer NOT NULL,
            started_at  timestamptz NOT NULL,
            CONSTRAINT cycles_one_per_opd_year UNIQUE (opd, fiscal_year)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE directives (
            event_id       uuid PRIMARY KEY,
            renja_id       uuid NOT NULL REFERENCES cycles (renja_id),
            level          text NOT NULL,
            text           text NOT NULL,
            addressee_role text NOT NULL,
            addressee_name text NOT NULL,
            issued_by      text NOT NULL,
            issued_at      timestamptz NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE directives, cycles")
