"""Documents service: file bytes in the database (``services.documents.blobs.PostgresBlobStore``).

``blobs`` names each stored file by the SHA-256 of its bytes; ``blob_chunks`` holds the bytes in order,
one row per chunk (1 MiB), so a file is written and read piecewise. Rows are only ever inserted.

Revision ID: documents_0002
"""

from alembic import op

revision = "documents_0002"
down_revision = "documents_0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE blobs (
        sha256      text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        size_bytes  bigint      NOT NULL CHECK (size_bytes >= 0),
        chunk_count integer     NOT NULL CHECK (chunk_count >= 1),
        stored_at   timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE blob_chunks (
        sha256 text    NOT NULL REFERENCES blobs (sha256),
        seq    integer NOT NULL CHECK (seq >= 0),
        data   bytea   NOT NULL,
        PRIMARY KEY (sha256, seq)
    )
    """,
    # The chunks are already compressed formats (PDF, DOCX, XLSX) or small CSVs: no TOAST compression.
    "ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE blob_chunks")
    op.execute("DROP TABLE blobs")
