"""How the scores report reads a range exactly from counts kept per UTC day and hour.

Triggers (migrations/versions/2026-12-07-0410_report_rollups.py) count every answer into
`report_score_rollup` in the transaction that stores, changes or removes it: per UTC day with
each grouping column, and per UTC hour without one. A report asks for a set of pieces of time:
the UTC days wholly inside one of its buckets come from the day counts, the UTC hours wholly
inside one (time buckets only) from the hour counts, and the ragged rest (a range that starts at
11:37, the edges of a Lisbon day, the half hours of Asia/Kolkata) from the raw rows. The pieces
never overlap, and everything is read by one statement, in one snapshot: exact, whatever the
zone, with days of 23 or 25 hours, and an item stored meanwhile counted whole or not at all.

The triggers only append (no row is updated, so concurrent ingests never wait on each other);
`compact` folds what they appended into one row per count, a batch at a time, from the worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import Database, in_batches
from app.reports.schemas import ScoreGroup

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
# The rollup's name of each grouping column, and the raw column behind it.
DIMENSIONS = {
    ScoreGroup.CHANNEL: ("channel", "channel"),
    ScoreGroup.SOURCE: ("source", "source"),
    ScoreGroup.TEAM: ("team", "routing_team"),
    ScoreGroup.TOUCHPOINT: ("touchpoint", "touchpoint"),
    ScoreGroup.JOURNEY_STAGE: ("journey_stage", "journey_stage"),
}
TIME_BUCKETS = frozenset({ScoreGroup.DAY, ScoreGroup.WEEK, ScoreGroup.MONTH})
COMPACT_BATCH = 50_000

Piece = tuple[str, datetime, datetime, str | None]  # grain ('day', 'hour', 'raw'), lo, hi, key

_COUNTS = """
WITH p AS MATERIALIZED (
    SELECT * FROM unnest(CAST(:grains AS text[]), CAST(:los AS timestamptz[]),
                         CAST(:his AS timestamptz[]), CAST(:keys AS text[]))
        AS p(grain, lo, hi, key)
)
SELECT {rollup_key} AS key, r.score, sum(r.n) AS n
FROM p JOIN report_score_rollup r
    ON r.metric = :metric AND r.dim = :dim AND r.grain = p.grain AND r.at >= p.lo AND r.at < p.hi
GROUP BY 1, 2
HAVING sum(r.n) <> 0
UNION ALL
SELECT {raw_key} AS key, f.score, count(*) AS n
FROM p JOIN feedback f
    ON p.grain = 'raw' AND f.metric = :metric AND f.submitted_at >= p.lo
       AND f.submitted_at < p.hi AND f.score IS NOT NULL
GROUP BY 1, 2
"""

# Fold a batch of appended counts into the folded rows of their slots. Two passes at once
# (there is a lease, but it does not matter) only leave two rows where one would do: a report
# sums them either way.
COMPACT_SQL = """
WITH fresh AS (
    DELETE FROM report_score_rollup WHERE ctid IN (
        SELECT ctid FROM report_score_rollup WHERE NOT compacted LIMIT $1)
    RETURNING grain, at, metric, dim, value, score, n
), slots AS (
    SELECT DISTINCT metric, dim, grain, at FROM fresh
), folded AS (
    DELETE FROM report_score_rollup r USING slots s
    WHERE r.metric = s.metric AND r.dim = s.dim AND r.grain = s.grain AND r.at = s.at
      AND r.compacted
    RETURNING r.grain, r.at, r.metric, r.dim, r.value, r.score, r.n
), stored AS (
    INSERT INTO report_score_rollup (grain, at, metric, dim, value, score, n, compacted)
    SELECT grain, at, metric, dim, value, score, sum(n), true
    FROM (SELECT * FROM fresh UNION ALL SELECT * FROM folded) AS counted
    GROUP BY grain, at, metric, dim, value, score
    HAVING sum(n) <> 0
)
SELECT count(*) FROM fresh
"""


def _floor(moment: datetime, unit: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (moment - epoch) // unit * unit


def _ceil(moment: datetime, unit: timedelta) -> datetime:
    floor = _floor(moment, unit)
    return floor if floor == moment else floor + unit


def _split(lo: datetime, hi: datetime, unit: timedelta) -> tuple[datetime, datetime] | None:
    """The whole units of `unit` in [lo, hi), if any."""
    first, last = _ceil(lo, unit), _floor(hi, unit)
    return (first, last) if first < last else None


def pieces(lo: datetime, hi: datetime, key: str | None, *, hours: bool) -> list[Piece]:
    """[lo, hi) as whole UTC days, then (when `hours`) whole UTC hours, then raw time."""
    lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
    days = _split(lo, hi, DAY)
    rest = [(lo, hi)] if days is None else [(lo, days[0]), (days[1], hi)]
    found: list[Piece] = [] if days is None else [("day", days[0], days[1], key)]
    for a, b in rest:
        whole = _split(a, b, HOUR) if hours else None
        edges = [(a, b)] if whole is None else [(a, whole[0]), (whole[1], b)]
        if whole is not None:
            found.append(("hour", whole[0], whole[1], key))
        found += [("raw", x, y, key) for x, y in edges if x < y]
    return found


def _local_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local date (a midnight the clock skips is where it skips to)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _buckets(
    group_by: ScoreGroup, start: datetime, end: datetime, zone: ZoneInfo
) -> Iterator[tuple[datetime, datetime, str]]:
    """The calendar buckets of `zone` that meet [start, end), clipped to it, with their keys."""
    day = start.astimezone(zone).date()
    if group_by is ScoreGroup.WEEK:
        day -= timedelta(days=day.weekday())
    elif group_by is ScoreGroup.MONTH:
        day = day.replace(day=1)
    while (lo := _local_start(day, zone)) < end:
        if group_by is ScoreGroup.WEEK:
            year, week, _ = day.isocalendar()
            key = f"{year}-W{week:02d}"
        else:
            key = day.isoformat() if group_by is ScoreGroup.DAY else day.isoformat()[:7]
        try:
            if group_by is ScoreGroup.DAY:
                following = day + DAY
            elif group_by is ScoreGroup.WEEK:
                following = day + timedelta(days=7)
            else:
                following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
            hi = _local_start(following, zone)
        except OverflowError:  # the calendar's last bucket: it runs to the range's end
            hi = end
        if hi > start:
            yield max(lo, start), min(hi, end), key
        if hi >= end:
            return
        day = following


def plan(group_by: ScoreGroup, start: datetime, end: datetime, tz: str) -> list[Piece]:
    """The pieces a report reads: one bucket (the range) for a column, else the calendar's."""
    if group_by not in TIME_BUCKETS:
        return pieces(start, end, None, hours=False)
    zone = ZoneInfo(tz)
    return [
        piece
        for lo, hi, key in _buckets(group_by, start, end, zone)
        for piece in pieces(lo, hi, key, hours=True)
    ]


def counts_statement(
    *, metric: str, group_by: ScoreGroup, start: datetime, end: datetime, tz: str
) -> tuple[str, dict[str, Any]]:
    """The statement that counts answers per group and score, and its parameters."""
    found = plan(group_by, start, end, tz)
    if group_by in TIME_BUCKETS:
        dim, rollup_key, raw_key = "", "p.key", "p.key"
    else:
        dim, column = DIMENSIONS[group_by]
        rollup_key, raw_key = "r.value", f"f.{column}"
    sql = _COUNTS.format(rollup_key=rollup_key, raw_key=raw_key)
    parameters: dict[str, Any] = {
        "grains": [p[0] for p in found],
        "los": [p[1] for p in found],
        "his": [p[2] for p in found],
        "keys": [p[3] for p in found],
        "metric": metric,
        "dim": dim,
    }
    return sql, parameters


async def rolled_up_counts(
    session: AsyncSession,
    *,
    metric: str,
    group_by: ScoreGroup,
    start: datetime,
    end: datetime,
    tz: str,
) -> list[tuple[str | None, int, int]]:
    """(group key, score, answers) of a metric in [start, end): one statement, one snapshot."""
    sql, parameters = counts_statement(
        metric=metric, group_by=group_by, start=start, end=end, tz=tz
    )
    rows = (await session.execute(text(sql), parameters)).all()
    return [(key, score, int(n)) for key, score, n in rows]


async def compact(
    database: Database,
    *,
    batch: int = COMPACT_BATCH,
    between: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Fold the appended counts, a batch a transaction; answer how many were folded."""

    async def step(conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval(COMPACT_SQL, batch))

    return await in_batches(database, step, batch, between)
