"""case links record their item's source and external id

A case's webhook messages name its items ({id, source, external_id}) and go to the endpoints of
their items' sources. With both on the link (an item's source and external id are fixed at
ingest: PUT keeps them), the cases room reads them from its own table rather than the feedback
table. The links already made take them from their items.

Revision ID: case_feedback_item_keys
Revises: report_rollups
Create Date: 2026-12-07 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "case_feedback_item_keys"
down_revision: str | None = "report_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("case_feedback", sa.Column("source", sa.Text(), nullable=True))
    op.add_column("case_feedback", sa.Column("external_id", sa.Text(), nullable=True))
    op.execute(
        "UPDATE case_feedback cf SET source = f.source, external_id = f.external_id "
        "FROM feedback f WHERE f.id = cf.feedback_id"
    )
    op.alter_column("case_feedback", "source", nullable=False)


def downgrade() -> None:
    op.drop_column("case_feedback", "external_id")
    op.drop_column("case_feedback", "source")
