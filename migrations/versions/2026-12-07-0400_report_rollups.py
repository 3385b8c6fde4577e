"""report rollups: answers counted per day and hour, one row of figures per case, kept by triggers

The reports read these instead of a million raw rows (app/reports/rollups.py says how a range
is split between them and the raw rows). Statement-level triggers with transition tables keep
them in the transaction of every change, whoever makes it, with one set-based statement per
statement: no work per row in the ingest path beyond that.

Revision ID: report_rollups
Revises: uuid7_function
Create Date: 2026-12-07 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "report_rollups"
down_revision: str | None = "uuid7_function"
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
CASE_FIGURES = [
    "team",
    "channel",
    "source",
    "journey_stage",
    "status",
    "first_response_at",
    "resolved_at",
    "first_response_due_at",
    "resolution_due_at",
    "first_response_breached",
    "resolution_breached",
    "last_told_at",
    "ever_resolved",
    "reopened",
    "followups_answered",
    "recovered",
    "change_sum",
    "change_count",
]
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

# One case's figures, from its row, its opening item, links, events and case.resolved
# messages. The row is locked first and computed in a later statement, so with READ COMMITTED
# it sees every change committed by whoever held the lock before: the last writer is right.
# Many: joined with the ids (no `= ANY(ids)`, no subquery per case): a statement may touch
# 200,000 cases, in tables whose statistics do not know yet what that statement wrote; so a
# large set is refreshed with hash joins (report_case_refresh_many), a few by index probes.
_CASE_BODY = """
    INSERT INTO report_case (case_id)
    SELECT DISTINCT id FROM unnest(ids) AS u(id) WHERE id IS NOT NULL ORDER BY id
    ON CONFLICT (case_id) DO UPDATE SET case_id = excluded.case_id;
    DELETE FROM report_case r USING (SELECT DISTINCT id FROM unnest(ids) AS u(id)) u
    WHERE r.case_id = u.id AND NOT EXISTS (SELECT FROM feedback_case c WHERE c.id = u.id);
    WITH touched AS MATERIALIZED (
        SELECT DISTINCT id FROM unnest(ids) AS u(id)
    ), told AS (
        SELECT m.case_id, max(m.created_at) AS at FROM outbox_message m
        JOIN touched t ON t.id = m.case_id
        WHERE m.event_type = 'case.resolved' AND m.status = 'delivered'
        GROUP BY m.case_id
    ), events AS (
        SELECT e.case_id, bool_or(e.type = 'resolved') AS ever_resolved,
               bool_or(e.type = 'reopened') AS reopened
        FROM case_event e JOIN touched t ON t.id = e.case_id
        WHERE e.type IN ('resolved', 'reopened')
        GROUP BY e.case_id
    ), links AS MATERIALIZED (
        SELECT l.case_id, l.kind, l.added_at, f.channel, f.source, f.journey_stage, f.metric,
               f.score, f.sentiment
        FROM case_feedback l JOIN touched t ON t.id = l.case_id
        JOIN feedback f ON f.id = l.feedback_id
        WHERE l.kind IN ('opened', 'followup')
    ), opening AS (
        SELECT DISTINCT ON (case_id) * FROM links WHERE kind = 'opened'
        ORDER BY case_id, added_at
    ), answers AS (
        SELECT a.case_id, count(*) AS answered,
               count(*) FILTER (WHERE a.sentiment <> 'negative') AS recovered,
               coalesce(sum(a.score - o.score) FILTER (WHERE a.metric = o.metric), 0)
                   AS change_sum,
               count(a.score - o.score) FILTER (WHERE a.metric = o.metric) AS change_count
        FROM links a LEFT JOIN opening o ON o.case_id = a.case_id
        WHERE a.kind = 'followup'
        GROUP BY a.case_id
    )
    UPDATE report_case r SET
        created_at = c.created_at, team = c.opened_for_team, channel = o.channel,
        source = o.source, journey_stage = o.journey_stage, status = c.status,
        first_response_at = c.first_response_at, resolved_at = c.resolved_at,
        first_response_due_at = c.first_response_due_at,
        resolution_due_at = c.resolution_due_at,
        first_response_breached = c.first_response_breached,
        resolution_breached = c.resolution_breached,
        last_told_at = told.at, ever_resolved = coalesce(e.ever_resolved, false),
        reopened = coalesce(e.reopened, false), followups_answered = coalesce(u.answered, 0),
        recovered = coalesce(u.recovered, 0), change_sum = coalesce(u.change_sum, 0),
        change_count = coalesce(u.change_count, 0)
    FROM touched
    JOIN feedback_case c ON c.id = touched.id
    LEFT JOIN opening o ON o.case_id = c.id
    LEFT JOIN told ON told.case_id = c.id
    LEFT JOIN events e ON e.case_id = c.id
    LEFT JOIN answers u ON u.case_id = c.id
    WHERE r.case_id = touched.id;
"""
# A few cases (an ingest, a change): probes by index per case, a plan kept for the session.
_CASE_BODY_FEW = """
    INSERT INTO report_case (case_id)
    SELECT DISTINCT id FROM unnest(ids) AS u(id) WHERE id IS NOT NULL ORDER BY id
    ON CONFLICT (case_id) DO UPDATE SET case_id = excluded.case_id;
    DELETE FROM report_case r WHERE r.case_id = ANY(ids)
        AND NOT EXISTS (SELECT FROM feedback_case c WHERE c.id = r.case_id);
    UPDATE report_case r SET
        created_at = c.created_at, team = c.opened_for_team, channel = o.channel,
        source = o.source, journey_stage = o.journey_stage, status = c.status,
        first_response_at = c.first_response_at, resolved_at = c.resolved_at,
        first_response_due_at = c.first_response_due_at,
        resolution_due_at = c.resolution_due_at,
        first_response_breached = c.first_response_breached,
        resolution_breached = c.resolution_breached,
        last_told_at = (
            SELECT max(m.created_at) FROM outbox_message m
            WHERE m.case_id = c.id AND m.event_type = 'case.resolved'
              AND m.status = 'delivered'),
        ever_resolved = EXISTS (
            SELECT FROM case_event e WHERE e.case_id = c.id AND e.type = 'resolved'),
        reopened = EXISTS (
            SELECT FROM case_event e WHERE e.case_id = c.id AND e.type = 'reopened'),
        followups_answered = u.answered, recovered = u.recovered,
        change_sum = u.change_sum, change_count = u.change_count
    FROM feedback_case c
    LEFT JOIN LATERAL (
        SELECT f.channel, f.source, f.journey_stage, f.metric, f.score
        FROM case_feedback l JOIN feedback f ON f.id = l.feedback_id
        WHERE l.case_id = c.id AND l.kind = 'opened'
        ORDER BY l.added_at
        LIMIT 1
    ) o ON true
    CROSS JOIN LATERAL (
        SELECT count(*) AS answered,
               count(*) FILTER (WHERE a.sentiment <> 'negative') AS recovered,
               coalesce(sum(a.score - o.score) FILTER (WHERE a.metric = o.metric), 0)
                   AS change_sum,
               count(a.score - o.score) FILTER (WHERE a.metric = o.metric) AS change_count
        FROM case_feedback l JOIN feedback a ON a.id = l.feedback_id
        WHERE l.case_id = c.id AND l.kind = 'followup'
    ) u
    WHERE c.id = ANY(ids) AND r.case_id = c.id;
"""
_CASE_FUNCTIONS = (
    f"""
CREATE FUNCTION report_case_refresh_many(ids uuid[]) RETURNS void LANGUAGE plpgsql
SET enable_nestloop = off AS $$
BEGIN
{_CASE_BODY}
END
$$
""",
    f"""
CREATE FUNCTION report_case_refresh_few(ids uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
{_CASE_BODY_FEW}
END
$$
""",
    """
CREATE FUNCTION report_case_refresh(ids uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(ids) > 1000 THEN
        PERFORM report_case_refresh_many(ids);
    ELSIF cardinality(ids) > 0 THEN
        PERFORM report_case_refresh_few(ids);
    END IF;
END
$$
""",
)
# Which cases a statement touched, per table: (table, the case id in a row, which rows count).
# Which cases a statement touched, per table: the case id in a row, which rows count (`{t}`
# is the row), and for an update, its key and the columns whose change moves a figure. A
# case.resolved counts once delivered: a pending one, its claims and retries move nothing.
_CASE_SOURCES = {
    "feedback_case": ("id", "true"),
    "case_feedback": ("case_id", "true"),
    "case_event": ("case_id", "{t}.type IN ('resolved', 'reopened')"),
    "outbox_message": ("case_id", "{t}.event_type = 'case.resolved' AND {t}.status = 'delivered'"),
}
_CASE_WATCHED = {
    "feedback_case": (
        "id",
        "status, created_at, opened_for_team, first_response_at, resolved_at, "
        "first_response_due_at, resolution_due_at, first_response_breached, resolution_breached",
    ),
    "case_feedback": ("feedback_id", "case_id, kind"),
    "outbox_message": ("id", "case_id, event_type, status, created_at"),
}
# A delivered message removed by outbox retention was still delivered: no DELETE trigger on
# outbox_message, so the figures do not move when old messages go.
_CASE_EVENTS = {
    "feedback_case": ("INSERT", "UPDATE", "DELETE"),
    "case_feedback": ("INSERT", "UPDATE", "DELETE"),
    "case_event": ("INSERT",),
    "outbox_message": ("INSERT", "UPDATE"),
}
_REFERENCING = {
    "INSERT": "NEW TABLE AS new_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
}


def _case_trigger_function(table: str) -> str:
    column, counted = _CASE_SOURCES[table]
    new = f"SELECT {column} AS id FROM new_rows t WHERE {counted.format(t='t')}"
    old = f"SELECT {column} AS id FROM old_rows t WHERE {counted.format(t='t')}"
    changed = "SELECT NULL::uuid AS id"
    if table in _CASE_WATCHED:
        key, watched = _CASE_WATCHED[table]
        before = ", ".join(f"o.{c.strip()}" for c in watched.split(","))
        after = ", ".join(f"n.{c.strip()}" for c in watched.split(","))
        changed = (
            f"SELECT unnest(ARRAY[o.{column}, n.{column}]) AS id FROM old_rows o "
            f"JOIN new_rows n ON n.{key} = o.{key} "
            f"WHERE (({counted.format(t='o')}) OR ({counted.format(t='n')})) "
            f"AND ({before}) IS DISTINCT FROM ({after})"
        )
    return f"""
CREATE FUNCTION report_case_{table}_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM report_case_refresh(ARRAY({new}));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM report_case_refresh(ARRAY({old}));
    ELSE
        PERFORM report_case_refresh(ARRAY({changed}));
    END IF;
    RETURN NULL;
END
$$
"""


# A PUT that changes an opening item or a follow-up answer moves its case's figures.
_FEEDBACK_CASE_FUNCTION = """
CREATE FUNCTION report_case_feedback_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_case_refresh(ARRAY(
        SELECT l.case_id FROM case_feedback l JOIN new_rows n ON n.id = l.feedback_id
        JOIN old_rows o ON o.id = n.id
        WHERE (n.metric, n.score, n.sentiment, n.channel, n.source, n.journey_stage)
              IS DISTINCT FROM (o.metric, o.score, o.sentiment, o.channel, o.source,
                                o.journey_stage)));
    RETURN NULL;
END
$$
"""


def _trigger(name: str, table: str, event: str, function: str) -> str:
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {_REFERENCING[event]} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )


def _triggers() -> list[tuple[str, str]]:
    """(trigger, table) of every trigger this migration makes."""
    made = [(f"report_score_rollup_{e.lower()}", "feedback") for e in _REFERENCING]
    made.append(("report_case_feedback_update", "feedback"))
    for table, events in _CASE_EVENTS.items():
        made += [(f"report_case_{table}_{e.lower()}", table) for e in events]
    return made


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
    op.create_table(
        "report_case",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("team", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("journey_stage", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_breached", sa.Boolean(), nullable=True),
        sa.Column("resolution_breached", sa.Boolean(), nullable=True),
        sa.Column("last_told_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ever_resolved", sa.Boolean(), nullable=True),
        sa.Column("reopened", sa.Boolean(), nullable=True),
        sa.Column("followups_answered", sa.Integer(), nullable=True),
        sa.Column("recovered", sa.Integer(), nullable=True),
        sa.Column("change_sum", sa.Integer(), nullable=True),
        sa.Column("change_count", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_report_case")),
    )
    # The cases of a range, read from the index alone; and who was told since a moment.
    op.create_index(
        "ix_report_case_created", "report_case", ["created_at"], postgresql_include=CASE_FIGURES
    )
    op.create_index(
        "ix_report_case_told",
        "report_case",
        ["last_told_at"],
        postgresql_include=["case_id"],
        postgresql_where=sa.text("last_told_at IS NOT NULL"),
    )
    op.execute(_SCORE_FUNCTION)
    for function in _CASE_FUNCTIONS:
        op.execute(function)
    op.execute(_FEEDBACK_CASE_FUNCTION)
    for table in _CASE_SOURCES:
        op.execute(_case_trigger_function(table))
    for event in _REFERENCING:
        op.execute(
            _trigger(
                f"report_score_rollup_{event.lower()}",
                "feedback",
                event,
                "report_score_rollup_change",
            )
        )
    op.execute(
        _trigger("report_case_feedback_update", "feedback", "UPDATE", "report_case_feedback_update")
    )
    for table, events in _CASE_EVENTS.items():
        for event in events:
            op.execute(
                _trigger(
                    f"report_case_{table}_{event.lower()}",
                    table,
                    event,
                    f"report_case_{table}_change",
                )
            )
    # What is already stored: counted once, folded, and every case's row made.
    op.execute(
        f"{_INSERT_COUNTS[:-1]}, compacted) SELECT *, true FROM ("
        + _COUNTS.format(rows=f"(SELECT {_COLUMNS}, 1 AS sign FROM feedback)")
        + ") AS counted"
    )
    op.execute("SELECT report_case_refresh(ARRAY(SELECT id FROM feedback_case))")


def downgrade() -> None:
    for name, table in reversed(_triggers()):
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for table in _CASE_SOURCES:
        op.execute(f"DROP FUNCTION report_case_{table}_change()")
    op.execute("DROP FUNCTION report_case_feedback_update()")
    for name in ("report_case_refresh", "report_case_refresh_few", "report_case_refresh_many"):
        op.execute(f"DROP FUNCTION {name}(uuid[])")
    op.execute("DROP FUNCTION report_score_rollup_change()")
    op.drop_index("ix_report_case_told", table_name="report_case")
    op.drop_index("ix_report_case_created", table_name="report_case")
    op.drop_table("report_case")
    op.drop_index("ix_report_score_rollup_fresh", table_name="report_score_rollup")
    op.drop_index("ix_report_score_rollup", table_name="report_score_rollup")
    op.drop_table("report_score_rollup")
