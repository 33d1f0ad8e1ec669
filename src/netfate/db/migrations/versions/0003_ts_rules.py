"""TS rules (NNF paper, Table I) per node, held by the orchestrator for the SDN controller.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ts_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_name", sa.String(), nullable=False),
        sa.Column("rule_id", sa.String(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("match", JSON, nullable=False),
        sa.Column("output", JSON, nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["node_name"], ["nodes.name"],
                                name=op.f("fk_ts_rules_node_name_nodes"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ts_rules")),
        sa.UniqueConstraint("node_name", "rule_id", name=op.f("uq_ts_rules_node_name_rule_id")),
    )
    op.create_index(op.f("ix_ts_rules_node_name"), "ts_rules", ["node_name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ts_rules_node_name"), table_name="ts_rules")
    op.drop_table("ts_rules")
