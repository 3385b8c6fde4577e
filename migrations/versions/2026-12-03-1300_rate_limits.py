"""rate limits: one-minute windows shared by every process

Revision ID: rate_limits
Revises: 3a7c1d9e2f40
Create Date: 2026-12-03 13:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "rate_limits"
down_revision: str | None = "3a7c1d9e2f40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # UNLOGGED: counts of the current minute are not worth a WAL record each.
    op.create_table(
        "rate_limit_window",
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "window_start", "api_key_id", "client", name=op.f("pk_rate_limit_window")
        ),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("rate_limit_window")
