"""Every status a route can answer is in the contract (issue 9, point 6).

Some answers come from what all routes share, not from the route's own code: the body guard
(413, 415 on every POST, PUT and PATCH), the JSON parser (400 where there is a body), the
input guard (422 anywhere), the rate limit (429 wherever a key is needed), If-Match (412, 428).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    document = create_app(Settings(database_url="postgresql+asyncpg://unused/unused")).openapi()
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


OPERATIONS = _operations()


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    OPERATIONS,
    ids=[operation["operationId"] for _, _, operation in OPERATIONS],
)
def test_the_statuses_every_route_shares_are_listed(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    listed = set(operation["responses"])
    expected = {"422"}
    if method in ("post", "put", "patch"):
        expected |= {"413", "415"}
    if "requestBody" in operation:
        expected.add("400")
    if operation["operationId"] == "receive_delivery":
        expected.add("401")  # the tool's signature, not one of our keys: nothing to forbid
    elif operation["operationId"] == "check_delivery_url":
        pass  # a tool's HEAD before it posts: no key, no body, only its path to refuse
    elif path.startswith("/v1/"):
        expected |= {"401", "403", "429"}
    headers = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
    if "if-match" in headers:
        expected |= {"412", "428"}
    assert expected <= listed, f"{method} {path} does not list {sorted(expected - listed)}"


async def test_a_post_without_a_body_still_answers_413_and_415_as_listed(
    admin: httpx.AsyncClient,
) -> None:
    case_id = "01a24e2c-3dfa-7d64-8314-4fcf161294bc"
    url = f"/v1/cases/{case_id}/close"
    typed = await admin.post(url, content=b"x", headers={"Content-Type": "text/plain"})
    assert typed.status_code == 415
    large = await admin.post(
        url, content=b"{}" + b" " * 70_000, headers={"Content-Type": "application/json"}
    )
    assert large.status_code == 413
