"""customer archive: search terms (circuit ids, phone numbers) and the list's filter indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

The archive (``GET /api/customers``) lists customers by tier, region and
account manager and finds them by circuit id or phone number on any worker,
from this database.  The terms are derived from each customer's profile by
``streams/customer_archive.search_terms``; existing customers' terms are filled
here from their stored profiles, the way the sink writes them from then on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from streams.customer_archive import search_terms

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    terms = op.create_table(
        "customer_search_terms",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "kind", "term", name=op.f("pk_customer_search_terms")),
    )
    with op.batch_alter_table("customer_search_terms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_search_terms_kind_term"), ["kind", "term"], unique=False
        )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customers_tier"), ["tier"], unique=False)
        batch_op.create_index(batch_op.f("ix_customers_region"), ["region"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_customers_account_manager_id"), ["account_manager_id"], unique=False
        )
    customers = sa.table("customers", sa.column("customer_id", sa.String()), sa.column("profile", sa.JSON()))
    connection = op.get_bind()
    rows = [
        {"customer_id": customer_id, "kind": kind, "term": term}
        for customer_id, profile in connection.execute(
            sa.select(customers.c.customer_id, customers.c.profile)
        )
        for kind, term in search_terms(profile)
    ]
    if rows:
        op.bulk_insert(terms, rows)


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_account_manager_id"))
        batch_op.drop_index(batch_op.f("ix_customers_region"))
        batch_op.drop_index(batch_op.f("ix_customers_tier"))
    with op.batch_alter_table("customer_search_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_search_terms_kind_term"))
    op.drop_table("customer_search_terms")
