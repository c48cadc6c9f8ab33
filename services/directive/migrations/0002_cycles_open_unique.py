"""One *open* cycle per OPD (case-insensitive) and fiscal year; a cancelled cycle no longer blocks a new one.

Replaces the plain ``UNIQUE (opd, fiscal_year)`` with a partial unique index on ``(lower(opd), fiscal_year)``
over cycles whose ``cancelled_at`` is NULL. Existing names are normalised like ``services.directive.domain
.normalise_opd`` does for new ones (whitespace collapsed and stripped, common zero-width characters removed),
and cycles whose folded state is already cancelled are marked so. If existing open cycles collide after that
(e.g. "Bappeda" and "BAPPEDA" for one year), the index cannot be built and the upgrade stops with a unique
violation: cancel one of them through the API on the old version first.

Revision ID: directive_0002
"""

from alembic import op

revision = "directive_0002"
down_revision = "directive_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cycles ADD COLUMN cancelled_at timestamptz")
    # The old exact-name constraint goes first: normalising may make two names equal.
    op.execute("ALTER TABLE cycles DROP CONSTRAINT cycles_one_per_opd_year")
    op.execute(
        r"""
        UPDATE cycles SET opd = btrim(regexp_replace(
            regexp_replace(opd, '[\u00AD\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF]', '', 'g'),
            '\s+', ' ', 'g'))
        """
    )
    op.execute(
        "UPDATE cycles c SET cancelled_at = p.updated_at FROM process_state p"
        " WHERE p.renja_id = c.renja_id AND p.state->>'status' = 'cancelled'"
    )
    op.execute(
        "CREATE UNIQUE INDEX cycles_one_open_per_opd_year ON cycles (lower(opd), fiscal_year)"
        " WHERE cancelled_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX cycles_one_open_per_opd_year")
    op.execute("ALTER TABLE cycles ADD CONSTRAINT cycles_one_per_opd_year UNIQUE (opd, fiscal_year)")
    op.execute("ALTER TABLE cycles DROP COLUMN cancelled_at")
