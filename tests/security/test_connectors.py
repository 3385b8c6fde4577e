"""What a stranger holding a publishable key can do on the connector routes: nothing. The
management routes are admin-only, and a tool's address takes the tool's signature, which no
API key replaces."""

from __future__ import annotations

import httpx

from app.core.db import BoundDatabase
from tests.builders import auth, make_api_key
from tests.connectors.deliveries import (
    TYPEFORM_SECRET,
    create_connector,
    raw,
    typeform_response,
)


async def test_a_stranger_can_do_nothing_on_connector_routes(
    client: httpx.AsyncClient, admin_key: str, database: BoundDatabase
) -> None:
    admin = auth(admin_key)
    client.headers.update(admin)
    connector = await create_connector(client, "typeform", "survey", secret=TYPEFORM_SECRET)
    del client.headers["Authorization"]
    stranger = auth(
        await make_api_key(database, "feedback:write", allowed_origins=["https://shop.example.com"])
    )
    one = f"/v1/connectors/{connector['id']}"
    for method, url, body in (
        ("GET", "/v1/connectors", None),
        ("POST", "/v1/connectors", {"tool": "tally", "source": "mine"}),
        ("GET", one, None),
        ("PATCH", one, {"secret": "a-secret-of-my-own"}),
        ("DELETE", one, None),
        ("POST", f"{one}/replay", None),
        ("GET", f"{one}/responses", None),
    ):
        response = await client.request(method, url, json=body, headers=stranger)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["code"] == "insufficient_scope"
    delivery = raw(typeform_response("tok-1"))
    posted = await client.post(
        "/v1/connectors/typeform/survey",
        content=delivery,
        headers={"Content-Type": "application/json", **stranger},
    )
    assert posted.status_code == 401
    # Nothing was changed or stored by any of it.
    still = await client.get(one, headers=admin)
    assert still.json()["mapping"] == {}
    listed = await client.get("/v1/feedback", params={"source": "survey"}, headers=admin)
    assert listed.json()["items"] == []
