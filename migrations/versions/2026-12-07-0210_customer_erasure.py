"""customer erasure: a record of each erasure, without personal data

Revision ID: customer_erasure
Revises: report_indexes
Create Date: 2026-12-07 02:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "customer_erasure"
down_revision: str | None = "report_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_erasure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_hashes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feedback_items", sa.Integer(), nullable=False),
        sa.Column("case_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("notes", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_erasure")),
    )
    op.create_index(
        "ix_customer_erasure_keys", "customer_erasure", ["key_hashes"], postgresql_using="gin"
    )


def downgrade() -> None:
    op.drop_index("ix_customer_erasure_keys", table_name="customer_erasure")
    op.drop_table("customer_erasure")
