"""Scores by group: NPS, CSAT, star and CES over a time range (SPEC §6).

PostgreSQL counts answers per group and score: from the counts kept per UTC day and hour, with
the ragged edges of the range from the raw rows (app/reports/rollups.py), or, when filtered by
source or channel, from the covering index on feedback (metric, submitted_at) that holds every
grouping column. The figures are worked out here from those counts with exact fractions, and
`overall` is the sum of the groups. One statement reads one snapshot: an item stored meanwhile
is counted whole or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.vocabulary import SCALES, JourneyStage, Metric
from app.feedback.models import Feedback
from app.reports.period import Period
from app.reports.rollups import rolled_up_counts
from app.reports.schemas import ScoreGroup

_COLUMNS: dict[ScoreGroup, Any] = {
    ScoreGroup.CHANNEL: Feedback.channel,
    ScoreGroup.SOURCE: Feedback.source,
    # The team routing sent the feedback to: negative feedback only, the rest has none.
    ScoreGroup.TEAM: Feedback.routing_team,
    ScoreGroup.TOUCHPOINT: Feedback.touchpoint,
    ScoreGroup.JOURNEY_STAGE: Feedback.journey_stage,
}
# Calendar buckets in the report's time zone, as sortable text.
_BUCKETS = {
    ScoreGroup.DAY: ("day", "YYYY-MM-DD"),
    ScoreGroup.WEEK: ("week", 'IYYY-"W"IW'),
    ScoreGroup.MONTH: ("month", "YYYY-MM"),
}
DAILY = frozenset(_BUCKETS) - {ScoreGroup.MONTH}
JOURNEY_ORDER = {stage.value: rank for rank, stage in enumerate(JourneyStage)}


def group_key(group_by: ScoreGroup, tz: str) -> ColumnElement[Any]:
    if group_by in _BUCKETS:
        unit, pattern = _BUCKETS[group_by]
        local = func.timezone(literal(tz), Feedback.submitted_at)
        return func.to_char(func.date_trunc(unit, local), pattern)
    column: ColumnElement[Any] = _COLUMNS[group_by]
    return column


def percent(part: int, whole: int) -> float | None:
    return rounded(Fraction(100 * part, whole)) if whole else None


def rounded(value: Fraction) -> float:
    """Two decimals, halves away from zero, as a spreadsheet rounds."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def figures(metric: Metric, key: str | None, counts: dict[int, int]) -> dict[str, Any]:
    """One group's figures from its count of answers per score."""
    low, high = SCALES[metric]
    distribution = {str(score): counts.get(score, 0) for score in range(low, high + 1)}
    count = sum(counts.values())
    document: dict[str, Any] = {"key": key, "count": count, "distribution": distribution}
    if metric is Metric.NPS:
        promoters = sum(n for s, n in counts.items() if s >= 9)
        detractors = sum(n for s, n in counts.items() if s <= 6)
        document |= {
            "score": rounded(Fraction(100 * (promoters - detractors), count)) if count else None,
            "promoters": promoters,
            "passives": count - promoters - detractors,
            "detractors": detractors,
        }
    elif metric is Metric.CES:
        total = sum(s * n for s, n in counts.items())
        document["score"] = rounded(Fraction(total, count)) if count else None
    else:
        document["score"] = percent(sum(n for s, n in counts.items() if s >= 4), count)
    return document


def ordered_keys(keys: list[str | None], *, journey: bool) -> list[str | None]:
    """Journey stages in journey order, anything else by key; no key last."""
    if journey:
        last = len(JOURNEY_ORDER)
        return sorted(keys, key=lambda k: (k is None, JOURNEY_ORDER.get(k or "", last), k or ""))
    return sorted(keys, key=lambda k: (k is None, k or ""))


def score_query(
    *,
    metric: Metric,
    group_by: ScoreGroup,
    period: Period,
    source: str | None,
    channel: str | None,
) -> Select[tuple[Any, int, int]]:
    """Answers per group and score: an index-only scan of ix_feedback_report_scores."""
    query = (
        select(group_key(group_by, period.tz), Feedback.score, func.count())
        .where(
            Feedback.metric == metric.value,
            Feedback.submitted_at >= period.start,
            Feedback.submitted_at < period.end,
            Feedback.score.is_not(None),
        )
        # By position: the key holds a bound time zone, which a repeated expression would bind
        # twice and PostgreSQL would not know to be the same.
        .group_by(text("1"), text("2"))
    )
    if source is not None:
        query = query.where(Feedback.source == source)
    if channel is not None:
        query = query.where(Feedback.channel == channel)
    return query


async def score_report(
    session: AsyncSession,
    *,
    metric: Metric,
    group_by: ScoreGroup,
    period: Period,
    source: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    if source is None and channel is None:
        counted = await rolled_up_counts(
            session,
            metric=metric.value,
            group_by=group_by,
            start=period.start,
            end=period.end,
            tz=period.tz,
        )
    else:
        # The rollups do not keep every source by every channel: a filtered report reads its
        # rows, from the covering index.
        query = score_query(
            metric=metric, group_by=group_by, period=period, source=source, channel=channel
        )
        counted = [(key, score, count) for key, score, count in (await session.execute(query))]
    groups: dict[str | None, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    overall: dict[int, int] = defaultdict(int)
    for key, score, count in counted:
        # A key may come twice, from the counts and from the raw edges of the range.
        groups[key][score] += count
        overall[score] += count
    return {
        "metric": metric.value,
        "group_by": group_by.value,
        "tz": period.tz,
        "from": period.start,
        "to": period.end,
        "groups": [
            figures(metric, key, groups[key])
            for key in ordered_keys(list(groups), journey=group_by is ScoreGroup.JOURNEY_STAGE)
        ],
        "overall": figures(metric, None, overall),
    }
