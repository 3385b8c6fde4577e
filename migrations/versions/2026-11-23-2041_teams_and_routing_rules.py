"""teams and routing rules

Revision ID: bc3042d3e113
Revises: f28145f56949
Create Date: 2026-11-23 20:41:10.522736+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "bc3042d3e113"
down_revision: str | None = "f28145f56949"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routing_generation",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_routing_generation_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_generation")),
    )
    op.execute("INSERT INTO routing_generation (id, value) VALUES (1, 0)")
    op.create_table(
        "routing_rule_version",
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("rule", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "version", name=op.f("pk_routing_rule_version")),
    )
    op.create_table(
        "team",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        sa.Column("escalation_team", sa.Text(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["escalation_team"], ["team.key"], name=op.f("fk_team_escalation_team_team")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_team")),
    )
    op.create_index(
        "uq_team_default",
        "team",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "routing_rule",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("conditions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("case_priority", sa.Text(), nullable=False),
        sa.Column("add_tags", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("assignee", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team"], ["team.key"], name=op.f("fk_routing_rule_team_team")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rule")),
    )
    op.create_index(
        "ix_routing_rule_order", "routing_rule", ["priority", "created_at"], unique=False
    )
    op.add_column("feedback", sa.Column("routing_rule_id", sa.Uuid(), nullable=True))
    op.add_column("feedback", sa.Column("routing_rule_version", sa.Integer(), nullable=True))
    op.add_column("feedback", sa.Column("routing_team", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("feedback", "routing_team")
    op.drop_column("feedback", "routing_rule_version")
    op.drop_column("feedback", "routing_rule_id")
    op.drop_index("ix_routing_rule_order", table_name="routing_rule")
    op.drop_table("routing_rule")
    op.drop_index("uq_team_default", table_name="team", postgresql_where=sa.text("is_default"))
    op.drop_table("team")
    op.drop_table("routing_rule_version")
    op.drop_table("routing_generation")
