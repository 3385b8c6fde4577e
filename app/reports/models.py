"""What the scores report keeps beside the raw rows so it stays fast at size (SPEC §6).

Written by triggers in PostgreSQL (migrations/versions/2026-12-07-0410_report_rollups.py), in
the transaction of the change that moves a figure, whoever writes it: the ingest paths, PUT,
erasure and retention, a direct INSERT. So a report reads them in the same snapshot as the raw
rows and is exact.
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
