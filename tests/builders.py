"""Small builders for test data."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from app.core.api_keys import ApiKeyCreate, create_api_key
from app.core.config import Settings
from app.core.db import Database

T = TypeVar("T")


async def make_api_key(database: Database, *scopes: str, **options: Any) -> str:
    """Create an API key with these scopes; return the key itself."""
    data = ApiKeyCreate.model_validate(
        {"name": options.pop("name", "test"), "scopes": list(scopes), **options}
    )
    async with database.sessionmaker() as session:
        _, key = await create_api_key(session, data)
        await session.commit()
    return key


def feedback_body(**overrides: Any) -> dict[str, Any]:
    """A valid feedback body: a detractor NPS with a comment, from a known customer."""
    body: dict[str, Any] = {
        "source": "checkout-web",
        "channel": "web",
        "customer": {"external_id": "cus_42", "email": "ana@example.com", "locale": "pt-BR"},
        "metric": "nps",
        "score": 3,
        "comment": "The delivery was late and nobody answered",
        "tags": ["delivery"],
        "touchpoint": "order-tracking",
        "journey_stage": "delivery",
        "attributes": {"plan": "pro", "order_id": "A-1009"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def eventually(check: Callable[[], Awaitable[T]], within: float = 15) -> T:
    """Poll `check()` until it answers something true, failing after `within` seconds.

    For what another task or process does to the database: there is nothing to wait on but
    the data itself.
    """
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.05)
    return result


async def send_feedback(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """Post feedback (feedback_body with overrides); answer the stored item."""
    response = await client.post("/v1/feedback", json=feedback_body(**overrides))
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def read_case(client: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/cases/{case_id}")
    assert response.status_code == 200, response.text
    case: dict[str, Any] = response.json()
    return case


async def open_case(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """Send negative feedback; answer the case it opened or joined, as GET shows it."""
    item = await send_feedback(client, **overrides)
    assert item["case"] is not None, item
    return await read_case(client, item["case"]["id"])


def team_body(key: str, **overrides: Any) -> dict[str, Any]:
    """The body that creates a team: an hour to respond, a day to resolve."""
    body = {
        "key": key,
        "name": key.title(),
        "first_response_minutes": 60,
        "resolution_minutes": 1440,
    }
    body.update(overrides)
    return body


async def make_team(admin: httpx.AsyncClient, key: str, **overrides: Any) -> None:
    """An admin client creates a team (team_body with overrides)."""
    response = await admin.post("/v1/teams", json=team_body(key, **overrides))
    assert response.status_code == 201, response.text


def webhooks_on_loopback(settings: Settings) -> Settings:
    """These settings, letting webhook endpoints on 127.0.0.1 over http be registered."""
    return settings.model_copy(
        update={"webhook_allow_http": True, "webhook_allowed_networks": "127.0.0.0/8"}
    )


def rule_body(name: str, team: str, conditions: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The body that creates a routing rule: these conditions route to this team."""
    body = {"name": name, "priority": 100, "conditions": conditions, "team": team}
    body.update(overrides)
    return body


async def make_rule(
    admin: httpx.AsyncClient, team: str, conditions: dict[str, Any], **overrides: Any
) -> dict[str, Any]:
    """An admin client creates a rule routing to `team` (named "to <team>" unless told)."""
    body = rule_body(overrides.pop("name", f"to {team}"), team, conditions, **overrides)
    response = await admin.post("/v1/routing/rules", json=body)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


async def register_endpoint(
    client: httpx.AsyncClient, *event_types: str, url: str, **extra: Any
) -> dict[str, Any]:
    """An admin client registers a webhook endpoint for these event types."""
    response = await client.post(
        "/v1/webhooks/endpoints", json={"url": url, "event_types": list(event_types), **extra}
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def change_case(
    client: httpx.AsyncClient, case: dict[str, Any], action: str = "", body: Any = None
) -> httpx.Response:
    """PATCH the case (action "") or POST one of its actions, with its current If-Match."""
    url = f"/v1/cases/{case['id']}"
    headers = {"If-Match": f'"{case["version"]}"'}
    if not action:
        return await client.patch(url, json=body, headers=headers)
    return await client.post(f"{url}/{action}", json=body, headers=headers)


async def acted(
    client: httpx.AsyncClient, case: dict[str, Any], action: str, body: Any = None
) -> dict[str, Any]:
    """`change_case`, which must succeed: what it answers (the case, or what it made)."""
    response = await change_case(client, case, action, body)
    assert response.is_success, response.text
    result: dict[str, Any] = response.json()
    return result


async def case_events(client: httpx.AsyncClient, case_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/cases/{case_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["items"]
    return events


def refused_fields(response: httpx.Response) -> list[str]:
    """The fields a 422 problem names."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"]]
