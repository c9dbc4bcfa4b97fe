"""delivery claims on scan items, a sweep index and the fleet's leases

``claim_token``/``claimed_until`` let one delivery of a classify task hold its items for a
while: a concurrent redelivery of the same work (kombu restoring unacked tasks after a lost
connection) neither counts another attempt nor scores the items again. The partial index
serves the sweep that finds pending items nothing has touched; ``leases`` lets exactly one
worker of the fleet run that sweep at a time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scan_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_scan_items_pending_updated",
        "scan_items",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_scan_items_pending_updated", table_name="scan_items")
    with op.batch_alter_table("scan_items", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claim_token")
