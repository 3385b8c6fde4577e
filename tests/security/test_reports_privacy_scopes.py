"""Who may read the reports and exercise a customer's privacy rights (SPEC §6, §7).

A stranger holds the publishable key of a web page: it may add feedback and nothing more, so
every report and every privacy route answers it 403 and shows nothing. Reports need
`reports:read`; erasure and export are an admin's.
"""

from __future__ import annotations

import httpx
import pytest

from app.core.db import BoundDatabase
from tests.builders import auth, make_api_key, send_feedback

SHOP = "https://shop.example.com"
PERIOD = {"from": "2026-11-01", "to": "2026-11-30"}
REPORTS = [
    ("GET", "/v1/reports/scores", {"metric": "nps", "group_by": "channel", **PERIOD}),
    ("GET", "/v1/reports/scores.svg", {"metric": "nps", "group_by": "channel", **PERIOD}),
    ("GET", "/v1/reports/closed-loop", {"group_by": "team", **PERIOD}),
]
PRIVACY: list[tuple[str, str, dict[str, str]]] = [
    ("DELETE", "/v1/customers/cus_42", {}),
    ("GET", "/v1/customers/cus_42/export", {}),
]


@pytest.fixture
async def stranger(database: BoundDatabase) -> dict[str, str]:
    key = await make_api_key(
        database,
        "feedback:write",
        name="checkout site",
        allowed_sources=["checkout-web"],
        allowed_origins=[SHOP],
    )
    return {**auth(key), "Origin": SHOP}


@pytest.fixture
async def stored(admin: httpx.AsyncClient) -> None:
    """A customer with feedback, so a 404 could not be what hides the answer."""
    team = {"key": "support", "name": "S", "first_response_minutes": 60, "resolution_minutes": 60}
    assert (await admin.post("/v1/teams", json=team)).status_code == 201
    await send_feedback(admin, submitted_at="2026-11-03T10:00:00Z")
    del admin.headers["Authorization"]


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(("method", "path", "params"), REPORTS + PRIVACY)
async def test_a_stranger_gets_403_and_nothing_else(
    client: httpx.AsyncClient,
    stranger: dict[str, str],
    method: str,
    path: str,
    params: dict[str, str],
) -> None:
    response = await client.request(method, path, params=params, headers=stranger)
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "ana@example.com" not in response.text  # the stored customer's details
    assert set(response.json()) <= {"type", "title", "status", "detail", "instance", "code"}
    assert (await client.request(method, path, params=params)).status_code == 401


@pytest.mark.usefixtures("stored")
async def test_reports_need_reports_read_and_privacy_needs_admin(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    reader = auth(await make_api_key(database, "reports:read", name="cx lead"))
    agent = auth(await make_api_key(database, "cases:read", "cases:write", name="agent"))
    for method, path, params in REPORTS:
        assert (
            await client.request(method, path, params=params, headers=reader)
        ).status_code == 200
        assert (await client.request(method, path, params=params, headers=agent)).status_code == 403
    for method, path, params in PRIVACY:
        for key in (reader, agent):
            response = await client.request(method, path, params=params, headers=key)
            assert response.status_code == 403, response.text
