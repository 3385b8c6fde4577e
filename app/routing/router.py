"""HTTP for teams, routing rules, evaluate and backtest."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from app.core.auth import Admin, CasesReader
from app.core.db import DatabaseDep, SessionDep, utcnow
from app.core.errors import FieldError, ValidationFailed, problem_responses
from app.core.etag import etag
from app.core.schemas import Page
from app.feedback.service import derive
from app.routing import service
from app.routing.evaluation import RoutingCache, backtest, build_table, routing_item
from app.routing.schemas import (
    BacktestIn,
    BacktestOut,
    EvaluateIn,
    EvaluateOut,
    MovedItem,
    RuleCreate,
    RuleRead,
    RuleRef,
    RuleUpdate,
    RuleVersionRead,
    TeamCreate,
    TeamRead,
    TeamUpdate,
    TraceStep,
)

teams = APIRouter(prefix="/v1/teams", tags=["teams"])
rules = APIRouter(prefix="/v1/routing", tags=["routing"])

IfMatch = Annotated[str | None, Header(description="The rule's ETag, from your last read of it.")]


def _routing(request: Request) -> RoutingCache:
    cache: RoutingCache = request.app.state.routing
    cache.invalidate()
    return cache


@teams.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_team(
    data: TeamCreate, request: Request, session: SessionDep, _: Admin
) -> TeamRead:
    """Create a team. The first team is the default until another is marked `is_default`."""
    team = await service.create_team(session, data)
    _routing(request)
    return TeamRead.model_validate(team)


@teams.get("", response_model=Page[TeamRead], responses=problem_responses(401, 403))
async def list_teams(session: SessionDep, _: CasesReader) -> Page[TeamRead]:
    """Every team, by key."""
    rows = await service.list_teams(session)
    return Page(items=[TeamRead.model_validate(t) for t in rows], next_cursor=None)


@teams.get("/{key}", response_model=TeamRead, responses=problem_responses(401, 403, 404))
async def get_team(key: str, session: SessionDep, _: CasesReader) -> TeamRead:
    """One team."""
    return TeamRead.model_validate(await service.get_team(session, key))


@teams.patch("/{key}", response_model=TeamRead, responses=problem_responses(401, 403, 404, 422))
async def update_team(
    key: str, data: TeamUpdate, request: Request, session: SessionDep, _: Admin
) -> TeamRead:
    """Change a team's name, SLA targets or escalation team, or make it the default."""
    team = await service.update_team(session, key, data)
    _routing(request)
    return TeamRead.model_validate(team)


@teams.delete("/{key}", status_code=204, responses=problem_responses(401, 403, 404, 409))
async def delete_team(key: str, request: Request, session: SessionDep, _: Admin) -> Response:
    """Delete a team no rule, case or other team uses (else 409, saying what uses it)."""
    await service.delete_team(session, key)
    _routing(request)
    return Response(status_code=204)


def _rule_response(rule: RuleRead, status_code: int = 200) -> Response:
    return Response(
        rule.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers={"ETag": etag(rule.version)},
    )


@rules.post(
    "/rules",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleRead,
    responses=problem_responses(401, 403, 422),
)
async def create_rule(
    data: RuleCreate, request: Request, session: SessionDep, principal: Admin
) -> Response:
    """Add a rule to the table. Its conditions are checked now: a bad field, operator or value
    is a 422 whose `errors` point at the condition (`conditions.all[2].any[0].op`)."""
    rule = await service.create_rule(session, data, actor=principal.name)
    _routing(request)
    return _rule_response(service.rule_read(rule), status.HTTP_201_CREATED)


@rules.get("/rules", response_model=Page[RuleRead], responses=problem_responses(401, 403))
async def list_rules(session: SessionDep, _: Admin) -> Page[RuleRead]:
    """The rule table in evaluation order: priority, then creation. Disabled rules keep their
    place but are skipped."""
    rows = await service.list_rules(session)
    return Page(items=[service.rule_read(r) for r in rows], next_cursor=None)


@rules.get("/rules/{rule_id}", response_model=RuleRead, responses=problem_responses(401, 403, 404))
async def get_rule(rule_id: uuid.UUID, session: SessionDep, _: Admin) -> Response:
    """One rule, with its version as the ETag."""
    return _rule_response(service.rule_read(await service.get_rule(session, rule_id)))


@rules.patch(
    "/rules/{rule_id}",
    response_model=RuleRead,
    responses=problem_responses(401, 403, 404, 412, 422, 428),
)
async def update_rule(
    rule_id: uuid.UUID,
    data: RuleUpdate,
    request: Request,
    session: SessionDep,
    principal: Admin,
    if_match: IfMatch = None,
) -> Response:
    """Change a rule; needs `If-Match` with its ETag (428 without, 412 when stale). Every
    change is kept as a new version."""
    rule = await service.update_rule(
        session, rule_id, data, if_match=if_match, actor=principal.name
    )
    _routing(request)
    return _rule_response(service.rule_read(rule))


@rules.delete(
    "/rules/{rule_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 412, 428),
)
async def delete_rule(
    rule_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Admin,
    if_match: IfMatch = None,
) -> Response:
    """Delete a rule; needs `If-Match`. Its history stays readable."""
    await service.delete_rule(session, rule_id, if_match=if_match, actor=principal.name)
    _routing(request)
    return Response(status_code=204)


@rules.get(
    "/rules/{rule_id}/versions",
    response_model=Page[RuleVersionRead],
    responses=problem_responses(401, 403, 404),
)
async def list_rule_versions(
    rule_id: uuid.UUID, session: SessionDep, _: Admin
) -> Page[RuleVersionRead]:
    """Every version of a rule, newest first: the whole rule, who changed it and when."""
    rows = await service.rule_versions(session, rule_id)
    return Page(
        items=[RuleVersionRead.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=None,
    )


@rules.post("/evaluate", response_model=EvaluateOut, responses=problem_responses(401, 403, 422))
async def evaluate(
    payload: EvaluateIn, request: Request, database: DatabaseDep, _: Admin
) -> EvaluateOut:
    """Try the rules in force on one feedback body (as for `POST /v1/feedback`): which rule
    and team would win, and for each rule tried whether it held and which condition failed.
    Stores nothing."""
    row = derive(payload, request.app.state.settings, utcnow())
    cache: RoutingCache = request.app.state.routing
    async with database.raw() as conn:
        table = await cache.current(conn)
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


@rules.post("/backtest", response_model=BacktestOut, responses=problem_responses(401, 403, 422))
async def run_backtest(
    data: BacktestIn, request: Request, session: SessionDep, database: DatabaseDep, _: Admin
) -> BacktestOut:
    """Run a proposed rule table over the negative feedback submitted in [from, to), beside the
    rules in force: cases per team under each, how many items would change team, and up to 20
    of them. Changes nothing. Items are taken oldest first, for at most
    `FEEDBACK_BACKTEST_MAX_ROWS` items and `FEEDBACK_BACKTEST_MAX_SECONDS`: an answer with
    `complete: false` covers [from, stopped_at) only."""
    errors: list[FieldError] = []
    known_teams = {t.key for t in (await service.list_teams(session))}
    for i, rule in enumerate(data.rules):
        errors += service.check_rule(rule, f"rules[{i}]")
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
    cache: RoutingCache = request.app.state.routing
    async with database.raw() as conn:
        current = await cache.current(conn)
    proposed_rules = [
        {**rule.model_dump(mode="json", by_alias=True), "id": None, "version": 0}
        for _, rule in ordered
    ]
    # Compiling thousands of rules takes a second of CPU: in a thread, the event loop still
    # gets its turns (the interpreter switches threads every few milliseconds).
    proposed = await asyncio.to_thread(build_table, proposed_rules, current.default_team)
    settings = request.app.state.settings
    async with database.raw() as conn:
        result = await backtest(
            conn,
            current=current,
            proposed=proposed,
            start=data.from_,
            end=data.to,
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
