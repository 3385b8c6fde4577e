"""trust: publishable keys, verified identities, source identity secrets

Revision ID: 3a7c1d9e2f40
Revises: 18c8d35d3fa7
Create Date: 2026-12-03 12:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3a7c1d9e2f40"
down_revision: str | None = "18c8d35d3fa7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_key",
        sa.Column("publishable", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "feedback",
        sa.Column(
            "customer_verified", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
    )
    op.add_column(
        "feedback_case",
        sa.Column(
            "customer_verified", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
    )
    op.create_table(
        "source_identity_secret",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_identity_secret")),
    )


def downgrade() -> None:
    op.drop_table("source_identity_secret")
    op.drop_column("feedback_case", "customer_verified")
    op.drop_column("feedback", "customer_verified")
    op.drop_column("api_key", "publishable")
