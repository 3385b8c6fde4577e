"""What the reports keep beside the raw rows so they stay fast at size (SPEC §6).

Both are written by triggers in PostgreSQL (migrations/versions/2026-12-07-0400_report_rollups.py),
in the transaction of the change that moves a figure, whoever writes it: the ingest paths, PUT,
the case lifecycle, the dispatcher, erasure and retention, a direct INSERT. So a report reads
them in the same snapshot as the raw rows and is exact.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    Uuid,
    text,
)

from app.core.db import Base

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

# One row per case with everything the closed-loop report asks of it, kept by triggers on the
# case, its links, events and case.resolved messages, and its feedback.
case_report = Table(
    "report_case",
    Base.metadata,
    Column("case_id", Uuid, primary_key=True),
    Column("created_at", DateTime(timezone=True)),
    Column("team", Text),
    Column("channel", Text),
    Column("source", Text),
    Column("journey_stage", Text),
    Column("status", Text),
    Column("first_response_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("first_response_due_at", DateTime(timezone=True)),
    Column("resolution_due_at", DateTime(timezone=True)),
    Column("first_response_breached", Boolean),
    Column("resolution_breached", Boolean),
    Column("last_told_at", DateTime(timezone=True)),
    Column("ever_resolved", Boolean),
    Column("reopened", Boolean),
    Column("followups_answered", Integer),
    Column("recovered", Integer),
    Column("change_sum", Integer),
    Column("change_count", Integer),
    # The cases of a range, read from the index alone; and who was told since a moment.
    Index(
        "ix_report_case_created",
        "created_at",
        postgresql_include=[
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
        ],
    ),
    Index(
        "ix_report_case_told",
        "last_told_at",
        postgresql_include=["case_id"],
        postgresql_where=text("last_told_at IS NOT NULL"),
    ),
)
