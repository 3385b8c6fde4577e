"""How well the loop closes, per group and overall (SPEC §6).

One statement, one snapshot, of two parts: the negative feedback submitted in the range (follow-up
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
from sqlalchemy.dialects.postgresql import JSONB
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
# A case is grouped by its opening item (by team: the team routing chose at opening).
_CASE_KEY = {
    LoopGroup.TEAM: "team",
    LoopGroup.CHANNEL: "channel",
    LoopGroup.SOURCE: "source",
    LoopGroup.JOURNEY_STAGE: "journey_stage",
}
_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)

# The negative feedback of the range comes from its covering index; its links to cases, and the
# cases told since (`last_told_at` of their report rows, app/reports/models.py), are read by
# range from when the first of it arrived (neither is older than the item), on their own time
# indexes, and hash-joined: no probe per item. A customer counts as told when a case.resolved
# for the item's case was delivered after the item arrived. (An hour's margin covers clocks
# read a moment apart.)
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
    SELECT case_id, last_told_at FROM report_case WHERE last_told_at >= (SELECT at FROM since)
)
SELECT GROUPING(key) = 1 AS overall, key,
       count(*) AS negative_feedback,
       count(*) FILTER (WHERE contact_consent) AS negative_with_consent,
       count(*) FILTER (WHERE contact_consent AND t.last_told_at >= n.received_at)
           AS closed_loop
FROM negative n
LEFT JOIN links l ON l.feedback_id = n.id
LEFT JOIN told t ON t.case_id = l.case_id
WHERE l.kind IS DISTINCT FROM 'followup'
GROUP BY GROUPING SETS ((key), ())
"""

# The cases opened in the range, from their report rows: one row per case with its clocks,
# whether its customer was told, its reopenings and follow-up answers, kept by triggers in the
# transaction of every change (migrations/versions/2026-12-07-0400_report_rollups.py).
_CASES = """
WITH cases AS (
    SELECT {key} AS key, status, first_response_at, resolved_at,
           first_response_due_at, resolution_due_at,
           first_response_breached, resolution_breached,
           extract(epoch FROM first_response_at - created_at) AS response_seconds,
           extract(epoch FROM resolved_at - created_at) AS resolution_seconds,
           last_told_at IS NOT NULL AS told, ever_resolved, reopened,
           followups_answered AS answered, recovered, change_sum, change_count
    FROM report_case WHERE created_at >= :start AND created_at < :end
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
        _CASES.format(key=_CASE_KEY[group_by], active=_ACTIVE),
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
    # Both in one statement, so in one snapshot: an item or a case stored meanwhile counts in
    # every figure or in none.
    negative, cases = loop_statements(group_by)
    statement = text(
        f"SELECT to_jsonb(n) AS row FROM ({negative}) n "
        f"UNION ALL SELECT to_jsonb(c) FROM ({cases}) c"
    ).columns(row=JSONB)
    for (row,) in (await session.execute(statement, bounds)).all():
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
