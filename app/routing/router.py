"""HTTP for teams and routing rules. (Trying rules on feedback, evaluate and backtest, is in
app/feedback/router.py, where feedback becomes what rules run on.)"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from app.core.auth import Admin, CasesReader
from app.core.db import SessionDep
from app.core.etag import etag
from app.core.routes import answers, creates, empties
from app.core.schemas import Page
from app.routing import schemas, service
from app.routing.evaluation import RoutingCache

teams = APIRouter(prefix="/v1/teams", tags=["teams"])
rules = APIRouter(prefix="/v1/routing", tags=["routing"])

IfMatch = Annotated[str | None, Header(description="The rule's ETag, from your last read of it.")]


def _routing(request: Request) -> RoutingCache:
    cache: RoutingCache = request.app.state.routing
    cache.invalidate()
    return cache


@teams.post("", **creates(schemas.TeamRead, 409, 422))
async def create_team(
    data: schemas.TeamCreate, request: Request, session: SessionDep, _: Admin
) -> schemas.TeamRead:
    """Create a team. The first team is the default until another is marked `is_default`."""
    team = await service.create_team(session, data)
    _routing(request)
    return schemas.TeamRead.model_validate(team)


@teams.get("", **answers(Page[schemas.TeamRead]))
async def list_teams(session: SessionDep, _: CasesReader) -> Page[schemas.TeamRead]:
    """Every team, by key."""
    rows = await service.list_teams(session)
    return Page(items=[schemas.TeamRead.model_validate(t) for t in rows], next_cursor=None)


@teams.get("/{key}", **answers(schemas.TeamRead, 404))
async def get_team(key: str, session: SessionDep, _: CasesReader) -> schemas.TeamRead:
    """One team."""
    return schemas.TeamRead.model_validate(await service.get_team(session, key))


@teams.patch("/{key}", **answers(schemas.TeamRead, 404, 422))
async def update_team(
    key: str, data: schemas.TeamUpdate, request: Request, session: SessionDep, _: Admin
) -> schemas.TeamRead:
    """Change a team's name, SLA targets or escalation team, or make it the default."""
    team = await service.update_team(session, key, data)
    _routing(request)
    return schemas.TeamRead.model_validate(team)


@teams.delete("/{key}", **empties(404, 409))
async def delete_team(key: str, request: Request, session: SessionDep, _: Admin) -> Response:
    """Delete a team no rule, case or other team uses (else 409, saying what uses it)."""
    await service.delete_team(session, key, users_elsewhere=request.app.state.team_users)
    _routing(request)
    return Response(status_code=204)


def _rule_response(rule: schemas.RuleRead, status_code: int = 200) -> Response:
    return Response(
        rule.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers={"ETag": etag(rule.version)},
    )


@rules.post("/rules", **creates(schemas.RuleRead, 422))
async def create_rule(
    data: schemas.RuleCreate, request: Request, session: SessionDep, principal: Admin
) -> Response:
    """Add a rule to the table. Its conditions are checked now: a bad field, operator or value
    is a 422 whose `errors` point at the condition (`conditions.all[2].any[0].op`)."""
    rule = await service.create_rule(session, data, actor=principal.name)
    _routing(request)
    return _rule_response(service.rule_read(rule), status.HTTP_201_CREATED)


@rules.get("/rules", **answers(Page[schemas.RuleRead]))
async def list_rules(session: SessionDep, _: Admin) -> Page[schemas.RuleRead]:
    """The rule table in evaluation order: priority, then creation. Disabled rules keep their
    place but are skipped."""
    rows = await service.list_rules(session)
    return Page(items=[service.rule_read(r) for r in rows], next_cursor=None)


@rules.get("/rules/{rule_id}", **answers(schemas.RuleRead, 404))
async def get_rule(rule_id: uuid.UUID, session: SessionDep, _: Admin) -> Response:
    """One rule, with its version as the ETag."""
    return _rule_response(service.rule_read(await service.get_rule(session, rule_id)))


@rules.patch("/rules/{rule_id}", **answers(schemas.RuleRead, 404, 412, 422, 428))
async def update_rule(
    rule_id: uuid.UUID,
    data: schemas.RuleUpdate,
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


@rules.delete("/rules/{rule_id}", **empties(404, 412, 428))
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


@rules.get("/rules/{rule_id}/versions", **answers(Page[schemas.RuleVersionRead], 404))
async def list_rule_versions(
    rule_id: uuid.UUID, session: SessionDep, _: Admin
) -> Page[schemas.RuleVersionRead]:
    """Every version of a rule, newest first: the whole rule, who changed it and when."""
    rows = await service.rule_versions(session, rule_id)
    return Page(
        items=[schemas.RuleVersionRead.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=None,
    )
