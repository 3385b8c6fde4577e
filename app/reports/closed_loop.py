"""How well the loop closes, per group and overall (SPEC §6).

Two statements, each one snapshot: the negative feedback submitted in the range (follow-up
answers apart) and whether its customer was told the outcome; the cases opened in the range,
grouped by their opening feedback (by team: the team routing chose, as for the feedback), with
their clocks, reopenings and follow-up answers. `GROUPING SETS` gives each group and the whole
in one pass, so medians and p90s overall are of all cases, not a mean of the groups'.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import ACTIVE_STATUSES
from app.reports.period import Period
from app.reports.schemas import LoopGroup
from app.reports.scores import ordered_keys, percent, rounded

_FEEDBACK_KEY = {
    LoopGroup.TEAM: "f.routing_team",
    LoopGroup.CHANNEL: "f.channel",
    LoopGroup.SOURCE: "f.source",
    LoopGroup.JOURNEY_STAGE: "f.journey_stage",
}
_CASE_KEY = {**_FEEDBACK_KEY, LoopGroup.TEAM: "c.opened_for_team"}
_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)

# The negative feedback of the range comes from its covering index; its links to cases and
# the deliveries of case.resolved are read by range from when the first of it arrived (a link
# or a resolution is never older than the item), on their own time indexes, and hash-joined:
# no probe per item. A customer counts as told when a case.resolved for the item's case was
# delivered after the item arrived. (An hour's margin covers clocks read a moment apart.)
_NEGATIVE = """
WITH negative AS MATERIALIZED (
    SELECT f.id, {key} AS key, f.contact_consent, f.received_at
    FROM feedback f
    WHERE f.sentiment = 'negative' AND f.submitted_at >= :start AND f.submitted_at < :end
), since AS (
    SELECT min(received_at) - interval '1 hour' AS at FROM negative
), links AS (
    SELECT cf.feedback_id, cf.case_id, cf.kind FROM case_feedback cf
    WHERE cf.added_at >= (SELECT at FROM since)
), told AS (
    SELECT m.case_id, max(m.created_at) AS last_told FROM outbox_message m
    WHERE m.created_at >= (SELECT at FROM since)
      AND m.event_type = 'case.resolved' AND m.status = 'delivered'
    GROUP BY m.case_id
)
SELECT GROUPING(key) = 1 AS overall, key,
       count(*) AS negative_feedback,
       count(*) FILTER (WHERE contact_consent) AS negative_with_consent,
       count(*) FILTER (WHERE contact_consent AND t.last_told >= n.received_at) AS closed_loop
FROM negative n
LEFT JOIN links l ON l.feedback_id = n.id
LEFT JOIN told t ON t.case_id = l.case_id
WHERE l.kind IS DISTINCT FROM 'followup'
GROUP BY GROUPING SETS ((key), ())
"""

# Whatever belongs to a case (its links to feedback, its events, its messages) was written at
# or after its opening, so each is read by a range from the report's start on its own time
# index, and joined by hash: no probe per case into tables of every case ever opened. (A day's
# margin covers clocks of one transaction read a moment apart.)
_CASES = """
WITH c AS MATERIALIZED (
    SELECT id, opened_for_team, status, created_at, first_response_at, resolved_at,
           first_response_due_at, resolution_due_at, first_response_breached,
           resolution_breached
    FROM feedback_case WHERE created_at >= :start AND created_at < :end
), links AS MATERIALIZED (
    SELECT cf.case_id, cf.feedback_id, cf.kind FROM case_feedback cf
    WHERE cf.added_at >= CAST(:start AS timestamptz) - interval '1 day'
      AND cf.kind IN ('opened', 'followup') AND cf.case_id IN (SELECT id FROM c)
), told AS (
    SELECT DISTINCT case_id FROM outbox_message
    WHERE created_at >= CAST(:start AS timestamptz) - interval '1 day'
      AND event_type = 'case.resolved' AND status = 'delivered'
), events AS (
    SELECT case_id, bool_or(type = 'resolved') AS ever_resolved,
           bool_or(type = 'reopened') AS reopened
    FROM case_event
    WHERE at >= CAST(:start AS timestamptz) - interval '1 day' AND type IN ('resolved', 'reopened')
    GROUP BY case_id
), followups AS (
    SELECT a.case_id, count(*) AS answered,
           count(*) FILTER (WHERE fa.sentiment <> 'negative') AS recovered,
           sum(fa.score - fo.score) FILTER (WHERE fa.metric = fo.metric) AS change_sum,
           count(fa.score - fo.score) FILTER (WHERE fa.metric = fo.metric) AS change_count
    FROM links a
    JOIN feedback fa ON fa.id = a.feedback_id
    LEFT JOIN links o ON o.case_id = a.case_id AND o.kind = 'opened'
    LEFT JOIN feedback fo ON fo.id = o.feedback_id
    WHERE a.kind = 'followup'
    GROUP BY a.case_id
), cases AS (
    SELECT {key} AS key, c.status, c.first_response_at, c.resolved_at,
           c.first_response_due_at, c.resolution_due_at,
           c.first_response_breached, c.resolution_breached,
           extract(epoch FROM c.first_response_at - c.created_at) AS response_seconds,
           extract(epoch FROM c.resolved_at - c.created_at) AS resolution_seconds,
           t.case_id IS NOT NULL AS told, coalesce(e.ever_resolved, false) AS ever_resolved,
           coalesce(e.reopened, false) AS reopened, coalesce(u.answered, 0) AS answered,
           u.recovered, u.change_sum, u.change_count
    FROM c
    LEFT JOIN links o ON o.case_id = c.id AND o.kind = 'opened'{opening_feedback}
    LEFT JOIN told t ON t.case_id = c.id
    LEFT JOIN events e ON e.case_id = c.id
    LEFT JOIN followups u ON u.case_id = c.id
)
SELECT GROUPING(key) = 1 AS overall, key,
       count(*) AS cases_opened,
       count(*) FILTER (WHERE status IN ('resolved', 'closed')) AS cases_resolved,
       count(*) FILTER (WHERE status IN ({active})) AS cases_open,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY response_seconds)
           AS first_response_median_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY response_seconds)
           AS first_response_p90_seconds,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_seconds)
           AS resolution_median_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_seconds)
           AS resolution_p90_seconds,
       count(*) FILTER (WHERE first_response_at IS NOT NULL OR first_response_breached)
           AS first_response_decided,
       count(*) FILTER (WHERE first_response_at <= first_response_due_at
                        AND NOT first_response_breached) AS first_response_met,
       count(*) FILTER (WHERE resolved_at IS NOT NULL OR resolution_breached)
           AS resolution_decided,
       count(*) FILTER (WHERE resolved_at <= resolution_due_at AND NOT resolution_breached)
           AS resolution_met,
       count(*) FILTER (WHERE ever_resolved) AS ever_resolved,
       count(*) FILTER (WHERE reopened) AS cases_reopened,
       count(*) FILTER (WHERE told) AS customers_told,
       count(*) FILTER (WHERE told AND answered > 0) AS told_answered,
       coalesce(sum(answered), 0) AS followups_answered,
       coalesce(sum(recovered), 0) AS recovered,
       coalesce(sum(change_sum), 0) AS change_sum,
       coalesce(sum(change_count), 0) AS change_count
FROM cases
GROUP BY GROUPING SETS ((key), ())
"""

_EMPTY_NEGATIVE = {"negative_feedback": 0, "negative_with_consent": 0, "closed_loop": 0}
_EMPTY_CASES: dict[str, Any] = {
    "cases_opened": 0,
    "cases_resolved": 0,
    "cases_open": 0,
    "first_response_median_seconds": None,
    "first_response_p90_seconds": None,
    "resolution_median_seconds": None,
    "resolution_p90_seconds": None,
    "first_response_decided": 0,
    "first_response_met": 0,
    "resolution_decided": 0,
    "resolution_met": 0,
    "ever_resolved": 0,
    "cases_reopened": 0,
    "customers_told": 0,
    "told_answered": 0,
    "followups_answered": 0,
    "recovered": 0,
    "change_sum": 0,
    "change_count": 0,
}
_SECONDS = (
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_median_seconds",
    "resolution_p90_seconds",
)


def loop_statements(group_by: LoopGroup) -> tuple[str, str]:
    """The two statements, for the negative feedback and for the cases, grouped so."""
    return (
        _NEGATIVE.format(key=_FEEDBACK_KEY[group_by]),
        _CASES.format(
            key=_CASE_KEY[group_by],
            active=_ACTIVE,
            # By team the opening item is not needed: no probe into feedback for each case.
            opening_feedback=""
            if group_by is LoopGroup.TEAM
            else "\n    LEFT JOIN feedback f ON f.id = o.feedback_id",
        ),
    )


def loop_figures(key: str | None, raw: dict[str, Any]) -> dict[str, Any]:
    """A group's figures from its counts (the working counts stay out of the answer)."""
    seconds = {name: None if raw[name] is None else round(raw[name], 3) for name in _SECONDS}
    change_count = int(raw["change_count"])
    return {
        "key": key,
        "negative_feedback": raw["negative_feedback"],
        "negative_with_consent": raw["negative_with_consent"],
        "closed_loop": raw["closed_loop"],
        "closed_loop_rate": percent(raw["closed_loop"], raw["negative_with_consent"]),
        "cases_opened": raw["cases_opened"],
        "cases_resolved": raw["cases_resolved"],
        "cases_open": raw["cases_open"],
        **seconds,
        "first_response_sla_rate": percent(
            raw["first_response_met"], raw["first_response_decided"]
        ),
        "resolution_sla_rate": percent(raw["resolution_met"], raw["resolution_decided"]),
        "cases_reopened": raw["cases_reopened"],
        "reopen_rate": percent(raw["cases_reopened"], raw["ever_resolved"]),
        "customers_told": raw["customers_told"],
        "followups_answered": int(raw["followups_answered"]),
        "followup_response_rate": percent(raw["told_answered"], raw["customers_told"]),
        "recovered": int(raw["recovered"]),
        "recovery_rate": percent(int(raw["recovered"]), int(raw["followups_answered"])),
        "mean_score_change": (
            rounded(Fraction(int(raw["change_sum"]), change_count)) if change_count else None
        ),
    }


async def closed_loop_report(
    session: AsyncSession, *, group_by: LoopGroup, period: Period
) -> dict[str, Any]:
    bounds = {"start": period.start, "end": period.end}
    groups: dict[str | None, dict[str, Any]] = defaultdict(
        lambda: {**_EMPTY_NEGATIVE, **_EMPTY_CASES}
    )
    overall = {**_EMPTY_NEGATIVE, **_EMPTY_CASES}
    for sql in loop_statements(group_by):
        for row in (await session.execute(text(sql), bounds)).mappings():
            figures = {k: v for k, v in row.items() if k not in ("overall", "key")}
            (overall if row["overall"] else groups[row["key"]]).update(figures)
    order = ordered_keys(list(groups), journey=group_by is LoopGroup.JOURNEY_STAGE)
    return {
        "group_by": group_by.value,
        "from": period.start,
        "to": period.end,
        "groups": [loop_figures(key, groups[key]) for key in order],
        "overall": loop_figures(None, overall),
    }
