"""How well the loop closes, per group and overall (SPEC §6).

One statement, one snapshot, over the facts kept per case (app/reports/facts.py):
- negative feedback: the negative items submitted in the range, counted from their covering
  index, less the follow-up answers among them, with the items whose customer was told after
  they arrived (closed loop), both from `report_loop_item`;
- cases: the cases opened in the range, grouped by their opening feedback (by team: the team
  routing chose, as for the feedback), from `report_case`.
The facts of cases marked since their last fold are left out and worked out from the raw rows
instead, in the same statement: the figures equal the raw rows' at that instant. Every count
is a sum over rows, so the whole's are the groups' added up; medians and p90s overall are of
all cases, not a mean of the groups'.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.reports.facts import facts_ctes
from app.reports.period import Period
from app.reports.schemas import LoopGroup
from app.reports.scores import ordered_keys, percent, rounded

# The raw feedback's column of each group; the facts name the routing team `team`.
_FEEDBACK_KEY = {
    LoopGroup.TEAM: "routing_team",
    LoopGroup.CHANNEL: "channel",
    LoopGroup.SOURCE: "source",
    LoopGroup.JOURNEY_STAGE: "journey_stage",
}
_RANGE = "{t}.{column} >= :start AND {t}.{column} < :end"
# What the case figures read of each case's facts.
_CASE_FACTS = (
    "resolved",
    "active",
    "response_seconds",
    "resolution_seconds",
    "first_response_decided",
    "first_response_met",
    "resolution_decided",
    "resolution_met",
    "ever_resolved",
    "reopened",
    "last_told_at",
    "answered",
    "recovered",
    "change_sum",
    "change_count",
)
_NOT_MARKED = "NOT EXISTS (SELECT FROM marked d WHERE d.case_id = {t}.case_id)"

_LOOP = """
WITH marked AS MATERIALIZED (
    SELECT DISTINCT case_id FROM report_case_dirty
), {facts}, items AS (
    SELECT i.{key}, i.followup, i.consent, i.closed FROM report_loop_item i
    WHERE {item_range} AND {item_not_marked}
    UNION ALL
    SELECT i.{key}, i.followup, i.consent, i.closed FROM fresh_item i WHERE {item_range}
), negative_parts AS (
    SELECT f.{feedback_key} AS key, count(*) AS negative_feedback,
           count(*) FILTER (WHERE f.contact_consent) AS negative_with_consent,
           0 AS closed_loop
    FROM feedback f
    WHERE f.sentiment = 'negative' AND {feedback_range}
    GROUP BY 1
    UNION ALL
    SELECT i.{key}, -count(*) FILTER (WHERE i.followup),
           -count(*) FILTER (WHERE i.followup AND i.consent), count(*) FILTER (WHERE i.closed)
    FROM items i
    GROUP BY 1
), negative AS (
    SELECT key, sum(negative_feedback)::bigint AS negative_feedback,
           sum(negative_with_consent)::bigint AS negative_with_consent,
           sum(closed_loop)::bigint AS closed_loop
    FROM negative_parts
    GROUP BY key
    -- A group of follow-up answers only has no negative feedback: no group.
    HAVING sum(negative_feedback) <> 0
), cases AS (
    SELECT r.{key} AS key, {case_columns} FROM report_case r
    WHERE {case_range} AND {case_not_marked}
    UNION ALL
    SELECT r.{key}, {case_columns} FROM fresh_case r WHERE {case_range}
), case_figures AS (
    SELECT key,
           count(*) AS cases_opened,
           count(*) FILTER (WHERE resolved) AS cases_resolved,
           count(*) FILTER (WHERE active) AS cases_open,
           array_agg(response_seconds) FILTER (WHERE response_seconds IS NOT NULL)
               AS response_seconds,
           array_agg(resolution_seconds) FILTER (WHERE resolution_seconds IS NOT NULL)
               AS resolution_seconds,
           count(*) FILTER (WHERE first_response_decided) AS first_response_decided,
           count(*) FILTER (WHERE first_response_met) AS first_response_met,
           count(*) FILTER (WHERE resolution_decided) AS resolution_decided,
           count(*) FILTER (WHERE resolution_met) AS resolution_met,
           count(*) FILTER (WHERE ever_resolved) AS ever_resolved,
           count(*) FILTER (WHERE reopened) AS cases_reopened,
           count(*) FILTER (WHERE last_told_at IS NOT NULL) AS customers_told,
           count(*) FILTER (WHERE last_told_at IS NOT NULL AND answered > 0) AS told_answered,
           sum(answered) AS followups_answered,
           sum(recovered) AS recovered,
           sum(change_sum) AS change_sum,
           sum(change_count) AS change_count
    FROM cases
    GROUP BY key
)
SELECT coalesce(n.key, c.key) AS key,
       n.negative_feedback, n.negative_with_consent, n.closed_loop, {case_figures}
FROM negative n FULL JOIN case_figures c
    ON (n.key IS NULL) = (c.key IS NULL) AND coalesce(n.key, '') = coalesce(c.key, '')
"""


def loop_statement(group_by: LoopGroup) -> str:
    """The statement of the whole report, grouped so."""
    key = "team" if group_by is LoopGroup.TEAM else group_by.value
    return _LOOP.format(
        facts=facts_ctes("marked"),
        key=key,
        feedback_key=_FEEDBACK_KEY[group_by],
        item_range=_RANGE.format(t="i", column="submitted_at"),
        item_not_marked=_NOT_MARKED.format(t="i"),
        feedback_range=_RANGE.format(t="f", column="submitted_at"),
        case_range=_RANGE.format(t="r", column="created_at"),
        case_not_marked=_NOT_MARKED.format(t="r"),
        case_figures=", ".join(f"c.{name}" for name in _CASE_FIGURES),
        case_columns=", ".join(f"r.{name}" for name in _CASE_FACTS),
    )


# A group's counts, each a sum over its rows: the whole's are the groups' added up.
COUNTS = (
    "negative_feedback",
    "negative_with_consent",
    "closed_loop",
    "cases_opened",
    "cases_resolved",
    "cases_open",
    "first_response_decided",
    "first_response_met",
    "resolution_decided",
    "resolution_met",
    "ever_resolved",
    "cases_reopened",
    "customers_told",
    "told_answered",
    "followups_answered",
    "recovered",
    "change_sum",
    "change_count",
)
# The durations of a group's cases (answered, resolved) and their median and p90 figures.
_DURATIONS = (
    ("response_seconds", "first_response_median_seconds", "first_response_p90_seconds"),
    ("resolution_seconds", "resolution_median_seconds", "resolution_p90_seconds"),
)
_CASE_FIGURES = (*COUNTS[3:], *(values for values, _, _ in _DURATIONS))
_SECONDS = tuple(name for _, *figures in _DURATIONS for name in figures)


def percentile(ordered: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont over values in ascending order, with the same arithmetic:
    the value `fraction` of the way from the first to the last, interpolated between the two
    values either side."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    below, above = math.floor(position), math.ceil(position)
    if below == above:
        return ordered[below]
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _with_percentiles(counts: dict[str, Any], durations: dict[str, list[float]]) -> dict[str, Any]:
    found = dict(counts)
    for values, median, p90 in _DURATIONS:
        found[median] = percentile(durations[values], 0.5)
        found[p90] = percentile(durations[values], 0.9)
    return found


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
    """The report. PostgreSQL counts per group and hands each group's durations over; their
    medians and p90s are taken here, where sorting a group once serves both, and the whole's
    from the groups' sorted runs merged (the statement sorted nothing)."""
    bounds = {"start": period.start, "end": period.end}
    rows = (await session.execute(text(loop_statement(group_by)), bounds)).mappings().all()
    counts = {row["key"]: {name: int(row[name] or 0) for name in COUNTS} for row in rows}
    durations = {
        row["key"]: {values: sorted(row[values] or []) for values, _, _ in _DURATIONS}
        for row in rows
    }
    whole_counts = {name: sum(group[name] for group in counts.values()) for name in COUNTS}
    whole_durations = {
        values: sorted(itertools.chain.from_iterable(d[values] for d in durations.values()))
        for values, _, _ in _DURATIONS
    }
    order = ordered_keys(list(counts), journey=group_by is LoopGroup.JOURNEY_STAGE)
    return {
        "group_by": group_by.value,
        "from": period.start,
        "to": period.end,
        "groups": [
            loop_figures(key, _with_percentiles(counts[key], durations[key])) for key in order
        ],
        "overall": loop_figures(None, _with_percentiles(whole_counts, whole_durations)),
    }
