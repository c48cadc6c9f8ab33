"""Notifier tables: the mail outbox, webhook subscriptions and deliveries, step-11 distributions with
receipts, and the last "next actor" notice per Renja.

Revision ID: notifier_0001
"""

from alembic import op

revision = "notifier_0001"
down_revision = None
branch_labels = ("notifier",)
depends_on = ("plumbing_0001",)


def upgrade() -> None:
    # Transactional outbox for mails: written in the consumer's/command's transaction, sent by a dispatcher.
    op.execute(
        """
        CREATE TABLE outbound_messages (
            id              bigserial PRIMARY KEY,
            event_id        uuid NOT NULL,
            renja_id        uuid NOT NULL,
            channel         text NOT NULL,
            kind            text NOT NULL,
            due_step        integer,
            recipient       text NOT NULL,
            subject         text NOT NULL,
            body            text NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_status     integer,
            last_error      text,
            sent_at         timestamptz,
            failed_at       timestamptz,
            skipped_at      timestamptz,
            CONSTRAINT outbound_once_per_event UNIQUE (event_id, channel, recipient)
        )
        """
    )
    op.execute(
        "CREATE INDEX outbound_messages_due ON outbound_messages (next_attempt_at)"
        " WHERE sent_at IS NULL AND failed_at IS NULL AND skipped_at IS NULL"
    )
    op.execute(
        """
        CREATE TABLE webhook_subscriptions (
            id          uuid PRIMARY KEY,
            url         text NOT NULL,
            event_types text[] NOT NULL,
            secret      text NOT NULL,
            description text NOT NULL DEFAULT '',
            created_by  text NOT NULL,
            created_at  timestamptz NOT NULL,
            deleted_at  timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE webhook_deliveries (
            id              bigserial PRIMARY KEY,
            subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id),
            event_id        uuid NOT NULL,
            event_type      text NOT NULL,
            renja_id        uuid NOT NULL,
            body            bytea NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_status     integer,
            last_error      text,
            delivered_at    timestamptz,
            failed_at       timestamptz,
            CONSTRAINT webhook_once_per_event UNIQUE (subscription_id, event_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)"
        " WHERE delivered_at IS NULL AND failed_at IS NULL"
    )
    op.execute(
        """
        CREATE TABLE distributions (
            distribution_id uuid PRIMARY KEY,
            renja_id        uuid NOT NULL UNIQUE,
            event_id        uuid NOT NULL,
            version         integer NOT NULL,
            content_sha256  text NOT NULL,
            archive_ref     text NOT NULL,
            distributed_by  text NOT NULL,
            distributed_at  timestamptz NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE distribution_recipients (
            distribution_id uuid NOT NULL REFERENCES distributions (distribution_id),
            position        integer NOT NULL,
            name            text NOT NULL,
            unit            text NOT NULL,
            email           text NOT NULL,
            copies          integer NOT NULL,
            mail_to         text,
            token_sha256    text UNIQUE,
            received_at     timestamptz,
            received_by     text,
            recorded_by     text,
            receipt_event_id uuid,
            PRIMARY KEY (distribution_id, name)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE due_notices (
            renja_id   uuid PRIMARY KEY,
            due_step   integer,
            due_since  timestamptz,
            event_id   uuid NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE due_notices, distribution_recipients, distributions, webhook_deliveries")
    op.execute("DROP TABLE webhook_subscriptions, outbound_messages")
