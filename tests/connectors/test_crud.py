"""Connectors' CRUD (admin only), with their secrets sealed at rest."""

from __future__ import annotations

import httpx
import pytest
from cryptography.fernet import Fernet

from app.core.config import Settings
from app.core.crypto import SEALED_PREFIX
from app.core.db import BoundDatabase, Database
from tests.builders import auth, make_api_key, refused_fields
from tests.connectors.deliveries import (
    STANDARD_SECRET,
    TYPEFORM_SECRET,
    create_connector,
    raw,
    typeform_headers,
    typeform_response,
)

KEY = Fernet.generate_key().decode()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"secret_key": KEY})


async def test_a_connector_says_where_the_tool_must_post(admin: httpx.AsyncClient) -> None:
    connector = await create_connector(admin, "typeform", "nps-survey", secret=TYPEFORM_SECRET)
    assert connector["url"] == "http://127.0.0.1:8000/v1/connectors/typeform/nps-survey"
    assert connector["secret"] is None  # given, so not shown back
    assert (await admin.get(f"/v1/connectors/{connector['id']}")).json()["url"] == connector["url"]
    assert [c["id"] for c in (await admin.get("/v1/connectors")).json()] == [connector["id"]]


async def test_without_a_secret_one_is_made_and_shown_once(admin: httpx.AsyncClient) -> None:
    standard = await create_connector(admin, "standard", "app")
    assert standard["secret"].startswith("whsec_")
    token = await create_connector(admin, "delighted", "app")
    assert len(token["secret"]) >= 40
    listed = (await admin.get("/v1/connectors")).json()
    assert all("secret" not in c for c in listed)


async def test_the_secret_is_sealed_at_rest(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    connector = await create_connector(admin, "typeform", "nps-survey", secret=TYPEFORM_SECRET)
    async with database.raw() as conn:
        stored = await conn.fetchval(
            "SELECT secret FROM connector WHERE id = $1::uuid", connector["id"]
        )
    assert stored.startswith(SEALED_PREFIX)
    assert TYPEFORM_SECRET not in stored
    # And it still checks deliveries.
    body = raw(typeform_response("tok-1"))
    answer = await admin.post(
        "/v1/connectors/typeform/nps-survey", content=body, headers=typeform_headers(body)
    )
    assert answer.status_code == 200, answer.text


async def test_one_connector_per_tool_and_source(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "tally", "support")
    again = await admin.post("/v1/connectors", json={"tool": "tally", "source": "support"})
    assert again.status_code == 409
    assert again.json()["code"] == "connector_exists"
    await create_connector(admin, "typeform", "support")  # another tool, same source: fine


async def test_a_bad_tool_or_mapping_is_a_422_naming_it(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/connectors",
        json={"tool": "surveygizmo", "source": "x", "mapping": {"scale": [5, 1], "oops": 1}},
    )
    assert response.status_code == 422
    assert set(refused_fields(response)) == {"tool", "mapping.oops"}
    backwards = await admin.post(
        "/v1/connectors", json={"tool": "tally", "source": "x", "mapping": {"scale": [5, 1]}}
    )
    assert backwards.status_code == 422
    assert refused_fields(backwards) == ["mapping"]


async def test_patch_changes_the_mapping_and_secret_and_delete_removes_it(
    admin: httpx.AsyncClient,
) -> None:
    connector = await create_connector(admin, "tally", "support")
    url = f"/v1/connectors/{connector['id']}"
    patched = await admin.patch(
        url, json={"mapping": {"metric": "csat", "field": "question_rating", "scale": [1, 10]}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["mapping"] == {
        "metric": "csat",
        "field": "question_rating",
        "scale": [1, 10],
    }
    assert (await admin.patch(url, json={"secret": "a-new-secret-value"})).status_code == 200
    assert (await admin.delete(url)).status_code == 204
    assert (await admin.get(url)).json()["code"] == "connector_not_found"


async def test_only_admins_manage_connectors(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    """A stranger's publishable key, or any key without admin, manages nothing."""
    stranger = auth(
        await make_api_key(database, "feedback:write", allowed_origins=["https://shop.example.com"])
    )
    reader = auth(await make_api_key(database, "feedback:read", "cases:write"))
    for headers in (stranger, reader):
        assert (await client.get("/v1/connectors", headers=headers)).status_code == 403
        created = await client.post(
            "/v1/connectors", json={"tool": "tally", "source": "x"}, headers=headers
        )
        assert created.status_code == 403
    assert (await client.get("/v1/connectors")).status_code == 401


async def test_a_delivery_through_a_real_pool(
    committed_client: httpx.AsyncClient, committed: Database
) -> None:
    """On pooled connections jsonb comes back as text: the mapping is read all the same."""
    connector = await create_connector(
        committed_client,
        "typeform",
        "pooled-survey",
        secret=TYPEFORM_SECRET,
        mapping={"attributes": ["hidden.plan"]},
    )
    try:
        body = raw(typeform_response("tok-pool"))
        answer = await committed_client.post(
            "/v1/connectors/typeform/pooled-survey", content=body, headers=typeform_headers(body)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["feedback"]["attributes"] == {"plan": "pro"}
    finally:
        async with committed.raw() as conn:
            await conn.execute("DELETE FROM connector WHERE id = $1::uuid", connector["id"])


async def test_a_standard_webhooks_secret_must_be_one(admin: httpx.AsyncClient) -> None:
    """A secret the Standard Webhooks package cannot use would refuse every delivery: it is
    refused at once, on create and on PATCH, for both tools that sign that way."""
    for tool in ("standard", "formbricks"):
        for secret in ("my plain secret", "whsec_abc", "whsec_" + "QUJD" * 2):
            response = await admin.post(
                "/v1/connectors", json={"tool": tool, "source": "app", "secret": secret}
            )
            assert response.status_code == 422, (tool, secret, response.text)
            [error] = response.json()["errors"]
            assert (error["field"], error["type"]) == ("secret", "secret_unusable")
    assert (await admin.get("/v1/connectors")).json() == []
    made = await create_connector(admin, "standard", "app")
    response = await admin.patch(f"/v1/connectors/{made['id']}", json={"secret": "plain-words"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "secret_unusable"
    response = await admin.patch(f"/v1/connectors/{made['id']}", json={"secret": STANDARD_SECRET})
    assert response.status_code == 200, response.text


async def test_a_source_named_replay_receives_its_deliveries(admin: httpx.AsyncClient) -> None:
    """POST /v1/connectors/typeform/replay is a Typeform delivery, not the replay of a
    connector whose id is `typeform` (only an id matches the replay route)."""
    await create_connector(admin, "typeform", "replay", secret=TYPEFORM_SECRET)
    body = raw(typeform_response("tok-1"))
    answer = await admin.post(
        "/v1/connectors/typeform/replay", content=body, headers=typeform_headers(body)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "created"
