"""cases

Revision ID: 1be14259a026
Revises: bc3042d3e113
Create Date: 2026-11-23 21:07:14.962636+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1be14259a026"
down_revision: str | None = "bc3042d3e113"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("case_number_seq", start=1001)))
    op.create_table(
        "feedback_case",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "number",
            sa.BigInteger(),
            server_default=sa.text("nextval('case_number_seq')"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("priority_rank", sa.SmallInteger(), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("opened_for_team", sa.Text(), nullable=False),
        sa.Column("assignee", sa.Text(), nullable=True),
        sa.Column("customer_key", sa.Text(), nullable=True),
        sa.Column("customer_keys", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("customer_external_id", sa.Text(), nullable=True),
        sa.Column("customer_email", sa.Text(), nullable=True),
        sa.Column("customer_phone", sa.Text(), nullable=True),
        sa.Column("customer_name", sa.Text(), nullable=True),
        sa.Column("customer_locale", sa.Text(), nullable=True),
        sa.Column("contact_consent", sa.Boolean(), nullable=False),
        sa.Column("can_notify", sa.Boolean(), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=True),
        sa.Column("rule_version", sa.Integer(), nullable=True),
        sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_response_breached", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "resolution_breached", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("resolution_code", sa.Text(), nullable=True),
        sa.Column("resolution_summary", sa.Text(), nullable=True),
        sa.Column("customer_message", sa.Text(), nullable=True),
        sa.Column("notify_customer", sa.Boolean(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team"], ["team.key"], name=op.f("fk_feedback_case_team_team")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_case")),
        sa.UniqueConstraint("number", name=op.f("uq_feedback_case_number")),
    )
    op.create_index("ix_feedback_case_created", "feedback_case", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_feedback_case_customer_keys",
        "feedback_case",
        ["customer_keys"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "ix_feedback_case_first_response_due",
        "feedback_case",
        ["first_response_due_at"],
        unique=False,
        postgresql_where=sa.text(
            "status = 'open' AND first_response_at IS NULL AND NOT first_response_breached"
        ),
    )
    op.create_index(
        "ix_feedback_case_queue_created",
        "feedback_case",
        ["team", "status", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_feedback_case_queue_due",
        "feedback_case",
        ["team", "status", "resolution_due_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_feedback_case_queue_priority",
        "feedback_case",
        ["team", "status", "priority_rank", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_feedback_case_resolution_due",
        "feedback_case",
        ["resolution_due_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('open', 'in_progress') AND NOT resolution_breached"),
    )
    op.create_index(
        "ix_feedback_case_resolved_at",
        "feedback_case",
        ["resolved_at"],
        unique=False,
        postgresql_where=sa.text("status = 'resolved'"),
    )
    op.create_index(
        "uq_feedback_case_active_customer",
        "feedback_case",
        ["opened_for_team", "customer_key"],
        unique=True,
        postgresql_where=sa.text(
            "status IN ('open', 'in_progress', 'waiting_on_customer') AND customer_key IS NOT NULL"
        ),
    )
    op.create_table(
        "case_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["feedback_case.id"],
            name=op.f("fk_case_event_case_id_feedback_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_event")),
    )
    op.create_index("ix_case_event_case", "case_event", ["case_id", "at", "id"], unique=False)
    op.create_table(
        "case_feedback",
        sa.Column("feedback_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["feedback_case.id"],
            name=op.f("fk_case_feedback_case_id_feedback_case"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["feedback.id"],
            name=op.f("fk_case_feedback_feedback_id_feedback"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("feedback_id", name=op.f("pk_case_feedback")),
    )
    op.create_index("ix_case_feedback_case", "case_feedback", ["case_id", "added_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_case_feedback_case", table_name="case_feedback")
    op.drop_table("case_feedback")
    op.drop_index("ix_case_event_case", table_name="case_event")
    op.drop_table("case_event")
    op.drop_index(
        "uq_feedback_case_active_customer",
        table_name="feedback_case",
        postgresql_where=sa.text(
            "status IN ('open', 'in_progress', 'waiting_on_customer') AND customer_key IS NOT NULL"
        ),
    )
    op.drop_index(
        "ix_feedback_case_resolved_at",
        table_name="feedback_case",
        postgresql_where=sa.text("status = 'resolved'"),
    )
    op.drop_index(
        "ix_feedback_case_resolution_due",
        table_name="feedback_case",
        postgresql_where=sa.text("status IN ('open', 'in_progress') AND NOT resolution_breached"),
    )
    op.drop_index("ix_feedback_case_queue_priority", table_name="feedback_case")
    op.drop_index("ix_feedback_case_queue_due", table_name="feedback_case")
    op.drop_index("ix_feedback_case_queue_created", table_name="feedback_case")
    op.drop_index(
        "ix_feedback_case_first_response_due",
        table_name="feedback_case",
        postgresql_where=sa.text(
            "status = 'open' AND first_response_at IS NULL AND NOT first_response_breached"
        ),
    )
    op.drop_index(
        "ix_feedback_case_customer_keys", table_name="feedback_case", postgresql_using="gin"
    )
    op.drop_index("ix_feedback_case_created", table_name="feedback_case")
    op.drop_table("feedback_case")
    op.execute(sa.schema.DropSequence(sa.Sequence("case_number_seq")))
