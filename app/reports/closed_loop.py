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

_NEGATIVE = """
WITH negative AS (
    SELECT {key} AS key, f.contact_consent, cf.case_id
    FROM feedback f LEFT JOIN case_feedback cf ON cf.feedback_id = f.id
    WHERE f.sentiment = 'negative' AND f.submitted_at >= :start AND f.submitted_at < :end
      AND cf.kind IS DISTINCT FROM 'followup'
), told AS (
    SELECT DISTINCT m.case_id FROM outbox_message m
    WHERE m.case_id IN (SELECT case_id FROM negative)
      AND m.event_type = 'case.resolved' AND m.status = 'delivered'
)
SELECT GROUPING(key) = 1 AS overall, key,
       count(*) AS negative_feedback,
       count(*) FILTER (WHERE contact_consent) AS negative_with_consent,
       count(*) FILTER (WHERE contact_consent AND case_id IN (SELECT case_id FROM told))
           AS closed_loop
FROM negative
GROUP BY GROUPING SETS ((key), ())
"""

_CASES = """
WITH opened AS (
    SELECT c.id, {key} AS key, c.status, c.created_at, c.first_response_at, c.resolved_at,
           c.first_response_due_at, c.resolution_due_at,
           c.first_response_breached, c.resolution_breached,
           f.metric AS complaint_metric, f.score AS complaint_score,
           extract(epoch FROM c.first_response_at - c.created_at) AS response_seconds,
           extract(epoch FROM c.resolved_at - c.created_at) AS resolution_seconds
    FROM feedback_case c
    LEFT JOIN case_feedback o ON o.case_id = c.id AND o.kind = 'opened'
    LEFT JOIN feedback f ON f.id = o.feedback_id
    WHERE c.created_at >= :start AND c.created_at < :end
), followups AS (
    SELECT c.id, count(*) AS answered,
           count(*) FILTER (WHERE a.sentiment <> 'negative') AS recovered,
           sum(a.score - c.complaint_score) FILTER (WHERE a.metric = c.complaint_metric)
               AS change_sum,
           count(a.score - c.complaint_score) FILTER (WHERE a.metric = c.complaint_metric)
               AS change_count
    FROM opened c
    JOIN case_feedback cf ON cf.case_id = c.id AND cf.kind = 'followup'
    JOIN feedback a ON a.id = cf.feedback_id
    GROUP BY c.id
), cases AS (
    SELECT c.*, coalesce(u.answered, 0) AS answered, coalesce(u.recovered, 0) AS recovered,
           coalesce(u.change_sum, 0) AS change_sum, coalesce(u.change_count, 0) AS change_count,
           EXISTS (SELECT 1 FROM outbox_message m WHERE m.case_id = c.id
                   AND m.event_type = 'case.resolved' AND m.status = 'delivered') AS told,
           EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.id AND e.type = 'resolved')
               AS ever_resolved,
           EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.id AND e.type = 'reopened')
               AS reopened
    FROM opened c LEFT JOIN followups u ON u.id = c.id
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
    for sql in (
        _NEGATIVE.format(key=_FEEDBACK_KEY[group_by]),
        _CASES.format(key=_CASE_KEY[group_by], active=_ACTIVE),
    ):
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
