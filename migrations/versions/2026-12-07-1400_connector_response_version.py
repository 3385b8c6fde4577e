"""a tool's response keeps the time of its latest version

Tools that send when they last changed a response (Delighted, Zendesk, Formbricks, Standard
Webhooks) may deliver an older event after a newer one; the stored version's time tells the
late one apart, which then changes nothing. Responses stored before have none, so their next
event is taken as it comes.

Revision ID: connector_response_version
Revises: connector_key_ids
Create Date: 2026-12-07 14:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "connector_response_version"
down_revision: str | None = "connector_key_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "connector_response", sa.Column("version_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("connector_response", "version_at")
