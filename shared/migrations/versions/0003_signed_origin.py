"""Signed origin: each event row keeps the exact bytes it is published with and their signature; each
inbox row keeps the digest of what it applied.

- ``events.payload`` (bytea): the CloudEvents data exactly as published (``shared.cloudevents.encode_data``
  at append time); ``data`` (jsonb) stays for queries. Rows from before this revision have none: they
  are published as ``data::text``, unsigned, as before.
- ``events.signature`` / ``events.signature_key_id``: the service's Ed25519 signature over the record
  (``shared.origin``), computed in the appending transaction, so every send of the row (relay,
  publish-on-commit, republish) carries the same signature.
- ``inbox.digest`` (bytea): ``shared.origin.record_digest`` of the record applied, so a later record with
  the same event id but other content is told apart from a re-delivery (``duplicate_id_conflict``).

The append-only trigger is extended: payload and signature are as immutable as the data.

Revision ID: plumbing_0003
"""

from alembic import op

revision = "plumbing_0003"
down_revision = "plumbing_0002"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TABLE events ADD COLUMN payload bytea, ADD COLUMN signature text, ADD COLUMN signature_key_id text",
    "ALTER TABLE inbox ADD COLUMN digest bytea",
    """
    CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'events are append-only: DELETE refused';
        END IF;
        IF (NEW.event_id, NEW.stream_id, NEW.version, NEW.event_type, NEW.data, NEW.occurred_at,
            NEW.payload, NEW.signature, NEW.signature_key_id)
           IS DISTINCT FROM
           (OLD.event_id, OLD.stream_id, OLD.version, OLD.event_type, OLD.data, OLD.occurred_at,
            OLD.payload, OLD.signature, OLD.signature_key_id) THEN
            RAISE EXCEPTION 'events are append-only: only published_at may change';
        END IF;
        RETURN NEW;
    END $$
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'events are append-only: DELETE refused';
            END IF;
            IF (NEW.event_id, NEW.stream_id, NEW.version, NEW.event_type, NEW.data, NEW.occurred_at)
               IS DISTINCT FROM
               (OLD.event_id, OLD.stream_id, OLD.version, OLD.event_type, OLD.data, OLD.occurred_at) THEN
                RAISE EXCEPTION 'events are append-only: only published_at may change';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute("ALTER TABLE inbox DROP COLUMN digest")
    op.execute("ALTER TABLE events DROP COLUMN payload, DROP COLUMN signature, DROP COLUMN signature_key_id")
