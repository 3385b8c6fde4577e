"""report indexes: the reports read feedback from covering indexes, never from the table

Revision ID: report_indexes
Revises: followup_token_index
Create Date: 2026-12-07 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "report_indexes"
down_revision: str | None = "followup_token_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Scores: answers of one metric in a time range, with every column they are grouped by.
    op.create_index(
        "ix_feedback_report_scores",
        "feedback",
        ["metric", "submitted_at"],
        postgresql_include=[
            "score",
            "channel",
            "source",
            "routing_team",
            "touchpoint",
            "journey_stage",
        ],
    )
    # The closed loop: negative feedback in a time range, with its grouping columns and consent.
    op.create_index(
        "ix_feedback_report_negative",
        "feedback",
        ["submitted_at"],
        postgresql_include=[
            "id",
            "channel",
            "source",
            "routing_team",
            "journey_stage",
            "contact_consent",
            "received_at",
        ],
        postgresql_where=sa.text("sentiment = 'negative'"),
    )
    # What a case gathers after its opening (links, events, the resolution's delivery), by
    # time: a report reads the range from its start instead of probing once per case.
    op.create_index(
        "ix_case_feedback_added",
        "case_feedback",
        ["added_at"],
        postgresql_include=["case_id", "feedback_id", "kind"],
    )
    op.create_index(
        "ix_case_event_report",
        "case_event",
        ["at"],
        postgresql_include=["case_id", "type"],
        postgresql_where=sa.text("type IN ('resolved', 'reopened')"),
    )
    op.create_index(
        "ix_outbox_message_resolved",
        "outbox_message",
        ["created_at"],
        postgresql_include=["case_id"],
        postgresql_where=sa.text("event_type = 'case.resolved' AND status = 'delivered'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_message_resolved", table_name="outbox_message")
    op.drop_index("ix_case_event_report", table_name="case_event")
    op.drop_index("ix_case_feedback_added", table_name="case_feedback")
    op.drop_index("ix_feedback_report_negative", table_name="feedback")
    op.drop_index("ix_feedback_report_scores", table_name="feedback")
