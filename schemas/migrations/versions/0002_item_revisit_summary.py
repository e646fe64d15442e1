"""items: revisit count and the satisfaction of the latest revisit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The report's item figures (revisit rate, average satisfaction) ranked every
revisit with a window function; at a million items that was a disk-spilling
join (BENCHMARKS.md). The sink now keeps both on the item row; existing rows
are filled from ``revisits`` here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SAME_ITEM = "r.customer_id = items.customer_id AND r.item_kind = items.kind AND r.item_id = items.item_id"


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revisit_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_satisfaction", sa.Integer(), nullable=True))
    op.execute(
        f"UPDATE items SET revisit_count = (SELECT count(*) FROM revisits r "
        f"WHERE {_SAME_ITEM}), last_satisfaction = (SELECT r.satisfaction FROM revisits r "
        f"WHERE {_SAME_ITEM} ORDER BY r.occurred_at DESC, r.event_id DESC LIMIT 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("last_satisfaction")
        batch_op.drop_column("revisit_count")
