"""The audit keeps who signed each record: ``ce_signaturekeyid`` and ``ce_signature`` as received
(``shared.origin``), which a signed record's chain hash covers (``services.audit.hashchain`` layout v3).
Rows of unsigned (legacy) records keep NULL in both.

Revision ID: audit_0005
"""

from alembic import op

revision = "audit_0005"
down_revision = "audit_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE audit_events ADD COLUMN signature_key_id text, ADD COLUMN signature text")


def downgrade() -> None:
    op.execute("ALTER TABLE audit_events DROP COLUMN signature_key_id, DROP COLUMN signature")
