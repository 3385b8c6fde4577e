"""API keys: scopes, revocation, sources, browser origins (CORS) and the ingest rate limit."""

from __future__ import annotations

import httpx

from app.core.db import BoundDatabase
from tests.builders import auth, feedback_body, make_api_key


async def test_admin_creates_a_key_shown_once_and_stored_hashed(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    response = await admin.post(
        "/v1/api-keys", json={"name": "checkout site", "scopes": ["feedback:write"]}
    )
    assert response.status_code == 201
    created = response.json()
    key = created["key"]
    assert key.startswith("cl_")
    assert len(key) > 40
    assert created["prefix"] == key[:10]

    listed = (await admin.get("/v1/api-keys")).json()["items"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in mine
    async with database.raw() as conn:
        stored = await conn.fetchval("SELECT key_hash FROM api_key WHERE id = $1", mine["id"])
    assert key not in stored

    posted = await admin.post("/v1/feedback", json=feedback_body(), headers=auth(key))
    assert posted.status_code == 201


async def test_missing_unknown_and_malformed_keys_are_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, auth("cl_unknown"), {"Authorization": "Basic abc"}):
        response = await client.post("/v1/feedback", json=feedback_body(), headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_revoked_key_is_401(admin: httpx.AsyncClient) -> None:
    created = (
        await admin.post("/v1/api-keys", json={"name": "old", "scopes": ["feedback:write"]})
    ).json()
    assert (
        await admin.post("/v1/feedback", json=feedback_body(), headers=auth(created["key"]))
    ).status_code == 201
    revoked = await admin.delete(f"/v1/api-keys/{created['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    response = await admin.post("/v1/feedback", json=feedback_body(), headers=auth(created["key"]))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


async def test_revoking_an_unknown_key_is_404(admin: httpx.AsyncClient) -> None:
    response = await admin.delete("/v1/api-keys/0190d6a4-0000-7000-8000-000000000000")
    assert response.status_code == 404


async def test_a_wrong_scope_is_403(client: httpx.AsyncClient, database: BoundDatabase) -> None:
    reader = await make_api_key(database, "feedback:read")
    writer = await make_api_key(database, "feedback:write")
    assert (
        await client.post("/v1/feedback", json=feedback_body(), headers=auth(reader))
    ).status_code == 403
    response = await client.get("/v1/feedback", headers=auth(writer))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert (await client.get("/v1/api-keys", headers=auth(writer))).status_code == 403


async def test_admin_may_do_everything(admin: httpx.AsyncClient) -> None:
    assert (await admin.post("/v1/feedback", json=feedback_body())).status_code == 201
    assert (await admin.get("/v1/feedback")).status_code == 200


async def test_bad_key_requests_are_422(admin: httpx.AsyncClient) -> None:
    for body, field in [
        ({"name": "x", "scopes": ["everything"]}, "scopes[0]"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "", "scopes": ["admin"]}, "name"),
        (
            {"name": "x", "scopes": ["feedback:write"], "allowed_origins": ["shop"]},
            "allowed_origins[0]",
        ),
        # Empty allow-lists once meant "no limit": a key for every source, a trusted key.
        ({"name": "x", "scopes": ["feedback:write"], "allowed_sources": []}, "allowed_sources"),
        ({"name": "x", "scopes": ["feedback:write"], "allowed_origins": []}, "allowed_origins"),
    ]:
        response = await admin.post("/v1/api-keys", json=body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == field
    assert [key["name"] for key in (await admin.get("/v1/api-keys")).json()["items"]] == ["test"]


async def test_a_key_limited_to_sources_refuses_others(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    key = await make_api_key(database, "feedback:write", allowed_sources=["ios-app"])
    ok = await client.post("/v1/feedback", json=feedback_body(source="ios-app"), headers=auth(key))
    assert ok.status_code == 201
    denied = await client.post("/v1/feedback", json=feedback_body(), headers=auth(key))
    assert denied.status_code == 403
    assert denied.json()["code"] == "source_denied"
    batch = await client.post(
        "/v1/feedback/batch",
        json={"items": [feedback_body(source="ios-app"), feedback_body()]},
        headers=auth(key),
    )
    assert [r["status"] for r in batch.json()["results"]] == ["created", "error"]
    assert batch.json()["results"][1]["problem"]["code"] == "source_denied"


SHOP = "https://shop.example.com"


async def test_a_browser_key_answers_cors_for_its_origins_only(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    key = await make_api_key(database, "feedback:write", allowed_origins=[SHOP])
    preflight = await client.options(
        "/v1/feedback",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == SHOP
    assert "Authorization" in preflight.headers["access-control-allow-headers"]

    posted = await client.post(
        "/v1/feedback", json=feedback_body(), headers={**auth(key), "Origin": SHOP}
    )
    assert posted.status_code == 201
    assert posted.headers["access-control-allow-origin"] == SHOP

    evil = "https://evil.example.net"
    refused = await client.options(
        "/v1/feedback", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
    )
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    denied = await client.post(
        "/v1/feedback", json=feedback_body(), headers={**auth(key), "Origin": evil}
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "origin_denied"
    assert "access-control-allow-origin" not in denied.headers


async def test_a_server_key_gives_no_cors_headers(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    key = await make_api_key(database, "feedback:write")
    posted = await client.post(
        "/v1/feedback", json=feedback_body(), headers={**auth(key), "Origin": SHOP}
    )
    assert posted.status_code == 201
    assert "access-control-allow-origin" not in posted.headers
