"""A stranger with the publishable key of the README's tour (SPEC §7 "Trust").

The key lives in a web page, so anyone can copy it. With it they may add feedback and nothing
more: a replay tells them only an id, other content under a known id is a conflict, and the
customer they name is a claim that joins no case and changes no contact.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from app.core.db import BoundDatabase
from app.feedback.identity import identity_signature
from tests.builders import (
    auth,
    change_case,
    feedback_body,
    make_api_key,
    read_case,
    refused_fields,
)

SHOP = "https://shop.example.com"


@pytest.fixture
async def backend(client: httpx.AsyncClient, database: BoundDatabase) -> dict[str, str]:
    """The company's own server: a trusted key that writes and reads feedback."""
    return auth(await make_api_key(database, "feedback:write", "feedback:read", name="backend"))


@pytest.fixture
async def stranger(database: BoundDatabase) -> dict[str, str]:
    """The browser key of the tour, as anyone who opens the page holds it."""
    key = await make_api_key(
        database,
        "feedback:write",
        name="checkout site",
        allowed_sources=["checkout-web"],
        allowed_origins=[SHOP],
    )
    return {**auth(key), "Origin": SHOP}


@pytest.fixture
async def ops(database: BoundDatabase) -> dict[str, str]:
    return auth(await make_api_key(database, "admin", name="ops"))


def tour_item(**overrides: Any) -> dict[str, Any]:
    item = {
        "external_id": "resp-8812",
        "customer": {"external_id": "cus_42", "email": "ana@example.com", "locale": "pt-BR"},
        "comment": "Entrega atrasada e ninguém respondeu",
    }
    return feedback_body(**{**item, **overrides})


async def stored_by_backend(client: httpx.AsyncClient, backend: dict[str, str]) -> dict[str, Any]:
    response = await client.post("/v1/feedback", json=tour_item(), headers=backend)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


# -- exploit 1: a replay read back another customer's item ----------------------------------


async def test_a_replay_tells_a_stranger_only_the_id(
    client: httpx.AsyncClient, backend: dict[str, str], stranger: dict[str, str]
) -> None:
    item = await stored_by_backend(client, backend)
    replay = await client.post("/v1/feedback", json=tour_item(), headers=stranger)
    assert replay.status_code == 200, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == {"id": item["id"], "status": "replayed"}
    assert b"ana@example.com" not in replay.content


async def test_a_guessed_id_with_other_content_is_a_conflict_revealing_nothing(
    client: httpx.AsyncClient, backend: dict[str, str], stranger: dict[str, str]
) -> None:
    item = await stored_by_backend(client, backend)
    probe = {"source": "checkout-web", "channel": "web", "external_id": "resp-8812"}
    response = await client.post(
        "/v1/feedback", json={**probe, "metric": "nps", "score": 10}, headers=stranger
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert response.json()["existing_id"] == item["id"]
    for secret in (b"ana@example.com", b"cus_42", b"Entrega", b"case"):
        assert secret not in response.content
    # The stored item is as the backend sent it.
    stored = await client.get(f"/v1/feedback/{item['id']}", headers=backend)
    assert stored.json()["score"] == 3


async def test_a_batch_item_with_other_content_is_a_conflict(
    client: httpx.AsyncClient, backend: dict[str, str], stranger: dict[str, str]
) -> None:
    item = await stored_by_backend(client, backend)
    items = [tour_item(score=10), tour_item(), tour_item(external_id="new", score=9)]
    response = await client.post("/v1/feedback/batch", json={"items": items}, headers=stranger)
    assert response.status_code == 200, response.text
    first, second, third = response.json()["results"]
    assert first["status"] == "error"
    assert first["problem"]["status"] == 409
    assert first["problem"]["existing_id"] == item["id"]
    assert second == {"status": "replayed", "id": item["id"]}
    assert third["status"] == "created"


async def test_two_items_of_one_batch_with_one_id_and_other_content_conflict(
    client: httpx.AsyncClient, backend: dict[str, str]
) -> None:
    items = [tour_item(external_id="x"), tour_item(external_id="x", score=10)]
    response = await client.post("/v1/feedback/batch", json={"items": items}, headers=backend)
    first, second = response.json()["results"]
    assert first["status"] == "created"
    assert second["status"] == "error"
    assert second["problem"]["code"] == "conflict"
    assert second["problem"]["existing_id"] == first["id"]


@pytest.mark.parametrize(
    ("scopes", "full"),
    [(("feedback:write",), False), (("feedback:write", "feedback:read"), True)],
    ids=["another-writer", "a-reader"],
)
async def test_a_trusted_replay_shows_the_item_to_its_writer_or_a_reader(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    database: BoundDatabase,
    scopes: tuple[str, ...],
    full: bool,
) -> None:
    item = await stored_by_backend(client, backend)
    own = await client.post("/v1/feedback", json=tour_item(), headers=backend)
    assert own.json() == item
    other = auth(await make_api_key(database, *scopes, name="other"))
    replay = await client.post("/v1/feedback", json=tour_item(), headers=other)
    assert replay.status_code == 200
    assert replay.json() == (item if full else {"id": item["id"], "status": "replayed"})


async def test_listing_and_reading_keep_to_the_readers_sources(
    client: httpx.AsyncClient, backend: dict[str, str], database: BoundDatabase
) -> None:
    await stored_by_backend(client, backend)
    app_item = (
        await client.post(
            "/v1/feedback", json=feedback_body(source="ios-app", channel="app"), headers=backend
        )
    ).json()
    reader = auth(await make_api_key(database, "feedback:read", allowed_sources=["ios-app"]))
    listed = (await client.get("/v1/feedback", headers=reader)).json()["items"]
    assert [i["id"] for i in listed] == [app_item["id"]]
    web = await client.get("/v1/feedback", params={"source": "checkout-web"}, headers=reader)
    assert web.json()["items"] == []
    all_items = (await client.get("/v1/feedback", headers=backend)).json()["items"]
    [web_item] = [i for i in all_items if i["source"] == "checkout-web"]
    assert (await client.get(f"/v1/feedback/{web_item['id']}", headers=reader)).status_code == 404


# -- exploit 2: a claimed identity took over the customer's case --------------------------


async def test_a_claimed_identity_does_not_join_the_customers_case(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    stranger: dict[str, str],
    ops: dict[str, str],
) -> None:
    case_id = (await stored_by_backend(client, backend))["case"]["id"]
    attack = feedback_body(
        customer={"external_id": "cus_42", "email": "attacker@evil.example"}, score=1
    )
    response = await client.post("/v1/feedback", json=attack, headers=stranger)
    assert response.status_code == 201, response.text
    item = response.json()
    assert item["customer"]["verified"] is False
    assert item["case"]["id"] != case_id
    client.headers.update(ops)
    claimed = await read_case(client, item["case"]["id"])
    assert claimed["customer"]["verified"] is False
    assert claimed["customer"]["email"] == "attacker@evil.example"
    # The claim opened a case of its own, which a second claim does not join either.
    again = await client.post("/v1/feedback", json=attack, headers=stranger)
    assert again.json()["case"]["id"] not in (case_id, item["case"]["id"])


async def test_a_claimed_identity_changes_no_contact_nor_consent(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    stranger: dict[str, str],
    ops: dict[str, str],
) -> None:
    case_id = (await stored_by_backend(client, backend))["case"]["id"]
    for claim in (
        {"external_id": "cus_42", "email": "attacker@evil.example"},
        {"external_id": "cus_42", "contact_consent": False},
    ):
        body = feedback_body(customer=claim, score=1)
        assert (await client.post("/v1/feedback", json=body, headers=stranger)).status_code == 201
    client.headers.update(ops)
    case = await read_case(client, case_id)
    assert case["customer"]["email"] == "ana@example.com"
    assert case["customer"]["contact_consent"] is True
    assert case["customer"]["verified"] is True
    assert [f["kind"] for f in case["feedback"]] == ["opened"]

    view = (await client.get("/v1/customers/cus_42")).json()
    assert view["customer"]["email"] == "ana@example.com"
    assert view["customer"]["verified"] is True
    # Her id alone, claimed, is in her view, unverified; her id beside the attacker's address is
    # not hers (tests/security/test_customer_links.py): it is the attacker's claim.
    claimed = [c for c in view["cases"] if not c["verified"]]
    assert len(claimed) == 1
    assert all(c["id"] != case_id for c in claimed)
    assert sorted(f["verified"] for f in view["feedback"]) == [False, True]
    # The claim links no identity: the attacker's address finds only the attacker's own case.
    by_attacker = (await client.get("/v1/customers/attacker@evil.example")).json()
    assert [c["verified"] for c in by_attacker["cases"]] == [False]
    assert by_attacker["customer"]["verified"] is False


async def test_the_case_resolved_message_still_goes_to_the_customer(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    stranger: dict[str, str],
    ops: dict[str, str],
    database: BoundDatabase,
) -> None:
    client.headers.update(ops)
    await client.post(
        "/v1/webhooks/endpoints",
        json={"url": "https://93.184.215.14/cl", "event_types": ["case.resolved"]},
    )
    case_id = (await stored_by_backend(client, backend))["case"]["id"]
    attack = feedback_body(customer={"external_id": "cus_42", "email": "attacker@evil.example"})
    await client.post("/v1/feedback", json=attack, headers=stranger)
    case = await read_case(client, case_id)
    resolved = await change_case(
        client, case, "resolve", {"code": "refunded", "customer_message": "Refunded."}
    )
    assert resolved.status_code == 200, resolved.text
    async with database.raw() as conn:
        body = await conn.fetchval(
            "SELECT body FROM outbox_message WHERE event_type = 'case.resolved' AND case_id = $1",
            resolved.json()["id"],
        )
    customer = orjson.loads(body)["data"]["case"]["customer"]
    assert customer["email"] == "ana@example.com"
    assert customer["verified"] is True


# -- verified identities --------------------------------------------------------------------


async def identity_secret(client: httpx.AsyncClient, ops: dict[str, str], source: str) -> str:
    response = await client.post(f"/v1/sources/{source}/identity-secret", headers=ops)
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


async def test_a_signed_identity_is_verified_and_joins_without_overwriting(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    stranger: dict[str, str],
    ops: dict[str, str],
) -> None:
    case_id = (await stored_by_backend(client, backend))["case"]["id"]
    secret = await identity_secret(client, ops, "checkout-web")
    signed = {
        "external_id": "cus_42",
        "email": "new-address@example.com",
        "contact_consent": False,
        "signature": identity_signature(secret, "cus_42"),
    }
    response = await client.post(
        "/v1/feedback", json=feedback_body(customer=signed, score=2), headers=stranger
    )
    assert response.status_code == 201, response.text
    assert response.json()["customer"]["verified"] is True
    assert response.json()["case"]["id"] == case_id
    client.headers.update(ops)
    case = await read_case(client, case_id)
    assert [f["kind"] for f in case["feedback"]] == ["joined", "opened"]
    assert case["customer"]["email"] == "ana@example.com"
    assert case["customer"]["contact_consent"] is True


@pytest.mark.parametrize(
    ("customer", "kind"),
    [
        ({"external_id": "cus_42", "signature": "0" * 64}, "signature_mismatch"),
        ({"email": "ana@example.com", "signature": "0" * 64}, "signature_without_id"),
    ],
)
async def test_a_signature_that_does_not_hold_is_a_422(
    client: httpx.AsyncClient,
    stranger: dict[str, str],
    ops: dict[str, str],
    customer: dict[str, Any],
    kind: str,
) -> None:
    await identity_secret(client, ops, "checkout-web")
    response = await client.post(
        "/v1/feedback", json=feedback_body(customer=customer), headers=stranger
    )
    assert refused_fields(response) == ["customer.signature"]
    assert response.json()["errors"][0]["type"] == kind


async def test_a_signature_for_a_source_without_a_secret_is_a_422(
    client: httpx.AsyncClient, stranger: dict[str, str]
) -> None:
    customer = {"external_id": "cus_42", "signature": identity_signature("guess", "cus_42")}
    response = await client.post(
        "/v1/feedback", json=feedback_body(customer=customer), headers=stranger
    )
    assert refused_fields(response) == ["customer.signature"]
    assert response.json()["errors"][0]["type"] == "no_identity_secret"


async def test_after_a_rotation_both_secrets_verify_for_the_grace_period(
    client: httpx.AsyncClient, stranger: dict[str, str], ops: dict[str, str]
) -> None:
    old = await identity_secret(client, ops, "checkout-web")
    rotated = await client.post("/v1/sources/checkout-web/identity-secret", headers=ops)
    assert rotated.json()["previous_expires_at"] is not None
    new = rotated.json()["secret"]
    assert new != old
    for secret in (old, new):
        customer = {"external_id": "cus_7", "signature": identity_signature(secret, "cus_7")}
        body = feedback_body(customer=customer, metric="csat", score=5)
        response = await client.post("/v1/feedback", json=body, headers=stranger)
        assert response.status_code == 201, response.text
        assert response.json()["customer"]["verified"] is True


async def test_only_an_admin_makes_identity_secrets(
    client: httpx.AsyncClient, stranger: dict[str, str], backend: dict[str, str]
) -> None:
    for headers in (stranger, backend):
        response = await client.post("/v1/sources/checkout-web/identity-secret", headers=headers)
        assert response.status_code == 403


# -- publishable keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        {"scopes": ["feedback:write", "feedback:read"], "allowed_origins": [SHOP]},
        {"scopes": ["feedback:write", "cases:read"], "publishable": True},
        {"scopes": ["admin"], "allowed_origins": [SHOP]},
    ],
    ids=["origins-and-read", "publishable-and-cases", "origins-and-admin"],
)
async def test_a_publishable_key_may_hold_nothing_but_feedback_write(
    client: httpx.AsyncClient, ops: dict[str, str], key: dict[str, Any]
) -> None:
    response = await client.post("/v1/api-keys", json={"name": "page", **key}, headers=ops)
    assert response.status_code == 422, response.text


async def test_the_key_list_shows_which_keys_are_publishable(
    client: httpx.AsyncClient, ops: dict[str, str]
) -> None:
    for key in (
        {"name": "app", "scopes": ["feedback:write"], "publishable": True},
        {"name": "page", "scopes": ["feedback:write"], "allowed_origins": [SHOP]},
        {"name": "server", "scopes": ["feedback:write"]},
    ):
        created = await client.post("/v1/api-keys", json=key, headers=ops)
        assert created.status_code == 201, created.text
    listed = (await client.get("/v1/api-keys", headers=ops)).json()["items"]
    assert {k["name"]: k["publishable"] for k in listed} == {
        "app": True,
        "page": True,
        "server": False,
        "ops": False,
    }


async def test_a_publishable_app_key_is_a_stranger_too(
    client: httpx.AsyncClient, backend: dict[str, str], database: BoundDatabase
) -> None:
    """A mobile app has no origin: `publishable: true` says what origins would."""
    item = await stored_by_backend(client, backend)
    app_key = auth(await make_api_key(database, "feedback:write", publishable=True))
    replay = await client.post("/v1/feedback", json=tour_item(), headers=app_key)
    assert replay.json() == {"id": item["id"], "status": "replayed"}
    claimed = await client.post("/v1/feedback", json=feedback_body(score=1), headers=app_key)
    assert claimed.json()["customer"]["verified"] is False
    assert claimed.json()["case"]["id"] != item["case"]["id"]


async def test_a_publishable_key_cannot_replace_feedback(
    client: httpx.AsyncClient, backend: dict[str, str], stranger: dict[str, str]
) -> None:
    await stored_by_backend(client, backend)
    body = {"channel": "web", "metric": "nps", "score": 10}
    response = await client.put("/v1/feedback/checkout-web/resp-8812", json=body, headers=stranger)
    assert response.status_code == 403
    assert response.json()["code"] == "publishable_key"


async def test_the_outcome_is_not_sent_to_an_identity_a_stranger_typed(
    client: httpx.AsyncClient, stranger: dict[str, str], ops: dict[str, str]
) -> None:
    """Whoever holds the page's key could have the company's mailer write to any address: a
    claimed identity's case cannot notify. An agent who checked the details sets them, and
    then it may."""
    victim = {"email": "victim@example.org", "contact_consent": True}
    for _ in range(2):
        body = feedback_body(customer=victim, score=0)
        assert (await client.post("/v1/feedback", json=body, headers=stranger)).status_code == 201
    client.headers.update(ops)
    first, second = (
        await client.get("/v1/cases", params={"customer": "victim@example.org"})
    ).json()["items"]
    assert (first["can_notify"], second["can_notify"]) == (False, False)
    notice = {"code": "fixed", "customer_message": "Sorted.", "notify_customer": True}
    assert (await change_case(client, first, "resolve", notice)).status_code == 200
    events = (await client.get(f"/v1/cases/{first['id']}/events")).json()["items"]
    assert events[-1]["type"] == "notification_skipped"
    assert events[-1]["data"]["reason"] == "identity_unverified"

    checked = await change_case(client, second, "", {"customer": {"email": "victim@example.org"}})
    assert checked.status_code == 200, checked.text
    assert checked.json()["can_notify"] is True
