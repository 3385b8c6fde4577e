"""The rule table in force: compiled once per change, shared by ingest, evaluate and backtest.

Each process keeps the compiled table and, at most every half second, reads one number (the
routing generation, bumped by every change to rules or teams) to learn whether to reload. So a
change reaches every replica within a second, and routing an item costs no query at all.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.routing.compiler import Router, compile_table
from app.routing.conditions import Check, Context, Item, compile_conditions

GENERATION_CHECK_SECONDS = 0.5
# The team negative feedback goes to while no team has been created yet (never left teamless).
FALLBACK_TEAM = ("support", "Support", 240, 2880)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: uuid.UUID | None
    version: int
    name: str
    team: str
    case_priority: str
    add_tags: tuple[str, ...]
    assignee: Any
    check: Check


@dataclass(frozen=True, slots=True)
class Decision:
    rule: CompiledRule | None
    team: str | None
    case_priority: str
    assignee: str | None
    add_tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Step:
    rule: CompiledRule
    failed_at: str | None


@dataclass(frozen=True)
class RoutingTable:
    rules: tuple[CompiledRule, ...]
    default_team: str | None
    router: Router

    def route(self, item: Item) -> Decision:
        """The first enabled rule that holds wins; none holds: the default team."""
        ctx = Context(item)
        index = self.router(ctx)
        if index >= 0:
            return _decide(self.rules[index], ctx)
        return Decision(None, self.default_team, "normal", None, ())

    def trace(self, item: Item) -> tuple[Decision, list[Step]]:
        """As `route`, with each rule tried and where it failed."""
        ctx = Context(item)
        steps = []
        for rule in self.rules:
            failed_at = rule.check(ctx)
            steps.append(Step(rule, failed_at))
            if failed_at is None:
                return _decide(rule, ctx), steps
        return Decision(None, self.default_team, "normal", None, ()), steps


def _decide(rule: CompiledRule, ctx: Context) -> Decision:
    return Decision(
        rule, rule.team, rule.case_priority, _assignee(rule.assignee, ctx), rule.add_tags
    )


def _assignee(assignee: Any, ctx: Context) -> str | None:
    if isinstance(assignee, str):
        return assignee
    if isinstance(assignee, dict):
        value = ctx.get(assignee["from"])
        if value is None or value == "" or isinstance(value, list):
            return None
        return str(value).lower() if isinstance(value, bool) else str(value)[:200]
    return None


def _conditions(rule: Mapping[str, Any]) -> Any:
    conditions = rule["conditions"]
    return json.loads(conditions) if isinstance(conditions, str) else conditions


def compile_rule(rule: Mapping[str, Any]) -> CompiledRule:
    """A rule (as stored, or as proposed to a backtest) ready to run."""
    conditions = _conditions(rule)
    return CompiledRule(
        id=rule.get("id"),
        version=rule.get("version") or 0,
        name=rule["name"],
        team=rule["team"],
        case_priority=str(rule["case_priority"]),
        add_tags=tuple(rule.get("add_tags") or ()),
        assignee=rule.get("assignee"),
        check=compile_conditions(conditions),
    )


def build_table(rules: Iterable[Mapping[str, Any]], default_team: str | None) -> RoutingTable:
    """Enabled rules in evaluation order (the caller gives them ordered by priority, creation)."""
    enabled = [r for r in rules if r.get("enabled", True)]
    return RoutingTable(
        tuple(compile_rule(r) for r in enabled),
        default_team,
        compile_table([_conditions(r) for r in enabled]),
    )


_RULES_IN_FORCE = (
    "SELECT id, name, priority, enabled, conditions, team, case_priority, add_tags, "
    "assignee::text AS assignee, version FROM routing_rule WHERE enabled "
    "ORDER BY priority, created_at, id"
)


async def load_table(conn: asyncpg.Connection) -> RoutingTable:
    rules = await conn.fetch(_RULES_IN_FORCE)
    default_team = await conn.fetchval("SELECT key FROM team WHERE is_default")
    return build_table((_stored_rule(r) for r in rules), default_team)


def _stored_rule(row: asyncpg.Record) -> dict[str, Any]:
    """A rule row as compile_rule takes it: the assignee, read as JSON text whatever the
    connection's codecs, decoded here and only here (a literal assignee proposed to a backtest
    may look like JSON itself). A JSON null is no assignee."""
    rule = dict(row)
    if rule["assignee"] is not None:
        rule["assignee"] = json.loads(rule["assignee"])
    return rule


async def ensure_default_team(conn: asyncpg.Connection) -> str:
    """The default team, creating the fallback one when no team exists yet."""
    key, name, first_response, resolution = FALLBACK_TEAM
    status = await conn.execute(
        "INSERT INTO team (key, name, first_response_minutes, resolution_minutes, is_default, "
        "created_at, updated_at) SELECT $1, $2, $3, $4, true, now(), now() "
        "WHERE NOT EXISTS (SELECT 1 FROM team WHERE is_default) ON CONFLICT DO NOTHING",
        key,
        name,
        first_response,
        resolution,
    )
    if status.endswith(" 1"):
        await conn.execute("UPDATE routing_generation SET value = value + 1 WHERE id = 1")
    default: str = await conn.fetchval("SELECT key FROM team WHERE is_default")
    return default


@dataclass
class RoutingCache:
    """This process's compiled table, reloaded when the routing generation moves."""

    table: RoutingTable | None = None
    generation: int | None = None
    checked_at: float = 0.0
    loads: int = field(default=0)

    async def current(self, conn: asyncpg.Connection) -> RoutingTable:
        now = time.monotonic()
        if self.table is not None and now - self.checked_at < GENERATION_CHECK_SECONDS:
            return self.table
        generation = await conn.fetchval("SELECT value FROM routing_generation WHERE id = 1")
        if self.table is None or generation != self.generation:
            self.table = await load_table(conn)
            self.generation = generation
            self.loads += 1
        self.checked_at = now
        return self.table

    def invalidate(self) -> None:
        """Check the generation on next use (this process just changed something)."""
        self.checked_at = 0.0


MAX_EXAMPLES = 20
# Routing is plain Python: give the event loop back this often, so other requests go on.
YIELD_EVERY_SECONDS = 0.01


@dataclass
class Backtest:
    negative_feedback: int = 0
    current: dict[str, int] = field(default_factory=dict)
    proposed: dict[str, int] = field(default_factory=dict)
    moved: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    # Why it stopped before the end of the range ("max_rows", "max_seconds"), and the time of
    # the first item it left out.
    stopped_by: str | None = None
    stopped_at: Any = None


async def backtest(
    items: AsyncGenerator[tuple[uuid.UUID, Item]],
    *,
    current: RoutingTable,
    proposed: RoutingTable,
    max_rows: int,
    max_seconds: float,
) -> Backtest:
    """Route items (id and item, oldest submitted first) under both tables, for at most
    `max_rows` items and `max_seconds`; change nothing."""
    result = Backtest()
    started = yielded = time.monotonic()
    async with aclosing(items):
        async for feedback_id, item in items:
            now = time.monotonic()
            if result.negative_feedback >= max_rows or now - started >= max_seconds:
                result.stopped_by = (
                    "max_rows" if result.negative_feedback >= max_rows else "max_seconds"
                )
                result.stopped_at = item["submitted_at"]
                break
            if now - yielded >= YIELD_EVERY_SECONDS:
                await asyncio.sleep(0)
                yielded = time.monotonic()
            ctx_now, ctx_new = current.route(item), proposed.route(item)
            result.negative_feedback += 1
            now_team, new_team = ctx_now.team or "", ctx_new.team or ""
            result.current[now_team] = result.current.get(now_team, 0) + 1
            result.proposed[new_team] = result.proposed.get(new_team, 0) + 1
            if now_team != new_team:
                result.moved += 1
                if len(result.examples) < MAX_EXAMPLES:
                    result.examples.append(
                        {
                            "feedback_id": feedback_id,
                            "submitted_at": item["submitted_at"],
                            "source": item["source"],
                            "from_team": ctx_now.team,
                            "to_team": ctx_new.team,
                            "from_rule": ctx_now.rule.name if ctx_now.rule else None,
                            "to_rule": ctx_new.rule.name if ctx_new.rule else None,
                        }
                    )
    return result
