"""The web room's tests: the follow-up page and the widget, through HTTP and in a real browser.

Resolving a case with a notice needs a webhook endpoint that takes case.resolved (else nobody
is given the link, and the case keeps no token); these tests register one on 127.0.0.1, and
read the token from the message the outbox holds for it.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database
from tests.builders import change_case, open_case, register_endpoint

HOOK = "http://127.0.0.1:9/hook"
NOTICE = {"code": "refunded", "customer_message": "We refunded your order."}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_allow_http": True, "webhook_allowed_networks": "127.0.0.0/8"}
    )


async def take_case_resolved(client: httpx.AsyncClient) -> None:
    """Register an endpoint that takes case.resolved, so resolutions hand out links."""
    await register_endpoint(client, "case.resolved", url=HOOK)


async def resolved_link(
    client: httpx.AsyncClient, database: Database, **overrides: Any
) -> tuple[dict[str, Any], str]:
    """A case opened by negative feedback (feedback_body with overrides) and resolved with a
    notice, and the follow-up token its case.resolved message carries. The customer speaks
    English unless told otherwise."""
    overrides.setdefault("customer", {"external_id": "cus_42", "locale": "en"})
    case = await open_case(client, **overrides)
    response = await change_case(client, case, "resolve", NOTICE)
    assert response.status_code == 200, response.text
    async with database.raw() as conn:
        token = await conn.fetchval(
            "SELECT convert_from(body, 'UTF8')::jsonb -> 'data' -> 'followup' ->> 'token' "
            "FROM outbox_message WHERE event_type = 'case.resolved' AND case_id = $1 "
            "ORDER BY created_at DESC LIMIT 1",
            uuid.UUID(case["id"]),
        )
    assert isinstance(token, str), "no case.resolved message: is an endpoint registered?"
    return response.json(), token
