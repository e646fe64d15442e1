"""reporting tables: audit log, current state, SLA outcomes, steps, revisits

Revision ID: 0001
Revises:
Create Date: 2026-11-22

The first schema of the reporting database: the append-only event log, the
current state of customers and items, every SLA clock's outcome with paused
time by reason, SLA steps (escalations, acknowledgements), revisits, and the
sink's positions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import schemas.reporting_tables  # noqa: F401  (custom column types)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=2000), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("industry", sa.String(length=16), nullable=True),
        sa.Column("region", sa.String(length=120), nullable=True),
        sa.Column("account_manager_id", sa.String(length=64), nullable=True),
        sa.Column("account_manager_name", sa.String(length=2000), nullable=True),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("updated_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customers")),
    )
    op.create_table(
        "event_log",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("entity_kind", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_log")),
        sa.UniqueConstraint("topic", "partition", "offset", name=op.f("uq_event_log_topic_partition_offset")),
    )
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_log_customer_id_entity_kind_entity_id_occurred_at"),
            ["customer_id", "entity_kind", "entity_id", "occurred_at"],
            unique=False,
        )

    op.create_table(
        "items",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("opened_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.Column("subtype", sa.String(length=64), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("tier_assumed", sa.Boolean(), nullable=False),
        sa.Column("region", sa.String(length=120), nullable=True),
        sa.Column("account_manager_id", sa.String(length=64), nullable=True),
        sa.Column("account_manager_name", sa.String(length=2000), nullable=True),
        sa.Column("policy", sa.String(length=64), nullable=True),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("milestones", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "kind", "item_id", name=op.f("pk_items")),
    )
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_items_opened_at"), ["opened_at"], unique=False)

    op.create_table(
        "revisits",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("item_kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_revisits")),
    )
    with op.batch_alter_table("revisits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_revisits_customer_id_item_kind_item_id"),
            ["customer_id", "item_kind", "item_id"],
            unique=False,
        )

    op.create_table(
        "sink_positions",
        sa.Column("group_id", sa.String(length=249), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "topic", "partition", name=op.f("pk_sink_positions")),
    )
    op.create_table(
        "sla_outcomes",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("item_kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.Column("target_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deadline", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("pause_reason", sa.String(length=64), nullable=True),
        sa.Column("met_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("breached_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("business_seconds", sa.Float(), nullable=False),
        sa.Column("calendar_seconds", sa.Float(), nullable=True),
        sa.Column("paused_seconds", sa.Float(), nullable=False),
        sa.Column("evaluated_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "item_kind", "item_id", "metric", "cycle", name=op.f("pk_sla_outcomes")
        ),
    )
    with op.batch_alter_table("sla_outcomes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_outcomes_metric_state"), ["metric", "state"], unique=False)

    op.create_table(
        "sla_paused_time",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("item_kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id",
            "item_kind",
            "item_id",
            "metric",
            "cycle",
            "reason",
            name=op.f("pk_sla_paused_time"),
        ),
    )
    op.create_table(
        "sla_steps",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("item_kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("occurred_at", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("threshold", sa.String(length=16), nullable=True),
        sa.Column("deadline", schemas.reporting_tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("policy", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_sla_steps")),
    )
    with op.batch_alter_table("sla_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sla_steps_customer_id_item_kind_item_id_metric_cycle"),
            ["customer_id", "item_kind", "item_id", "metric", "cycle"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("sla_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_steps_customer_id_item_kind_item_id_metric_cycle"))

    op.drop_table("sla_steps")
    op.drop_table("sla_paused_time")
    with op.batch_alter_table("sla_outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_outcomes_metric_state"))

    op.drop_table("sla_outcomes")
    op.drop_table("sink_positions")
    with op.batch_alter_table("revisits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revisits_customer_id_item_kind_item_id"))

    op.drop_table("revisits")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_opened_at"))

    op.drop_table("items")
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_log_customer_id_entity_kind_entity_id_occurred_at"))

    op.drop_table("event_log")
    op.drop_table("customers")
