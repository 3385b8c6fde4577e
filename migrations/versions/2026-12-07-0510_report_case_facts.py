"""report case facts: the closed loop's figures kept per case, folded by the worker

One row of figures per case (report_case) and one per negative item of a case that corrects the
raw negative counts (report_loop_item), written by the worker from the raw rows of the cases
marked in report_case_dirty (app/reports/facts.py). Row triggers only mark: one small insert
per case or link written, none at all for what moves no figure (a WHEN clause decides that
without calling anything). Every case already stored is marked, so the worker folds them all.
The indexes the closed loop read links, events and deliveries by time with go: nothing reads
them now, and the link's was written on every complaint.

Revision ID: report_case_facts
Revises: case_feedback_item_keys
Create Date: 2026-12-07 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "report_case_facts"
down_revision: str | None = "case_feedback_item_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MARK = "INSERT INTO report_case_dirty (case_id) VALUES"
# The case itself, by its id.
_CASE_FUNCTION = f"""
CREATE FUNCTION report_case_mark_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        {_MARK} (OLD.id);
    ELSE
        {_MARK} (NEW.id);
    END IF;
    RETURN NULL;
END
$$
"""
# A row that belongs to a case by its case_id (a link, an event, a message): its case, and on
# an update the case it left too.
_LINK_FUNCTION = f"""
CREATE FUNCTION report_case_mark_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' AND NEW.case_id IS NOT NULL THEN
        {_MARK} (NEW.case_id);
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.case_id IS NOT NULL THEN
        {_MARK} (OLD.case_id);
    END IF;
    RETURN NULL;
END
$$
"""
# A feedback item whose counted columns changed: the case it belongs to, if any.
_ITEM_FUNCTION = """
CREATE FUNCTION report_case_mark_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_case_dirty (case_id)
    SELECT case_id FROM case_feedback WHERE feedback_id = NEW.id;
    RETURN NULL;
END
$$
"""
_FUNCTIONS = {
    "report_case_mark_case": _CASE_FUNCTION,
    "report_case_mark_link": _LINK_FUNCTION,
    "report_case_mark_item": _ITEM_FUNCTION,
}


def _moved(columns: str) -> str:
    """A WHEN condition: one of these columns changed."""
    names = [c.strip() for c in columns.split(",")]
    return (
        f"({', '.join(f'OLD.{c}' for c in names)}) IS DISTINCT FROM "
        f"({', '.join(f'NEW.{c}' for c in names)})"
    )


_DELIVERED = "{r}.event_type = 'case.resolved' AND {r}.status = 'delivered'"
_COUNTED_EVENT = "{r}.type IN ('resolved', 'reopened')"
# (trigger, table, event, WHEN condition or None, function). A delivered case.resolved that
# outbox retention deletes was still delivered: no DELETE trigger on outbox_message (the facts
# keep when the customer was last told). Deleting feedback deletes its link, which marks.
TRIGGERS = [
    ("report_case_insert", "feedback_case", "INSERT", None, "report_case_mark_case"),
    (
        "report_case_update",
        "feedback_case",
        "UPDATE",
        _moved(
            "status, created_at, opened_for_team, first_response_at, resolved_at, "
            "first_response_due_at, resolution_due_at, first_response_breached, "
            "resolution_breached"
        ),
        "report_case_mark_case",
    ),
    ("report_case_delete", "feedback_case", "DELETE", None, "report_case_mark_case"),
    ("report_case_link_insert", "case_feedback", "INSERT", None, "report_case_mark_link"),
    (
        "report_case_link_update",
        "case_feedback",
        "UPDATE",
        _moved("feedback_id, case_id, kind"),
        "report_case_mark_link",
    ),
    ("report_case_link_delete", "case_feedback", "DELETE", None, "report_case_mark_link"),
    (
        "report_case_event_insert",
        "case_event",
        "INSERT",
        _COUNTED_EVENT.format(r="NEW"),
        "report_case_mark_link",
    ),
    (
        "report_case_event_update",
        "case_event",
        "UPDATE",
        f"({_COUNTED_EVENT.format(r='OLD')} OR {_COUNTED_EVENT.format(r='NEW')}) "
        f"AND {_moved('type, case_id')}",
        "report_case_mark_link",
    ),
    (
        "report_case_event_delete",
        "case_event",
        "DELETE",
        _COUNTED_EVENT.format(r="OLD"),
        "report_case_mark_link",
    ),
    (
        "report_case_message_insert",
        "outbox_message",
        "INSERT",
        _DELIVERED.format(r="NEW"),
        "report_case_mark_link",
    ),
    (
        "report_case_message_update",
        "outbox_message",
        "UPDATE",
        f"(({_DELIVERED.format(r='OLD')}) OR ({_DELIVERED.format(r='NEW')})) "
        f"AND {_moved('event_type, status, case_id, created_at')}",
        "report_case_mark_link",
    ),
    (
        "report_case_item_update",
        "feedback",
        "UPDATE",
        _moved(
            "sentiment, contact_consent, submitted_at, received_at, routing_team, channel, "
            "source, journey_stage, metric, score"
        ),
        "report_case_mark_item",
    ),
]


# (index, table, column, included columns, partial condition) the report no longer reads.
_OLD_INDEXES = [
    (
        "ix_case_feedback_added",
        "case_feedback",
        "added_at",
        ["case_id", "feedback_id", "kind"],
        None,
    ),
    (
        "ix_case_event_report",
        "case_event",
        "at",
        ["case_id", "type"],
        "type IN ('resolved', 'reopened')",
    ),
    (
        "ix_outbox_message_resolved",
        "outbox_message",
        "created_at",
        ["case_id"],
        "event_type = 'case.resolved' AND status = 'delivered'",
    ),
]


def upgrade() -> None:
    for name, table, *_ in _OLD_INDEXES:
        op.drop_index(name, table_name=table)
    op.create_table(
        "report_case",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("team", sa.Text()),
        sa.Column("channel", sa.Text()),
        sa.Column("source", sa.Text()),
        sa.Column("journey_stage", sa.Text()),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("response_seconds", sa.Float()),
        sa.Column("resolution_seconds", sa.Float()),
        sa.Column("first_response_decided", sa.Boolean(), nullable=False),
        sa.Column("first_response_met", sa.Boolean(), nullable=False),
        sa.Column("resolution_decided", sa.Boolean(), nullable=False),
        sa.Column("resolution_met", sa.Boolean(), nullable=False),
        sa.Column("ever_resolved", sa.Boolean(), nullable=False),
        sa.Column("reopened", sa.Boolean(), nullable=False),
        sa.Column("last_told_at", sa.DateTime(timezone=True)),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("recovered", sa.Integer(), nullable=False),
        sa.Column("change_sum", sa.Integer(), nullable=False),
        sa.Column("change_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_report_case")),
    )
    op.create_index("ix_report_case_created", "report_case", ["created_at"])
    op.create_table(
        "report_loop_item",
        sa.Column("feedback_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("team", sa.Text()),
        sa.Column("channel", sa.Text()),
        sa.Column("source", sa.Text()),
        sa.Column("journey_stage", sa.Text()),
        sa.Column("followup", sa.Boolean(), nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("feedback_id", name=op.f("pk_report_loop_item")),
    )
    op.create_index("ix_report_loop_item_submitted", "report_loop_item", ["submitted_at"])
    op.create_index("ix_report_loop_item_case", "report_loop_item", ["case_id"])
    op.create_table("report_case_dirty", sa.Column("case_id", sa.Uuid(), nullable=False))
    for function in _FUNCTIONS.values():
        op.execute(function)
    for name, table, event, when, function in TRIGGERS:
        condition = "" if when is None else f" WHEN ({when})"
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{condition} "
            f"EXECUTE FUNCTION {function}()"
        )
    # What is already stored: every case marked, for the worker to fold.
    op.execute("INSERT INTO report_case_dirty (case_id) SELECT id FROM feedback_case")


def downgrade() -> None:
    for name, table, *_ in reversed(TRIGGERS):
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for function in reversed(_FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("report_case_dirty")
    op.drop_index("ix_report_loop_item_case", table_name="report_loop_item")
    op.drop_index("ix_report_loop_item_submitted", table_name="report_loop_item")
    op.drop_table("report_loop_item")
    op.drop_index("ix_report_case_created", table_name="report_case")
    op.drop_table("report_case")
    for name, table, column, include, where in _OLD_INDEXES:
        op.create_index(
            name,
            table,
            [column],
            postgresql_include=include,
            postgresql_where=None if where is None else sa.text(where),
        )
