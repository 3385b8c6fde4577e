"""HTTP for the reports: JSON, or CSV with `Accept: text/csv`, and the scores as an SVG chart."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response

from app.core.auth import ReportsReader
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.schemas import json_bytes
from app.core.vocabulary import Channel, Metric
from app.reports.closed_loop import closed_loop_report
from app.reports.period import Period, report_period
from app.reports.render import report_csv, scores_svg
from app.reports.schemas import ClosedLoopReport, LoopGroup, ScoreGroup, ScoresReport
from app.reports.scores import DAILY, score_report

router = APIRouter(prefix="/v1/reports", tags=["reports"])

From = Annotated[
    str,
    Query(
        alias="from",
        max_length=40,
        description="A date (a whole day in `tz`) or an ISO 8601 timestamp; inclusive.",
    ),
]
To = Annotated[
    str,
    Query(
        max_length=40,
        description="A date (that day included) or an ISO 8601 timestamp (exclusive).",
    ),
]
Tz = Annotated[
    str,
    Query(max_length=64, description="IANA time zone of dates and of day/week/month buckets."),
]
Filter = Annotated[str | None, Query(max_length=64)]
Accept = Annotated[str | None, Header(description="`text/csv` for a spreadsheet.")]
_CSV = {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The report."}
_ERRORS = problem_responses(401, 403, 422)


def _answer(report: dict[str, Any], accept: str | None, name: str) -> Response:
    if accept is not None and "text/csv" in accept:
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(json_bytes(report), media_type="application/json")


async def _scores(
    session: SessionDep,
    _: ReportsReader,
    metric: Metric,
    group_by: ScoreGroup,
    start: From,
    to: To,
    tz: Tz = "UTC",
    source: Filter = None,
    channel: Channel | None = None,
) -> dict[str, Any]:
    """The scores report the JSON/CSV and SVG routes both answer with (their one query)."""
    period: Period = report_period(start, to, tz, daily=group_by in DAILY)
    return await score_report(
        session, metric=metric, group_by=group_by, period=period, source=source, channel=channel
    )


Scores = Annotated[dict[str, Any], Depends(_scores)]


@router.get("/scores", response_model=ScoresReport, responses={**_ERRORS, 200: _CSV})
async def get_scores(report: Scores, accept: Accept = None) -> Response:
    """NPS (% promoters − % detractors), CSAT and star (% of 4–5) or CES (the mean) with the
    count and distribution of answers, per group and overall. By `journey_stage` this is the
    customer's emotion curve, in journey order."""
    return _answer(report, accept, f"{report['metric']}-by-{report['group_by']}")


@router.get(
    "/scores.svg",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"image/svg+xml": {}}, "description": "A chart."}},
)
async def get_scores_chart(report: Scores) -> Response:
    """The scores report as a bar chart: plain SVG, readable without JavaScript."""
    return Response(scores_svg(report), media_type="image/svg+xml")


@router.get("/closed-loop", response_model=ClosedLoopReport, responses={**_ERRORS, 200: _CSV})
async def get_closed_loop(
    session: SessionDep,
    _: ReportsReader,
    group_by: LoopGroup,
    start: From,
    to: To,
    tz: Tz = "UTC",
    accept: Accept = None,
) -> Response:
    """Negative feedback received and how often its customer was told the outcome; cases opened,
    resolved and open; time to first response and to resolution (median, p90) and SLA
    compliance; reopenings; follow-up answers and how many customers were won back. Per group
    and overall; each figure's definition is in the README."""
    report = await closed_loop_report(
        session, group_by=group_by, period=report_period(start, to, tz)
    )
    return _answer(report, accept, f"closed-loop-by-{group_by.value}")
