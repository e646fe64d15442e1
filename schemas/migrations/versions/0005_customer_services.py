"""customer services: the service register (业务清单), one row per (customer, service id)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

A key account has hundreds to thousands of circuits, more than one
``customer.registered``/``customer.updated`` event can list (32).  They come one
at a time (``customer.service_added``/``customer.service_removed``) into this
table, written by the sink (``streams/customer_services.py``); the archive's
search finds a customer by the circuit id of any of its active rows.  No event
of those types existed before this revision, so there is nothing to fill.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import schemas.reporting_tables  # noqa: F401  (custom column types)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_UTC = schemas.reporting_tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "customer_services",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stamp", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=True),
        sa.Column("circuit_id", sa.String(length=64), nullable=True),
        sa.Column("circuit_term", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=100), nullable=True),
        sa.Column("bandwidth", sa.String(length=32), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "service_id", name=op.f("pk_customer_services")),
    )
    op.create_index(
        op.f("ix_customer_services_customer_id_state"), "customer_services", ["customer_id", "state"]
    )
    op.create_index(
        op.f("ix_customer_services_circuit_term_state"), "customer_services", ["circuit_term", "state"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_customer_services_circuit_term_state"), table_name="customer_services")
    op.drop_index(op.f("ix_customer_services_customer_id_state"), table_name="customer_services")
    op.drop_table("customer_services")
