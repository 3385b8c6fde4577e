"""Keeping teams and routing rules: validation, versions, and the generation every change bumps."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import apply_patch, get_or_404, utcnow
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.etag import check_if_match
from app.routing.conditions import LIST, field_kind
from app.routing.models import RoutingGeneration, RoutingRule, RoutingRuleVersion, Team
from app.routing.schemas import (
    RuleCreate,
    RuleRead,
    RuleUpdate,
    TeamCreate,
    TeamUpdate,
)
from app.routing.validation import validate


async def bump_generation(session: AsyncSession) -> None:
    """Tell every process that the routing table changed."""
    await session.execute(
        update(RoutingGeneration)
        .where(RoutingGeneration.id == 1)
        .values(value=RoutingGeneration.value + 1)
    )


# -- teams --------------------------------------------------------------------------------


async def get_team(session: AsyncSession, key: str, *, for_update: bool = False) -> Team:
    missing = NotFound(f"No team has the key `{key}`.", code="team_not_found")
    return await get_or_404(session, Team, key, missing, with_for_update=for_update)


async def list_teams(session: AsyncSession) -> list[Team]:
    return list(await session.scalars(select(Team).order_by(Team.key)))


async def _check_team_exists(session: AsyncSession, key: str, field: str) -> None:
    if await session.get(Team, key) is None:
        raise ValidationFailed(
            "One or more fields are not valid.",
            errors=[FieldError(field=field, message=f"no team `{key}`", type="unknown_team")],
        )


async def _make_default(session: AsyncSession, team: Team) -> None:
    await session.execute(
        update(Team).where(Team.is_default, Team.key != team.key).values(is_default=False)
    )
    await session.flush()
    team.is_default = True


def team_sla_sql(key: str) -> str:
    """SQL: the team whose key is the SQL expression `key`, with its SLA (key,
    first_response_minutes, resolution_minutes); no row when there is no such team."""
    return f"SELECT key, first_response_minutes, resolution_minutes FROM team WHERE key = {key}"


async def create_team(session: AsyncSession, data: TeamCreate) -> Team:
    if data.escalation_team is not None:
        await _lock_escalations(session)
    if await session.get(Team, data.key) is not None:
        raise Conflict(f"A team with the key `{data.key}` exists.", code="team_exists")
    if data.escalation_team is not None:
        await _check_escalation(session, data.key, data.escalation_team)
    has_default = await session.scalar(select(func.count()).where(Team.is_default)) or 0
    team = Team(
        key=data.key,
        name=data.name,
        first_response_minutes=data.first_response_minutes,
        resolution_minutes=data.resolution_minutes,
        escalation_team=data.escalation_team,
        is_default=False,
    )
    if data.is_default and has_default:
        await session.execute(update(Team).where(Team.is_default).values(is_default=False))
        await session.flush()
    team.is_default = data.is_default or not has_default
    session.add(team)
    await session.flush()
    await bump_generation(session)
    await session.flush()
    return team


# pg_advisory_xact_lock's key for changes of escalation teams: the bytes of "escalate".
_ESCALATION_LOCK = 0x657363616C617465


async def _lock_escalations(session: AsyncSession) -> None:
    """Changes of escalation teams one at a time, each checked after the last one committed:
    two PATCHes closing a loop from its two ends at once would each find no loop on its own.
    Taken before any team row is locked (a row lock first could deadlock with a change
    waiting here), and only by a change that sets an escalation team: nothing else waits."""
    await session.execute(select(func.pg_advisory_xact_lock(_ESCALATION_LOCK)))


async def _check_escalation(session: AsyncSession, key: str, escalation_team: str) -> None:
    """A breached case goes to its team's escalation team, and from there, if it breaches
    again, to that team's: the chain from `key` must end, or a case would come back to the
    team it breached with. Refuses a loop of any length (naming it), and an unknown team."""
    chain = [key, escalation_team]
    if escalation_team != key:
        await _check_team_exists(session, escalation_team, "escalation_team")
        rows = await session.execute(
            select(Team.key, Team.escalation_team).where(
                Team.escalation_team.is_not(None), Team.key != key
            )
        )
        escalates: dict[str, str] = {row.key: row.escalation_team for row in rows}
        while chain[-1] in escalates and chain[-1] not in chain[:-1]:
            chain.append(escalates[chain[-1]])
    if chain[-1] in chain[:-1]:
        loop = " → ".join(chain[chain.index(chain[-1]) :])
        raise ValidationFailed(
            f"Escalation teams may not form a loop: {loop}.",
            errors=[
                FieldError(
                    field="escalation_team",
                    message=f"the escalation teams would loop: {loop}",
                    type="escalation_loop",
                )
            ],
        )


async def update_team(session: AsyncSession, key: str, data: TeamUpdate) -> Team:
    if data.escalation_team is not None:
        await _lock_escalations(session)
    team = await get_team(session, key, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    if "is_default" in changes:
        if changes.pop("is_default") is False:
            if team.is_default:
                raise ValidationFailed(
                    "One or more fields are not valid.",
                    errors=[
                        FieldError(
                            field="is_default",
                            message="mark another team as the default instead",
                            type="default_required",
                        )
                    ],
                )
        elif not team.is_default:
            await _make_default(session, team)
    if changes.get("escalation_team") is not None:
        await _check_escalation(session, key, changes["escalation_team"])
    apply_patch(team, changes, clears=("escalation_team",))
    await bump_generation(session)
    await session.flush()
    return team


# A room above routing that refers to teams (cases) says why a team is in use through one of
# these, handed to delete_team by the app (create_app): routing imports none of those rooms.
TeamUsers = Callable[[AsyncSession, str], Awaitable[list[str]]]


async def team_users(
    session: AsyncSession, key: str, *, users_elsewhere: Sequence[TeamUsers]
) -> list[str]:
    """Why a team cannot be deleted: the rules and teams that refer to it, then what each room
    in `users_elsewhere` says."""
    reasons = []
    rules = await session.scalar(
        select(func.count()).select_from(RoutingRule).where(RoutingRule.team == key)
    )
    if rules:
        reasons.append(f"{rules} routing rule(s) send feedback to it")
    escalating = (await session.scalars(select(Team.key).where(Team.escalation_team == key))).all()
    if escalating:
        reasons.append(f"team(s) {', '.join(escalating)} escalate to it")
    for users in users_elsewhere:
        reasons.extend(await users(session, key))
    return reasons


async def delete_team(
    session: AsyncSession, key: str, *, users_elsewhere: Sequence[TeamUsers]
) -> None:
    team = await get_team(session, key, for_update=True)
    reasons = await team_users(session, key, users_elsewhere=users_elsewhere)
    others = await session.scalar(select(func.count()).where(Team.key != key))
    if team.is_default and others:
        reasons.append("it is the default team; mark another team as the default first")
    if reasons:
        raise Conflict(f"The team is in use: {'; '.join(reasons)}.", code="team_in_use")
    await session.delete(team)
    await bump_generation(session)
    await session.flush()


# -- rules --------------------------------------------------------------------------------


def _rule_errors(conditions: Any, assignee: Any) -> list[FieldError]:
    """Problems beyond a rule's shape: its conditions, and the field an assignee comes from."""
    errors = validate(conditions)
    if isinstance(assignee, dict):
        kind = field_kind(assignee["from"])
        if kind is None or kind == LIST:
            errors.append(
                FieldError(
                    field="assignee.from",
                    message=f"`{assignee['from']}` is not a feedback field with one value",
                    type="unknown_field",
                )
            )
    return errors


def _stored(data: RuleCreate | RuleUpdate) -> dict[str, Any]:
    """The fields given, as stored: enums as text, an assignee as a string or {"from": ...}."""
    return data.model_dump(mode="json", by_alias=True, exclude_unset=isinstance(data, RuleUpdate))


def rule_read(rule: RoutingRule) -> RuleRead:
    return RuleRead.model_validate(rule, from_attributes=True)


async def _record_version(
    session: AsyncSession, rule: RoutingRule, change: str, actor: str
) -> None:
    session.add(
        RoutingRuleVersion(
            rule_id=rule.id,
            version=rule.version,
            change=change,
            rule=rule_read(rule).model_dump(mode="json"),
            changed_by=actor,
            changed_at=rule.updated_at,
        )
    )
    await bump_generation(session)
    await session.flush()


def check_rule(data: RuleCreate, path: str = "") -> list[FieldError]:
    """Problems with a rule body beyond its shape, with paths under `path` when given."""
    stored = _stored(data)
    errors = _rule_errors(stored["conditions"], stored["assignee"])
    prefix = f"{path}." if path else ""
    return [FieldError(field=prefix + e.field, message=e.message, type=e.type) for e in errors]


async def create_rule(session: AsyncSession, data: RuleCreate, *, actor: str) -> RoutingRule:
    errors = check_rule(data)
    if errors:
        raise ValidationFailed("The rule is not valid.", errors=errors)
    await _check_team_exists(session, data.team, "team")
    now = utcnow()
    rule = RoutingRule(**_stored(data), version=1, created_at=now, updated_at=now)
    session.add(rule)
    await session.flush()
    await _record_version(session, rule, "created", actor)
    return rule


async def get_rule(
    session: AsyncSession, rule_id: uuid.UUID, *, for_update: bool = False
) -> RoutingRule:
    missing = NotFound("No routing rule has this id.", code="rule_not_found")
    return await get_or_404(session, RoutingRule, rule_id, missing, with_for_update=for_update)


async def list_rules(session: AsyncSession) -> list[RoutingRule]:
    """Every rule, in evaluation order (disabled ones too: they keep their place)."""
    rows = await session.scalars(
        select(RoutingRule).order_by(RoutingRule.priority, RoutingRule.created_at, RoutingRule.id)
    )
    return list(rows)


async def update_rule(
    session: AsyncSession,
    rule_id: uuid.UUID,
    data: RuleUpdate,
    *,
    if_match: str | None,
    actor: str,
) -> RoutingRule:
    rule = await get_rule(session, rule_id, for_update=True)
    check_if_match(if_match, rule.version)
    changes = _stored(data)
    for name, value in list(changes.items()):
        if value is None and name != "assignee":
            del changes[name]  # null leaves a field as it is; for the assignee it clears it
    errors = _rule_errors(
        changes.get("conditions", rule.conditions), changes.get("assignee", rule.assignee)
    )
    if errors:
        raise ValidationFailed("The rule is not valid.", errors=errors)
    if "team" in changes:
        await _check_team_exists(session, changes["team"], "team")
    apply_patch(rule, changes, clears=("assignee",))
    rule.version += 1
    await session.flush()
    await _record_version(session, rule, "updated", actor)
    return rule


async def delete_rule(
    session: AsyncSession, rule_id: uuid.UUID, *, if_match: str | None, actor: str
) -> None:
    rule = await get_rule(session, rule_id, for_update=True)
    check_if_match(if_match, rule.version)
    rule.version += 1
    rule.updated_at = utcnow()
    await _record_version(session, rule, "deleted", actor)
    await session.delete(rule)
    await session.flush()


async def rule_versions(session: AsyncSession, rule_id: uuid.UUID) -> list[RoutingRuleVersion]:
    """A rule's history, newest first; kept after the rule is deleted."""
    rows = list(
        await session.scalars(
            select(RoutingRuleVersion)
            .where(RoutingRuleVersion.rule_id == rule_id)
            .order_by(RoutingRuleVersion.version.desc())
        )
    )
    if not rows:
        raise NotFound("No routing rule has this id.", code="rule_not_found")
    return rows
