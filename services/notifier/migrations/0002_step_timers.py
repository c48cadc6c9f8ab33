"""Durable step timers (mutu baku): one reminder and one deadline per step occurrence.

A step occurrence is (Renja, step, ``due_since``): the step became due at that instant (a step due again
after a return is a new occurrence). The unique key (renja_id, step, due_since, kind) makes planning
idempotent (a replayed event plans nothing new); the notice a timer fires has an event id derived from the
same key, so the event log holds at most one notice per timer (``services.notifier.timers``).
Times are instants of the service clock (simulated in development: ``shared.clock``).

Revision ID: notifier_0002
"""

from alembic import op

revision = "notifier_0002"
down_revision = "notifier_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE step_timers (
            id               bigserial PRIMARY KEY,
            renja_id         uuid NOT NULL,
            step             integer NOT NULL,
            due_since        timestamptz NOT NULL,
            kind             text NOT NULL CHECK (kind IN ('reminder', 'overdue')),
            role             text NOT NULL,
            standard_minutes integer NOT NULL,
            share            double precision NOT NULL,
            fire_at          timestamptz NOT NULL,
            due_at           timestamptz NOT NULL,
            planned_by       uuid NOT NULL,
            planned_at       timestamptz NOT NULL DEFAULT now(),
            fired_at         timestamptz,
            fired_event_id   uuid,
            fired_by         text,
            cancelled_at     timestamptz,
            cancel_reason    text,
            CONSTRAINT step_timer_once UNIQUE (renja_id, step, due_since, kind)
        )
        """
    )
    op.execute(
        "CREATE INDEX step_timers_pending ON step_timers (fire_at) WHERE fired_at IS NULL AND cancelled_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE step_timers")
