"""A rule's assignee is what was written, nothing more (issue 9, points 6 and 8).

A rule without an assignee leaves its cases unassigned (once, the literal "null" was assigned);
a literal assignee is taken as written even when it looks like JSON (once, a proposed rule whose
assignee began with `{` or `"` was parsed as JSON and answered a 500).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.builders import open_case

REFUND = {"field": "comment", "op": "contains_any", "value": ["refund"]}


@pytest.fixture
async def billing(admin: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await admin.post(
        "/v1/teams",
        json={"key": "billing", "name": "Billing", "first_response_minutes": 60,
              "resolution_minutes": 1440},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return admin


async def rule(admin: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {"name": "refunds", "priority": 10, "conditions": REFUND, "team": "billing"}
    response = await admin.post("/v1/routing/rules", json={**body, **overrides})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_rule_without_an_assignee_leaves_the_case_unassigned(
    billing: httpx.AsyncClient,
) -> None:
    await rule(billing)
    case = await open_case(billing, comment="I want a refund")
    assert case["team"] == "billing"
    assert case["assignee"] is None


async def test_an_assignee_cleared_with_null_leaves_the_next_case_unassigned(
    billing: httpx.AsyncClient,
) -> None:
    created = await rule(billing, assignee="maria")
    response = await billing.patch(
        f"/v1/routing/rules/{created['id']}",
        json={"assignee": None},
        headers={"If-Match": f'"{created["version"]}"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["assignee"] is None
    case = await open_case(billing, comment="I want a refund")
    assert case["team"] == "billing"
    assert case["assignee"] is None


@pytest.mark.parametrize(
    "literal", ["null", '{"from": "attributes.owner"}', "{maria", '"maria"', "[1]", "42"]
)
async def test_a_literal_assignee_that_looks_like_json_is_assigned_as_written(
    billing: httpx.AsyncClient, literal: str
) -> None:
    created = await rule(billing, assignee=literal)
    assert created["assignee"] == literal
    case = await open_case(billing, comment="I want a refund", attributes={"owner": "someone else"})
    assert case["assignee"] == literal


@pytest.mark.parametrize("literal", ["{maria", '"maria', "null"])
async def test_a_backtest_takes_a_proposed_literal_assignee_as_written(
    billing: httpx.AsyncClient, literal: str
) -> None:
    now = datetime.now(UTC)
    proposed = {"name": "refunds", "priority": 10, "conditions": REFUND, "team": "billing",
                "assignee": literal}  # fmt: skip
    response = await billing.post(
        "/v1/routing/backtest",
        json={
            "from": (now - timedelta(days=1)).isoformat(),
            "to": (now + timedelta(days=1)).isoformat(),
            "rules": [proposed],
        },
    )
    assert response.status_code == 200, response.text
