"""Documents service tables: unit deliveries (step 4), draft versions (steps 5, 7), consumed meetings and
signatures, and the rendered files of each.

Revision ID: documents_0001
"""

from alembic import op

revision = "documents_0001"
down_revision = None
branch_labels = ("documents",)
depends_on = ("plumbing_0001",)

# One statement per op.execute: the asyncpg driver prepares statements, which allows only one each.
STATEMENTS = [
    # One unit's parsed rows for a Renja (step 4). A new delivery of the same unit replaces it until
    # collection is complete. rows_sha256 is the hash of the canonical JSON of the parsed rows.
    """
    CREATE TABLE unit_rows (
        renja_id     uuid        NOT NULL,
        unit         text        NOT NULL,
        file_name    text        NOT NULL,
        file_sha256  text        NOT NULL,
        file_size    bigint      NOT NULL,
        media_type   text        NOT NULL,
        rows         jsonb       NOT NULL,
        row_count    integer     NOT NULL,
        rows_sha256  text        NOT NULL,
        pagu_total   bigint      NOT NULL,
        delivered_by text        NOT NULL,
        delivered_at timestamptz NOT NULL,
        PRIMARY KEY (renja_id, unit)
    )
    """,
    # Attached files (berkas) of a unit; the bytes live in files_dir under their SHA-256.
    """
    CREATE TABLE unit_files (
        renja_id    uuid        NOT NULL,
        unit        text        NOT NULL,
        name        text        NOT NULL,
        sha256      text        NOT NULL,
        size_bytes  bigint      NOT NULL,
        media_type  text        NOT NULL,
        uploaded_by text        NOT NULL,
        uploaded_at timestamptz NOT NULL,
        PRIMARY KEY (renja_id, unit, name, sha256)
    )
    """,
    # Every draft version (steps 5 and 7) with its content, findings and rendered files.
    """
    CREATE TABLE drafts (
        renja_id         uuid        NOT NULL,
        version          integer     NOT NULL,
        stage            text        NOT NULL CHECK (stage IN ('awal', 'akhir')),
        content_sha256   text        NOT NULL,
        based_on_version integer,
        meeting_id       uuid,
        notulen_sha256   text,
        meta             jsonb       NOT NULL,
        rows             jsonb       NOT NULL,
        row_count        integer     NOT NULL,
        pagu_total       bigint      NOT NULL,
        findings         jsonb       NOT NULL,
        blocking         integer     NOT NULL,
        warning          integer     NOT NULL,
        applied_changes  jsonb       NOT NULL DEFAULT '[]'::jsonb,
        note             text        NOT NULL DEFAULT '',
        pdf_sha256       text        NOT NULL,
        pdf_size         bigint      NOT NULL,
        docx_sha256      text        NOT NULL,
        docx_size        bigint      NOT NULL,
        created_by       text        NOT NULL,
        created_at       timestamptz NOT NULL,
        PRIMARY KEY (renja_id, version)
    )
    """,
    # MeetingHeld as consumed (step 6, owned by the meetings service): what step 7 must apply, and the
    # daftar hadir / notulen PDFs rendered lazily on their first GET.
    """
    CREATE TABLE meetings (
        renja_id            uuid        NOT NULL,
        meeting_id          uuid        NOT NULL,
        event               jsonb       NOT NULL,
        opd                 text        NOT NULL,
        fiscal_year         integer     NOT NULL,
        requested_changes   jsonb       NOT NULL,
        notulen_sha256      text        NOT NULL,
        daftar_hadir_pdf    text,
        notulen_pdf         text,
        received_at         timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (renja_id, meeting_id)
    )
    """,
    # Signed as consumed (step 10, owned by approvals); the signed PDF is rendered lazily on first GET.
    """
    CREATE TABLE signatures (
        renja_id   uuid        PRIMARY KEY,
        version    integer     NOT NULL,
        event      jsonb       NOT NULL,
        pdf_sha256 text,
        received_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE signatures, meetings, drafts, unit_files, unit_rows")
