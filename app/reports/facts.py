"""The closed loop's facts per case, and the fold that keeps them (SPEC §6).

A median is not a sum, so the closed loop cannot be counted per day as the scores are; what it
keeps instead is one row of figures per case (`report_case`: its grouping keys, its state and
clocks worked out, whether it was ever resolved, reopened, told, what its follow-up answers
said) and one row per negative item of a case that corrects the raw negative counts
(`report_loop_item`: follow-up answers, and items whose customer was told after they arrived).
A report then reads a range of a few thousand narrow rows instead of joining five tables.

Nothing on the ingest path computes them. Row triggers only append the id of a case whose raw
rows moved a figure to `report_case_dirty` (see the migration
2026-12-07-0500_report_case_facts.py), and the worker folds: it takes marked ids away and
writes their facts from the raw rows, in one statement, so from one snapshot. A report leaves
out the facts of every marked case and works those cases out from the raw rows with the same
SQL (`facts_ctes`), again in one statement: a change is either folded or marked in any
snapshot, so the answer is exact at every moment.

Folds run one at a time (an advisory lock), each reading after the last one committed: two
folds of one case could otherwise write an older snapshot's facts over a newer one's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from app.cases.models import ACTIVE_STATUSES
from app.core.db import Database, in_batches
from app.reports.models import case_facts, loop_items

FOLD_BATCH = 20_000
# pg_advisory_xact_lock's key for the fold: the bytes of "loopfold".
_FOLD_LOCK = 0x6C6F6F70666F6C64

_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)
CASE_COLUMNS = [c.name for c in case_facts.c]
ITEM_COLUMNS = [c.name for c in loop_items.c]


def facts_ctes(touched: str) -> str:
    """CTEs `fresh_case` and `fresh_item`, in `report_case` and `report_loop_item` columns: the
    facts of the cases whose ids the CTE `touched` holds (one `case_id` each), from the raw rows.
    A case's last told time never goes back: the stored facts' counts too."""
    return f"""
fresh_link AS MATERIALIZED (
    SELECT l.case_id, l.feedback_id, l.kind, l.added_at, f.submitted_at, f.received_at,
           f.routing_team, f.channel, f.source, f.journey_stage, f.contact_consent,
           f.sentiment, f.metric, f.score
    FROM {touched} t
    JOIN case_feedback l ON l.case_id = t.case_id
    JOIN feedback f ON f.id = l.feedback_id
), fresh_opening AS (
    SELECT DISTINCT ON (case_id) * FROM fresh_link WHERE kind = 'opened'
    ORDER BY case_id, added_at, feedback_id
), fresh_answers AS (
    SELECT a.case_id, count(*) AS answered,
           count(*) FILTER (WHERE a.sentiment <> 'negative') AS recovered,
           coalesce(sum(a.score - o.score) FILTER (WHERE a.metric = o.metric), 0) AS change_sum,
           count(a.score - o.score) FILTER (WHERE a.metric = o.metric) AS change_count
    FROM fresh_link a LEFT JOIN fresh_opening o ON o.case_id = a.case_id
    WHERE a.kind = 'followup'
    GROUP BY a.case_id
), fresh_told AS (
    SELECT m.case_id, max(m.created_at) AS at
    FROM {touched} t JOIN outbox_message m ON m.case_id = t.case_id
    WHERE m.event_type = 'case.resolved' AND m.status = 'delivered'
    GROUP BY m.case_id
), fresh_events AS (
    SELECT e.case_id, bool_or(e.type = 'resolved') AS ever_resolved,
           bool_or(e.type = 'reopened') AS reopened
    FROM {touched} t JOIN case_event e ON e.case_id = t.case_id
    WHERE e.type IN ('resolved', 'reopened')
    GROUP BY e.case_id
), fresh_case AS MATERIALIZED (
    SELECT c.id AS case_id, c.created_at, c.opened_for_team AS team, o.channel, o.source,
           o.journey_stage,
           c.status IN ('resolved', 'closed') AS resolved,
           c.status IN ({_ACTIVE}) AS active,
           extract(epoch FROM c.first_response_at - c.created_at)::float8 AS response_seconds,
           extract(epoch FROM c.resolved_at - c.created_at)::float8 AS resolution_seconds,
           c.first_response_at IS NOT NULL OR c.first_response_breached
               AS first_response_decided,
           coalesce(c.first_response_at <= c.first_response_due_at
                    AND NOT c.first_response_breached, false) AS first_response_met,
           c.resolved_at IS NOT NULL OR c.resolution_breached AS resolution_decided,
           coalesce(c.resolved_at <= c.resolution_due_at AND NOT c.resolution_breached, false)
               AS resolution_met,
           coalesce(e.ever_resolved, false) AS ever_resolved,
           coalesce(e.reopened, false) AS reopened,
           greatest(m.at, r.last_told_at) AS last_told_at,
           coalesce(u.answered, 0)::int AS answered,
           coalesce(u.recovered, 0)::int AS recovered,
           coalesce(u.change_sum, 0)::int AS change_sum,
           coalesce(u.change_count, 0)::int AS change_count
    FROM {touched} t
    JOIN feedback_case c ON c.id = t.case_id
    LEFT JOIN fresh_opening o ON o.case_id = c.id
    LEFT JOIN fresh_told m ON m.case_id = c.id
    LEFT JOIN fresh_events e ON e.case_id = c.id
    LEFT JOIN fresh_answers u ON u.case_id = c.id
    LEFT JOIN report_case r ON r.case_id = c.id
), fresh_item AS (
    SELECT l.feedback_id, l.case_id, l.submitted_at, l.routing_team AS team, l.channel,
           l.source, l.journey_stage, l.followup, l.consent, l.closed
    FROM (
        SELECT l.*, l.kind = 'followup' AS followup,
               coalesce(l.contact_consent, false) AS consent,
               l.kind <> 'followup' AND coalesce(l.contact_consent, false)
                   AND coalesce(c.last_told_at >= l.received_at, false) AS closed
        FROM fresh_link l JOIN fresh_case c ON c.case_id = l.case_id
        WHERE l.sentiment = 'negative'
    ) l
    WHERE l.followup OR l.closed
)"""


def _upsert(table: str, columns: list[str], key: str, rows: str) -> str:
    """Rows written where new or changed only: a fold of an unchanged case writes nothing, so
    the facts' pages stay all-visible and few versions pile up."""
    others = [c for c in columns if c != key]
    stored = ", ".join(f"{table}.{c}" for c in others)
    excluded = ", ".join(f"EXCLUDED.{c}" for c in others)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {rows} "
        f"ON CONFLICT ({key}) DO UPDATE SET ({', '.join(others)}) = ({excluded}) "
        f"WHERE ({stored}) IS DISTINCT FROM ({excluded})"
    )


# Each target row is written by one sub-statement only (upserted, or deleted because its case
# or item is gone), as PostgreSQL requires of data-modifying CTEs.
FOLD_SQL = f"""
WITH claimed AS (
    DELETE FROM report_case_dirty WHERE ctid IN (SELECT ctid FROM report_case_dirty LIMIT $1)
    RETURNING case_id
), touched AS MATERIALIZED (
    SELECT DISTINCT case_id FROM claimed
), {facts_ctes("touched")}, cases AS (
    {_upsert("report_case", CASE_COLUMNS, "case_id", "fresh_case")}
), gone_cases AS (
    DELETE FROM report_case r USING touched t
    WHERE r.case_id = t.case_id
      AND NOT EXISTS (SELECT FROM fresh_case f WHERE f.case_id = t.case_id)
), items AS (
    {_upsert("report_loop_item", ITEM_COLUMNS, "feedback_id", "fresh_item")}
), gone_items AS (
    DELETE FROM report_loop_item i USING touched t
    WHERE i.case_id = t.case_id
      AND NOT EXISTS (SELECT FROM fresh_item f WHERE f.feedback_id = i.feedback_id)
)
SELECT count(*) FROM claimed
"""


async def fold(
    database: Database,
    *,
    batch: int = FOLD_BATCH,
    between: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Refresh the facts of the marked cases, a batch of marks a transaction; answer how many
    marks were taken."""

    async def step(conn: asyncpg.Connection) -> int:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _FOLD_LOCK)
        return int(await conn.fetchval(FOLD_SQL, batch))

    return await in_batches(database, step, batch, between)
