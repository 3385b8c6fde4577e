"""The shapes of the reports (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class ScoreGroup(StrEnum):
    CHANNEL = "channel"
    SOURCE = "source"
    TEAM = "team"
    TOUCHPOINT = "touchpoint"
    JOURNEY_STAGE = "journey_stage"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class LoopGroup(StrEnum):
    TEAM = "team"
    CHANNEL = "channel"
    SOURCE = "source"
    JOURNEY_STAGE = "journey_stage"


class ScoreFigures(BaseModel):
    key: str | None = Field(
        description="The group: a channel, team, ...; a day (2026-11-03), ISO week (2026-W45) "
        "or month (2026-11) in `tz`; null for items without one (e.g. feedback no team owns)."
    )
    count: int
    score: float | None = Field(
        description="NPS: % promoters − % detractors; CSAT and star: % of 4–5; CES: the mean. "
        "Rounded to 2 decimals; null without answers."
    )
    promoters: int | None = Field(default=None, description="NPS only: 9–10.")
    passives: int | None = Field(default=None, description="NPS only: 7–8.")
    detractors: int | None = Field(default=None, description="NPS only: 0–6.")
    distribution: dict[str, int] = Field(description="How many answers gave each score.")


class ScoresReport(BaseModel):
    metric: str
    group_by: str
    tz: str
    from_: datetime = Field(alias="from")
    to: datetime = Field(description="Exclusive.")
    groups: list[ScoreFigures]
    overall: ScoreFigures


class LoopFigures(BaseModel):
    key: str | None
    negative_feedback: int = Field(description="Negative feedback received (follow-ups apart).")
    negative_with_consent: int
    closed_loop: int = Field(
        description="Negative feedback with consent whose case's case.resolved was delivered."
    )
    closed_loop_rate: float | None = Field(description="closed_loop / negative_with_consent, %.")
    cases_opened: int
    cases_resolved: int = Field(description="Of the cases opened: resolved or closed now.")
    cases_open: int = Field(description="Of the cases opened: still active.")
    first_response_median_seconds: float | None
    first_response_p90_seconds: float | None
    resolution_median_seconds: float | None
    resolution_p90_seconds: float | None
    first_response_sla_rate: float | None = Field(
        description="First responses within their target, over cases answered or overdue, %."
    )
    resolution_sla_rate: float | None = Field(
        description="Resolutions within their target, over cases resolved or overdue, %."
    )
    cases_reopened: int
    reopen_rate: float | None = Field(
        description="Cases reopened at least once over cases resolved at least once, %."
    )
    customers_told: int = Field(description="Cases whose case.resolved was delivered.")
    followups_answered: int = Field(description="Answers to the follow-up question.")
    followup_response_rate: float | None = Field(
        description="Cases with a follow-up answer over customers_told, %."
    )
    recovered: int = Field(description="Follow-up answers that are not negative.")
    recovery_rate: float | None = Field(description="recovered / followups_answered, %.")
    mean_score_change: float | None = Field(
        description="Mean of follow-up score − complaint score, where both scored one metric."
    )


class ClosedLoopReport(BaseModel):
    group_by: str
    from_: datetime = Field(alias="from")
    to: datetime = Field(description="Exclusive.")
    groups: list[LoopFigures]
    overall: LoopFigures
