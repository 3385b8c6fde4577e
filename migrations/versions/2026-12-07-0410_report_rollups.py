"""report rollups: answers counted per day and hour, kept by triggers

The scores report reads these instead of a million raw rows (app/reports/rollups.py says how a range
is split between them and the raw rows). Statement-level triggers with transition tables keep
them in the transaction of every change, whoever makes it, with one set-based statement per
statement: no work per row in the ingest path beyond that.

Revision ID: report_rollups
Revises: customers
Create Date: 2026-12-07 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "report_rollups"
down_revision: str | None = "customers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Counts of answers (metric and score known) from a set of feedback rows `r` with a `sign`:
# a UTC day per grouping column ('' for none) and a UTC hour for the time buckets.
_COUNTS = """
    SELECT 'day', date_trunc('day', r.submitted_at, 'UTC'), r.metric, d.dim, d.value, r.score,
           sum(r.sign)
    FROM {rows} r
    CROSS JOIN LATERAL (VALUES ('', NULL), ('channel', r.channel), ('source', r.source),
                               ('team', r.routing_team), ('touchpoint', r.touchpoint),
                               ('journey_stage', r.journey_stage)) AS d(dim, value)
    WHERE r.metric IS NOT NULL AND r.score IS NOT NULL
    GROUP BY 2, 3, 4, 5, 6
    HAVING sum(r.sign) <> 0
    UNION ALL
    SELECT 'hour', date_trunc('hour', r.submitted_at, 'UTC'), r.metric, '', NULL, r.score,
           sum(r.sign)
    FROM {rows} r
    WHERE r.metric IS NOT NULL AND r.score IS NOT NULL
    GROUP BY 2, 3, 6
    HAVING sum(r.sign) <> 0
"""
_INSERT_COUNTS = "INSERT INTO report_score_rollup (grain, at, metric, dim, value, score, n)"
_COLUMNS = "submitted_at, metric, score, channel, source, routing_team, touchpoint, journey_stage"

_SCORE_FUNCTION = f"""
CREATE FUNCTION report_score_rollup_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_INSERT_COUNTS}
        {_COUNTS.format(rows=f"(SELECT {_COLUMNS}, 1 AS sign FROM new_rows)")};
    ELSIF TG_OP = 'DELETE' THEN
        {_INSERT_COUNTS}
        {_COUNTS.format(rows=f"(SELECT {_COLUMNS}, -1 AS sign FROM old_rows)")};
    ELSE
        -- Only what moved: an update that leaves every counted column alone (erasure,
        -- retention, a PUT of the comment) nets out to nothing and adds no row.
        {_INSERT_COUNTS}
        {
    _COUNTS.format(
        rows=f"(SELECT {_COLUMNS}, -1 AS sign FROM old_rows "
        f"UNION ALL SELECT {_COLUMNS}, 1 FROM new_rows)"
    )
};
    END IF;
    RETURN NULL;
END
$$
"""

_REFERENCING = {
    "INSERT": "NEW TABLE AS new_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
}


def _trigger(name: str, table: str, event: str, function: str) -> str:
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {_REFERENCING[event]} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )


def _triggers() -> list[tuple[str, str]]:
    """(trigger, table) of every trigger this migration makes."""
    return [(f"report_score_rollup_{e.lower()}", "feedback") for e in _REFERENCING]


def upgrade() -> None:
    op.create_table(
        "report_score_rollup",
        sa.Column("grain", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("dim", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("compacted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_index(
        "ix_report_score_rollup",
        "report_score_rollup",
        ["metric", "dim", "grain", "at"],
        postgresql_include=["value", "score", "n"],
    )
    op.create_index(
        "ix_report_score_rollup_fresh",
        "report_score_rollup",
        ["at"],
        postgresql_where=sa.text("NOT compacted"),
    )
    op.execute(_SCORE_FUNCTION)
    for event in _REFERENCING:
        op.execute(
            _trigger(
                f"report_score_rollup_{event.lower()}",
                "feedback",
                event,
                "report_score_rollup_change",
            )
        )
    # What is already stored: counted once, folded.
    op.execute(
        f"{_INSERT_COUNTS[:-1]}, compacted) SELECT *, true FROM ("
        + _COUNTS.format(rows=f"(SELECT {_COLUMNS}, 1 AS sign FROM feedback)")
        + ") AS counted"
    )


def downgrade() -> None:
    for name, table in reversed(_triggers()):
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION report_score_rollup_change()")
    op.drop_index("ix_report_score_rollup_fresh", table_name="report_score_rollup")
    op.drop_index("ix_report_score_rollup", table_name="report_score_rollup")
    op.drop_table("report_score_rollup")
