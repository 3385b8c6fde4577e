"""Escalation teams (SPEC §3, §4): a breached case goes to its team's escalation team, and on,
so the chain must end. A loop of any length is refused, naming it, however it would close: by
a new team, by a PATCH of any team on it, or by two PATCHes at once."""

from __future__ import annotations

import asyncio

import httpx

from app.core.db import BoundDatabase, Database
from tests.builders import eventually, make_team, team_body


async def make_teams(admin: httpx.AsyncClient, *keys: str) -> None:
    for key in keys:
        await make_team(admin, key)


async def escalate(admin: httpx.AsyncClient, key: str, to: str | None) -> httpx.Response:
    return await admin.patch(f"/v1/teams/{key}", json={"escalation_team": to})


async def escalations(admin: httpx.AsyncClient) -> dict[str, str | None]:
    response = await admin.get("/v1/teams")
    assert response.status_code == 200, response.text
    return {team["key"]: team["escalation_team"] for team in response.json()["items"]}


def refused_as_loop(response: httpx.Response, loop: str) -> None:
    """A 422 problem whose one error is an escalation loop, naming it (`a → b → a`)."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    [error] = problem["errors"]
    assert (error["field"], error["type"]) == ("escalation_team", "escalation_loop")
    assert loop in error["message"]
    assert loop in problem["detail"]


async def test_two_teams_escalating_to_each_other_are_refused(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "support", "accounts")
    assert (await escalate(admin, "support", "accounts")).status_code == 200
    refused_as_loop(await escalate(admin, "accounts", "support"), "accounts → support → accounts")
    assert await escalations(admin) == {"accounts": None, "support": "accounts"}


async def test_a_patch_closing_a_longer_loop_through_other_teams_is_refused(
    admin: httpx.AsyncClient,
) -> None:
    await make_teams(admin, "a", "b", "c", "d")
    for key, to in [("a", "b"), ("b", "c"), ("d", "a")]:
        assert (await escalate(admin, key, to)).status_code == 200
    refused_as_loop(await escalate(admin, "c", "a"), "c → a → b → c")
    refused_as_loop(await escalate(admin, "c", "d"), "c → d → a → b → c")
    refused_as_loop(await escalate(admin, "a", "a"), "a → a")
    assert await escalations(admin) == {"a": "b", "b": "c", "c": None, "d": "a"}


async def test_a_chain_that_ends_is_kept_and_changed(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "a", "b", "c")
    for key, to in [("a", "b"), ("b", "c"), ("a", "c"), ("b", None), ("b", "a")]:
        response = await escalate(admin, key, to)
        assert response.status_code == 200, response.text
        assert response.json()["escalation_team"] == to
    assert await escalations(admin) == {"a": "c", "b": "a", "c": None}


async def test_a_new_team_may_not_escalate_to_itself_nor_into_a_loop(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    refused_as_loop(
        await admin.post("/v1/teams", json=team_body("solo", escalation_team="solo")),
        "solo → solo",
    )
    await make_teams(admin, "a", "b")
    # A loop stored before loops were refused: a new team is not let into it.
    async with database.raw() as conn:
        await conn.execute("UPDATE team SET escalation_team = 'b' WHERE key = 'a'")
        await conn.execute("UPDATE team SET escalation_team = 'a' WHERE key = 'b'")
    refused_as_loop(
        await admin.post("/v1/teams", json=team_body("c", escalation_team="a")), "a → b → a"
    )
    assert (await admin.get("/v1/teams/c")).status_code == 404
    assert (await admin.get("/v1/teams/solo")).status_code == 404
    # An admin undoes it by pointing one of its teams elsewhere.
    await make_teams(admin, "spare")
    assert (await escalate(admin, "b", "spare")).status_code == 200
    created = await admin.post("/v1/teams", json=team_body("c", escalation_team="a"))
    assert created.status_code == 201, created.text


async def _waiting(database: Database, count: int) -> bool:
    """Whether `count` backends of the test's database wait for a lock."""
    async with database.raw() as watcher:
        waiting: int = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    return waiting >= count


async def test_two_patches_closing_a_loop_at_once_do_not_both_succeed(
    committed_client: httpx.AsyncClient, committed: Database
) -> None:
    """a → b stands; one admin sets c → a while another sets b → c: each alone is no loop.
    A change ends by bumping the routing generation, whose row the test holds: the first
    change waits there, after its check and before it commits, when the second begins."""
    await make_teams(committed_client, "a", "b", "c")
    assert (await escalate(committed_client, "a", "b")).status_code == 200
    async with committed.raw() as holder, holder.transaction():
        await holder.execute("SELECT value FROM routing_generation WHERE id = 1 FOR UPDATE")
        first = asyncio.create_task(escalate(committed_client, "c", "a"))
        await eventually(lambda: _waiting(committed, 1))
        second = asyncio.create_task(escalate(committed_client, "b", "c"))
        await eventually(lambda: _waiting(committed, 2))
    assert (await first).status_code == 200
    refused_as_loop(await second, "b → c → a → b")
    assert await escalations(committed_client) == {"a": "b", "b": None, "c": "a"}
