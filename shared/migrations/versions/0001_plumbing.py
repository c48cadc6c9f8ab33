"""Shared plumbing tables in every service database: events (the outbox), inbox, process state, idempotency.

Revision ID: plumbing_0001
"""

from alembic import op

revision = "plumbing_0001"
down_revision = None
branch_labels = ("plumbing",)
depends_on = None

# One statement per op.execute: the asyncpg driver prepares statements, which allows only one each.
STATEMENTS = [
    # events: append-only; each row is also its own outbox entry (published_at NULL = not yet on Kafka).
    # seq orders the relay within this database; it is never used as a "seen up to" cursor.
    """
    CREATE TABLE events (
        seq          bigserial PRIMARY KEY,
        event_id     uuid        NOT NULL,
        stream_id    uuid        NOT NULL,
        version      integer     NOT NULL CHECK (version >= 1),
        event_type   text        NOT NULL,
        source       text        NOT NULL,
        occurred_at  timestamptz NOT NULL,
        data         jsonb       NOT NULL,
        headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
        recorded_at  timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz,
        CONSTRAINT events_event_id_key UNIQUE (event_id),
        CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
    )
    """,
    "CREATE INDEX events_unpublished_idx ON events (seq) WHERE published_at IS NULL",
    # Append-only: only the relay's published_at flag may change; anything else is refused loudly.
    """
    CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
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
    """,
    """
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION events_append_only()
    """,
    # inbox: the ids of consumed events already applied; written in the effect's transaction.
    """
    CREATE TABLE inbox (
        consumer        text        NOT NULL,
        event_id        uuid        NOT NULL,
        event_type      text        NOT NULL,
        kafka_partition integer,
        kafka_offset    bigint,
        received_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    )
    """,
    # process_state: this service's fold of every Renja's SOP state; version guards concurrent writers.
    """
    CREATE TABLE process_state (
        renja_id   uuid        PRIMARY KEY,
        version    integer     NOT NULL,
        state      jsonb       NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # idempotency_keys: the first result of a command sent with an Idempotency-Key header.
    """
    CREATE TABLE idempotency_keys (
        key          text        NOT NULL,
        principal    text        NOT NULL,
        request_hash text        NOT NULL,
        status_code  integer,
        response     jsonb,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (principal, key)
    )
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys, process_state, inbox, events")
    op.execute("DROP FUNCTION events_append_only")
