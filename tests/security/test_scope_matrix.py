"""Who may call what: every operation of the OpenAPI document × every scope × no key.

The document is read from the app, so a new route is in the matrix the day it is added, and
this test fails until SCOPES says which scope it needs: a route written without a scope check
(or with the wrong one) cannot go unnoticed. A key that lacks the scope gets a 403, no key a
401; a key that holds it gets past the check (any other answer: its placeholder ids find
nothing, its empty body is not valid). The publishable key of a web page passes only where
feedback is added.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.core.db import BoundDatabase
from app.main import create_app
from tests.builders import auth, make_api_key

PUBLIC = None
# The scope each operation needs (admin holds every scope). PUBLIC: no key at all.
SCOPES: dict[str, str | None] = {
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    # The metrics page names teams and routes: not for a stranger.
    "metrics": "reports:read",
    # The follow-up page takes no key (its token allows one answer); the widget is a public file.
    "followup_page": PUBLIC,
    "answer_followup": PUBLIC,
    "widget": PUBLIC,
    "create_feedback": "feedback:write",
    "create_feedback_batch": "feedback:write",
    "put_feedback": "feedback:write",
    "get_feedback": "feedback:read",
    "list_feedback": "feedback:read",
    "create_identity_secret": "admin",
    "list_keys": "admin",
    "create_key": "admin",
    "revoke_key": "admin",
    "list_teams": "cases:read",
    "get_team": "cases:read",
    "create_team": "admin",
    "update_team": "admin",
    "delete_team": "admin",
    "list_rules": "admin",
    "create_rule": "admin",
    "get_rule": "admin",
    "update_rule": "admin",
    "delete_rule": "admin",
    "list_rule_versions": "admin",
    "evaluate": "admin",
    "run_backtest": "admin",
    "list_cases": "cases:read",
    "get_case": "cases:read",
    "list_case_events": "cases:read",
    "get_customer": "cases:read",
    "erase_customer_data": "admin",
    "export_customer_data": "admin",
    "detach_customer_identity": "admin",
    "get_scores": "reports:read",
    "list_connectors": "admin",
    "create_connector": "admin",
    "get_connector": "admin",
    "update_connector": "admin",
    "delete_connector": "admin",
    "replay_connector": "admin",
    "list_connector_responses": "admin",
    # A survey tool's delivery: checked by the tool's own signature, not by our keys, so every
    # key (and none) gets past the key check and meets the signature check (a 404 here: no
    # connector for the placeholder source).
    "receive_delivery": PUBLIC,
    # A tool checking its webhook's URL before it posts: 200 for any tool's URL, saying nothing.
    "check_delivery_url": PUBLIC,
    "get_scores_chart": "reports:read",
    "get_closed_loop": "reports:read",
    "update_case": "cases:write",
    "resolve_case": "cases:write",
    "reopen_case": "cases:write",
    "close_case": "cases:write",
    "add_note": "cases:write",
    "list_endpoints": "admin",
    "create_endpoint": "admin",
    "get_endpoint": "admin",
    "update_endpoint": "admin",
    "delete_endpoint": "admin",
    "rotate_endpoint_secret": "admin",
    "recover_endpoint": "admin",
    "list_endpoint_messages": "admin",
    "get_message": "admin",
    "retry_message": "admin",
}
# Where a web page's key may go: adding feedback, and nothing else (not even PUT).
PUBLISHABLE_MAY = {"create_feedback", "create_feedback_batch"}
# Where the refusal comes after the body is read (a publishable key may not replace feedback,
# whatever it sends), a body that is valid, so the refusal is what answers.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "put_feedback": {"channel": "web", "metric": "nps", "score": 9},
}
ALL_SCOPES = ["feedback:write", "feedback:read", "cases:read", "cases:write", "reports:read"]
SHOP = "https://shop.example.com"


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation in the app's OpenAPI document."""
    app = create_app(Settings(database_url="postgresql+asyncpg://unused/unused"))
    document = app.openapi()
    return [
        (method.upper(), path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


OPERATIONS = _operations()


def test_every_operation_of_the_contract_says_which_scope_it_needs() -> None:
    ids = {operation["operationId"] for _, _, operation in OPERATIONS}
    assert ids - SCOPES.keys() == set(), "a new route: add it to SCOPES with its scope"
    assert SCOPES.keys() - ids == set(), "a route is gone: remove it from SCOPES"


def _request(path: str, operation: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The path with placeholder values, and an empty body where the operation takes one."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            schema = parameter.get("schema", {})
            value = str(uuid.uuid4()) if schema.get("format") == "uuid" else "placeholder"
            path = path.replace("{" + parameter["name"] + "}", value)
    if "requestBody" not in operation:
        return path, None
    return path, VALID_BODIES.get(operation["operationId"], {})


@pytest.fixture
async def keys(database: BoundDatabase) -> dict[str, dict[str, str]]:
    """A key for each scope alone, admin, a web page's publishable key, and none."""
    held = {scope: auth(await make_api_key(database, scope)) for scope in [*ALL_SCOPES, "admin"]}
    publishable = await make_api_key(database, "feedback:write", allowed_origins=[SHOP])
    held["publishable"] = {**auth(publishable), "Origin": SHOP}
    held["app"] = auth(await make_api_key(database, "feedback:write", publishable=True))
    held["none"] = {}
    return held


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    OPERATIONS,
    ids=[operation["operationId"] for _, _, operation in OPERATIONS],
)
async def test_each_key_gets_past_the_scope_check_only_where_it_may(
    app: FastAPI,
    keys: dict[str, dict[str, str]],
    method: str,
    path: str,
    operation: dict[str, Any],
) -> None:
    needed = SCOPES[operation["operationId"]]
    url, body = _request(path, operation)
    seen = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for name, headers in keys.items():
            response = await client.request(method, url, json=body, headers=headers)
            seen[name] = response.status_code

    expected: dict[str, int | str] = {}
    for name in keys:
        if needed is PUBLIC:
            may = True
        elif name == "none":
            may = False
        elif name in ("publishable", "app"):
            may = operation["operationId"] in PUBLISHABLE_MAY
        else:
            may = name in (needed, "admin")
        if may:
            expected[name] = "through"
        else:
            expected[name] = 401 if name == "none" else 403
    observed: dict[str, int | str] = {
        name: "through" if status not in (401, 403) else status for name, status in seen.items()
    }
    assert observed == expected, seen
