"""HTTP for trying routing rules on feedback: evaluate (one body, nothing stored) and backtest
(the stored negative feedback of a time range). They live here, where a feedback body or row
becomes the item rules run on; routing itself knows nothing of feedback."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from app.core.auth import Admin
from app.core.db import RawDep, SessionDep, utcnow
from app.core.errors import FieldError, ValidationFailed
from app.core.routes import answers
from app.feedback.derive import derive, routing_item
from app.feedback.reads import negative_items
from app.feedback.schemas import EvaluateIn
from app.routing import service as routing_service
from app.routing.evaluation import backtest, build_table
from app.routing.schemas import (
    BacktestIn,
    BacktestOut,
    EvaluateOut,
    MovedItem,
    RuleRef,
    TraceStep,
)

router = APIRouter(prefix="/v1/routing", tags=["routing"])


@router.post("/evaluate", **answers(EvaluateOut, 422))
async def evaluate(payload: EvaluateIn, request: Request, raw: RawDep, _: Admin) -> EvaluateOut:
    """Try the rules in force on one feedback body (as for `POST /v1/feedback`): which rule
    and team would win, and for each rule tried whether it held and which condition failed.
    Stores nothing."""
    row = derive(payload, request.app.state.settings, utcnow())
    table = await request.app.state.routing.current(await raw.connection())
    decision, steps = table.trace(routing_item(row))
    return EvaluateOut(
        rule=RuleRef(id=decision.rule.id, name=decision.rule.name, version=decision.rule.version)
        if decision.rule is not None and decision.rule.id is not None
        else None,
        team=decision.team,
        case_priority=decision.case_priority,
        assignee=decision.assignee,
        add_tags=list(decision.add_tags),
        routed=row["sentiment"] == "negative",
        sentiment=row["sentiment"],
        sentiment_cues=row["sentiment_cues"],
        category=row["category"],
        trace=[
            TraceStep(
                rule_id=step.rule.id,
                name=step.rule.name,
                matched=step.failed_at is None,
                failed_at=step.failed_at,
            )
            for step in steps
            if step.rule.id is not None
        ],
    )


@router.post("/backtest", **answers(BacktestOut, 422))
async def run_backtest(
    data: BacktestIn, request: Request, session: SessionDep, raw: RawDep, _: Admin
) -> BacktestOut:
    """Run a proposed rule table over the negative feedback submitted in [from, to), beside the
    rules in force: cases per team under each, how many items would change team, and up to 20
    of them. Changes nothing. Items are taken oldest first, for at most
    `FEEDBACK_BACKTEST_MAX_ROWS` items and `FEEDBACK_BACKTEST_MAX_SECONDS`: an answer with
    `complete: false` covers [from, stopped_at) only."""
    errors: list[FieldError] = []
    known_teams = {t.key for t in (await routing_service.list_teams(session))}
    for i, rule in enumerate(data.rules):
        errors += routing_service.check_rule(rule, f"rules[{i}]")
        if rule.team not in known_teams:
            errors.append(
                FieldError(
                    field=f"rules[{i}].team", message=f"no team `{rule.team}`", type="unknown_team"
                )
            )
    if data.to <= data.from_:
        errors.append(FieldError(field="to", message="must be after `from`", type="range"))
    if errors:
        raise ValidationFailed("The proposed rules are not valid.", errors=errors)
    ordered = sorted(enumerate(data.rules), key=lambda pair: (pair[1].priority, pair[0]))
    conn = await raw.connection()
    current = await request.app.state.routing.current(conn)
    proposed_rules = [
        {**rule.model_dump(mode="json", by_alias=True), "id": None, "version": 0}
        for _, rule in ordered
    ]
    # Compiling thousands of rules takes a second of CPU: in a thread, the event loop still
    # gets its turns (the interpreter switches threads every few milliseconds).
    proposed = await asyncio.to_thread(build_table, proposed_rules, current.default_team)
    settings = request.app.state.settings
    result = await backtest(
        negative_items(conn, data.from_, data.to),
        current=current,
        proposed=proposed,
        max_rows=settings.backtest_max_rows,
        max_seconds=settings.backtest_max_seconds,
    )
    return BacktestOut(
        negative_feedback=result.negative_feedback,
        current=result.current,
        proposed=result.proposed,
        moved=result.moved,
        examples=[MovedItem.model_validate(e) for e in result.examples],
        complete=result.stopped_by is None,
        stopped_by=result.stopped_by,
        stopped_at=result.stopped_at,
    )
