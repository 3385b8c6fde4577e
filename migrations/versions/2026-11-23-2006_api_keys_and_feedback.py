"""api keys and feedback

Revision ID: f28145f56949
Revises:
Create Date: 2026-11-23 20:06:00.286251+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f28145f56949"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("allowed_sources", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("allowed_origins", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_hash", sa.Text(), nullable=True),
        sa.Column("customer_external_id", sa.Text(), nullable=True),
        sa.Column("customer_email", sa.Text(), nullable=True),
        sa.Column("customer_phone", sa.Text(), nullable=True),
        sa.Column("customer_name", sa.Text(), nullable=True),
        sa.Column("customer_locale", sa.Text(), nullable=True),
        sa.Column("contact_consent", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("metric", sa.Text(), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column(
            "tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column("touchpoint", sa.Text(), nullable=True),
        sa.Column("journey_stage", sa.Text(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("sentiment", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint(
            "api_key_id", "idempotency_key", name=op.f("uq_feedback_api_key_id_idempotency_key")
        ),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_feedback_source_external_id")),
    )
    op.create_index(
        "ix_feedback_customer_email",
        "feedback",
        ["customer_email"],
        unique=False,
        postgresql_where=sa.text("customer_email IS NOT NULL"),
    )
    op.create_index(
        "ix_feedback_customer_external_id",
        "feedback",
        ["customer_external_id"],
        unique=False,
        postgresql_where=sa.text("customer_external_id IS NOT NULL"),
    )
    op.create_index(
        "ix_feedback_customer_phone",
        "feedback",
        ["customer_phone"],
        unique=False,
        postgresql_where=sa.text("customer_phone IS NOT NULL"),
    )
    op.create_index("ix_feedback_submitted_at_id", "feedback", ["submitted_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_feedback_submitted_at_id", table_name="feedback")
    op.drop_index(
        "ix_feedback_customer_phone",
        table_name="feedback",
        postgresql_where=sa.text("customer_phone IS NOT NULL"),
    )
    op.drop_index(
        "ix_feedback_customer_external_id",
        table_name="feedback",
        postgresql_where=sa.text("customer_external_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_feedback_customer_email",
        table_name="feedback",
        postgresql_where=sa.text("customer_email IS NOT NULL"),
    )
    op.drop_table("feedback")
    op.drop_table("api_key")
