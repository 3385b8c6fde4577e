"""web: the follow-up page finds its case by the token's hash

Revision ID: followup_token_index
Revises: sentiment_cues
Create Date: 2026-12-07 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "followup_token_index"
down_revision: str | None = "sentiment_cues"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_feedback_case_followup_token",
        "feedback_case",
        ["followup_token_hash"],
        postgresql_where=sa.text("followup_token_hash IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_feedback_case_followup_token", table_name="feedback_case")
