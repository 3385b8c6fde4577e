"""Helpers of the webhook tests: registering, acting on cases, reading the outbox."""

from __future__ import annotations

import base64
import functools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from app.core.config import Settings
from app.core.db import BoundDatabase, Database
from app.main import create_app
from tests.builders import (
    auth,
    make_api_key,
    register_endpoint,
)

ENDPOINTS = "/v1/webhooks/endpoints"
# Reachable under this module's settings (the allowlist has 127.0.0.0/8); nothing is sent to it
# in the rolled-back tests, where no dispatcher runs.
HOOK = "http://127.0.0.1:9/hooks"
# A public address: acceptable under the default guard, and checked without DNS.
PUBLIC_HOOK = "https://93.184.216.34/hooks"
UNKNOWN_ID = "00000000-0000-7000-8000-000000000000"
NOTICE = {"code": "refunded", "customer_message": "We refunded your order."}
NO_NOTICE = {"code": "fixed", "notify_customer": False}
ENDPOINT_FIELDS = {
    "id",
    "url",
    "event_types",
    "sources",
    "description",
    "enabled",
    "disabled_reason",
    "last_success_at",
    "failing_since",
    "created_at",
    "updated_at",
}
CASE_BLOCK_FIELDS = {
    "id",
    "number",
    "status",
    "priority",
    "team",
    "assignee",
    "customer",
    "feedback",
    "version",
    "created_at",
    "updated_at",
}


@asynccontextmanager
async def admin_client(
    settings: Settings, database: Database, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client on another app over `database`, with these settings changed."""
    key = await make_api_key(database, "admin", name="second-admin")
    app = create_app(settings.model_copy(update=changes), database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=auth(key)
    ) as client:
        yield client


# Endpoints registered here post to HOOK unless told otherwise.
register = functools.partial(register_endpoint, url=HOOK)


async def timeline(client: httpx.AsyncClient, case_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/cases/{case_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["items"]
    return events


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def is_secret(value: str) -> bool:
    """`whsec_` + the base64 of exactly 32 bytes."""
    prefix, _, encoded = value.partition("_")
    return prefix == "whsec" and len(base64.b64decode(encoded, validate=True)) == 32


def refused_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"]]


@dataclass(frozen=True)
class Message:
    endpoint_id: str
    event_type: str
    payload: dict[str, Any]
    case_id: str | None
    status: str

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.payload["data"]
        return data


@dataclass
class Outbox:
    """The `outbox_message` table, read in the test's transaction."""

    database: BoundDatabase
    seen: set[uuid.UUID] = field(default_factory=set)

    async def all(self) -> list[Message]:
        return [m for _, m in await self._rows()]

    async def new(self) -> list[Message]:
        """The messages written since the last call."""
        fresh = [(i, m) for i, m in await self._rows() if i not in self.seen]
        self.seen.update(i for i, _ in fresh)
        return [m for _, m in fresh]

    async def _rows(self) -> list[tuple[uuid.UUID, Message]]:
        async with self.database.raw() as conn:
            rows = await conn.fetch(
                "SELECT id, endpoint_id, event_type, body, case_id, status FROM outbox_message "
                "ORDER BY created_at, event_type"
            )
        return [
            (
                uuid.UUID(str(r["id"])),
                Message(
                    endpoint_id=str(r["endpoint_id"]),
                    event_type=r["event_type"],
                    payload=json.loads(r["body"]),
                    case_id=None if r["case_id"] is None else str(r["case_id"]),
                    status=r["status"],
                ),
            )
            for r in rows
        ]


def delivered(messages: list[Message], **endpoints: dict[str, Any]) -> list[tuple[str, str]]:
    """(endpoint name, event type) of each message, sorted; names as given by the caller."""
    names = {e["id"]: name for name, e in endpoints.items()}
    return sorted((names.get(m.endpoint_id, "?"), m.event_type) for m in messages)


def expected_block(case: dict[str, Any]) -> dict[str, Any]:
    """The `case` block of a case event, as the case reads through the API."""
    opening = [f for f in reversed(case["feedback"]) if f["kind"] != "followup"]
    return {
        "id": case["id"],
        "number": case["number"],
        "status": case["status"],
        "priority": case["priority"],
        "team": case["team"],
        "assignee": case["assignee"],
        "customer": case["customer"],
        "feedback": [
            {"id": f["id"], "source": f["source"], "external_id": f["external_id"]} for f in opening
        ],
        # The receiver's order: messages of one case may arrive in any order.
        "version": case["version"],
    }


def assert_block_shows(message: Message, case: dict[str, Any]) -> None:
    block = message.data["case"]
    assert set(block) == CASE_BLOCK_FIELDS
    assert {k: v for k, v in block.items() if not k.endswith("_at")} == expected_block(case)
    assert at(block["created_at"]) == at(case["created_at"])
    assert at(block["updated_at"]) == at(case["updated_at"])
