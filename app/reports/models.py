"""What the reports keep beside the raw rows so they stay fast at size (SPEC §6).

The scores' counts are written by triggers in PostgreSQL
(migrations/versions/2026-12-07-0410_report_rollups.py), in the transaction of the change that
moves a figure, whoever writes it: the ingest paths, PUT, erasure and retention, a direct
INSERT. So a report reads them in the same snapshot as the raw rows and is exact.

The closed loop's facts per case are folded by the worker (app/reports/facts.py) from the
cases that triggers marked (migrations/versions/2026-12-07-0500_report_case_facts.py), in the
transaction of the change; a report reads the facts of unmarked cases and works out the marked
ones from their raw rows, in one statement, so it is exact too.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    Uuid,
    text,
)

from app.core.db import Base
from app.reports.schemas import LoopGroup

# Answers counted per (grain, at, metric, dim, value, score): `grain` `day` (a UTC day, for every
# grouping column in `dim`, '' being none) or `hour` (a UTC hour, `dim` '' only, for time
# buckets in any zone). The triggers append counts (negative ones for rows that left a slot);
# app/reports/rollups.py folds them together (`compacted`); a report sums whatever is there.
score_rollup = Table(
    "report_score_rollup",
    Base.metadata,
    Column("grain", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("metric", Text, nullable=False),
    Column("dim", Text, nullable=False),
    Column("value", Text),
    Column("score", SmallInteger, nullable=False),
    Column("n", Integer, nullable=False),
    Column("compacted", Boolean, nullable=False, server_default=text("false")),
    Index(
        "ix_report_score_rollup",
        "metric",
        "dim",
        "grain",
        "at",
        postgresql_include=["value", "score", "n"],
    ),
    Index("ix_report_score_rollup_fresh", "at", postgresql_where=text("NOT compacted")),
)


def _group_keys() -> list[Column[str]]:
    """The keys a closed-loop figure is grouped by (`LoopGroup`): fresh columns for each table
    that carries them (a Column belongs to one table)."""
    return [Column(group.value, Text) for group in LoopGroup]


# One case's closed-loop figures, as of the last fold of it: its grouping keys (the team routing
# chose at opening, the opening item's channel, source and stage), its state and clocks worked
# out, and what it gathered since (resolutions, reopenings, told, follow-up answers).
# `last_told_at` only moves forward: a delivered case.resolved that outbox retention deleted
# was still delivered.
case_facts = Table(
    "report_case",
    Base.metadata,
    Column("case_id", Uuid, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    *_group_keys(),
    Column("resolved", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("response_seconds", Float),
    Column("resolution_seconds", Float),
    Column("first_response_decided", Boolean, nullable=False),
    Column("first_response_met", Boolean, nullable=False),
    Column("resolution_decided", Boolean, nullable=False),
    Column("resolution_met", Boolean, nullable=False),
    Column("ever_resolved", Boolean, nullable=False),
    Column("reopened", Boolean, nullable=False),
    Column("last_told_at", DateTime(timezone=True)),
    Column("answered", Integer, nullable=False),
    Column("recovered", Integer, nullable=False),
    Column("change_sum", Integer, nullable=False),
    Column("change_count", Integer, nullable=False),
    Index("ix_report_case_created", "created_at"),
)

# The negative items of a case that correct a count of the raw negative feedback: follow-up
# answers (not counted as negative feedback) and items whose customer was told the outcome
# after they arrived (closed loop). Keyed and timed as the item is.
loop_items = Table(
    "report_loop_item",
    Base.metadata,
    Column("feedback_id", Uuid, primary_key=True),
    Column("case_id", Uuid, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    *_group_keys(),
    Column("followup", Boolean, nullable=False),
    Column("consent", Boolean, nullable=False),
    Column("closed", Boolean, nullable=False),
    Index("ix_report_loop_item_submitted", "submitted_at"),
    Index("ix_report_loop_item_case", "case_id"),
)

# Cases whose facts may be stale: appended by triggers (duplicates and all, so that writers
# never wait on each other), taken away by the fold that refreshes them.
dirty_cases = Table(
    "report_case_dirty",
    Base.metadata,
    Column("case_id", Uuid, nullable=False),
)
