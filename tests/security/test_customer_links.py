"""A stranger with a publishable key against customer records (SPEC §7 "Trust").

Linking identities is what makes one customer of an e-mail and an app id; a link made by a
claim would let whoever holds the page's key attach their address to someone's record, read
back through it, or join their case. Only verified items link.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.db import BoundDatabase
from app.feedback.identity import identity_signature
from tests.builders import auth, feedback_body, make_api_key

SHOP = "https://shop.example.com"


@pytest.fixture
async def backend(database: BoundDatabase) -> dict[str, str]:
    return auth(await make_api_key(database, "feedback:write", name="backend"))


@pytest.fixture
async def stranger(database: BoundDatabase) -> dict[str, str]:
    key = await make_api_key(
        database, "feedback:write", allowed_sources=["checkout-web"], allowed_origins=[SHOP]
    )
    return {**auth(key), "Origin": SHOP}


@pytest.fixture
async def ops(database: BoundDatabase) -> dict[str, str]:
    return auth(await make_api_key(database, "admin", name="ops"))


async def posted(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/feedback", json=feedback_body(**body), headers=headers)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


def kinds(view: dict[str, Any]) -> list[tuple[str, str, bool]]:
    return [(i["kind"], i["value"], i["verified"]) for i in view["identities"]]


@pytest.mark.parametrize(
    "claim",
    [
        {"external_id": "cus_42", "email": "attacker@evil.example"},
        {"email": "ana@example.com", "phone": "+44 20 7946 0000"},
        {"external_id": "att_1", "email": "ana@example.com"},
    ],
    ids=["her-id-and-my-email", "her-email-and-my-phone", "my-id-and-her-email"],
)
async def test_a_claim_links_nothing_to_the_customer_nor_joins_her_case(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    stranger: dict[str, str],
    ops: dict[str, str],
    claim: dict[str, str],
) -> None:
    ana = await posted(client, backend)  # cus_42 + ana@example.com, verified: a case
    attack = await posted(client, stranger, customer=claim, score=0)
    assert attack["customer"]["verified"] is False
    assert attack["case"]["id"] != ana["case"]["id"]

    view = (await client.get("/v1/customers/cus_42", headers=ops)).json()
    assert kinds(view) == [
        ("external_id", "cus_42", True),
        ("email", "ana@example.com", True),
    ]
    assert view["customer"]["email"] == "ana@example.com"
    case = (await client.get(f"/v1/cases/{ana['case']['id']}", headers=ops)).json()
    assert [f["kind"] for f in case["feedback"]] == ["opened"]
    # What the claim brought of its own stays alone, unverified, each in a record of its own.
    for value in claim.values():
        if value in ("cus_42", "ana@example.com"):
            continue
        own = (await client.get(f"/v1/customers/{value}", headers=ops)).json()
        [(_, _, verified)] = kinds(own)
        assert verified is False
    # And a complaint the company sends later for her joins her case, not the stranger's.
    later = await posted(client, backend, customer={"email": "ana@example.com"}, score=1)
    assert later["case"]["id"] == ana["case"]["id"]


async def test_a_claim_made_first_is_not_linked_when_the_customer_is_verified_later(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    stranger: dict[str, str],
    ops: dict[str, str],
) -> None:
    """The stranger claims her address beside their phone before the company ever names her:
    when her own server sends her id and address, only her identities are hers."""
    claim = {"email": "ana@example.com", "phone": "+44 20 7946 0000"}
    attack = await posted(client, stranger, customer=claim, score=0)
    ana = await posted(client, backend)
    assert ana["case"]["id"] != attack["case"]["id"]
    view = (await client.get("/v1/customers/cus_42", headers=ops)).json()
    assert kinds(view) == [
        ("email", "ana@example.com", True),
        ("external_id", "cus_42", True),
    ]
    phone = (await client.get("/v1/customers/+442079460000", headers=ops)).json()
    assert kinds(phone) == [("phone", "+442079460000", False)]


async def test_a_signed_identity_links_as_the_companys_own_servers_do(
    client: httpx.AsyncClient,
    stranger: dict[str, str],
    backend: dict[str, str],
    ops: dict[str, str],
) -> None:
    ana = await posted(client, backend, customer={"email": "ana@example.com"})
    secret = (await client.post("/v1/sources/checkout-web/identity-secret", headers=ops)).json()[
        "secret"
    ]
    signed = {
        "external_id": "cus_42",
        "email": "ana@example.com",
        "signature": identity_signature(secret, "cus_42"),
    }
    item = await posted(client, stranger, customer=signed, score=1)
    assert item["customer"]["verified"] is True
    assert item["case"]["id"] == ana["case"]["id"]
    view = (await client.get("/v1/customers/cus_42", headers=ops)).json()
    assert [kind for kind, _, _ in kinds(view)] == ["email", "external_id"]


async def test_a_stranger_cannot_detach_an_identity(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    stranger: dict[str, str],
    ops: dict[str, str],
) -> None:
    await posted(client, backend)
    response = await client.delete(
        "/v1/customers/cus_42/identities/ana@example.com", headers=stranger
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    view = (await client.get("/v1/customers/cus_42", headers=ops)).json()
    assert len(view["identities"]) == 2


async def test_a_claim_naming_her_beside_someone_else_is_not_in_her_view_or_her_copy(
    client: httpx.AsyncClient,
    backend: dict[str, str],
    stranger: dict[str, str],
    ops: dict[str, str],
) -> None:
    """Her id beside the stranger's own address: not her feedback, case or copy (her copy
    would hand her the stranger's address), but the stranger's claim's. A claim of her id
    alone (her own widget, unsigned) is hers, shown unverified. Erasing her blanks both: both
    name her."""
    ana = await posted(client, backend)
    mixed = await posted(
        client, stranger, customer={"external_id": "cus_42", "email": "claim@example.com"}
    )
    alone = await posted(client, stranger, customer={"external_id": "cus_42"}, score=1)

    view = (await client.get("/v1/customers/cus_42", headers=ops)).json()
    assert {f["id"] for f in view["feedback"]} == {ana["id"], alone["id"]}
    assert {c["id"] for c in view["cases"]} == {ana["case"]["id"], alone["case"]["id"]}
    listed = (await client.get("/v1/cases", params={"customer": "cus_42"}, headers=ops)).json()
    assert mixed["case"]["id"] not in {c["id"] for c in listed["items"]}
    copy = await client.get("/v1/customers/cus_42/export", headers=ops)
    assert copy.status_code == 200
    assert "claim@example.com" not in copy.text
    assert mixed["id"] not in copy.text
    theirs = (await client.get("/v1/customers/claim@example.com", headers=ops)).json()
    assert [f["id"] for f in theirs["feedback"]] == [mixed["id"]]

    assert (await client.delete("/v1/customers/cus_42", headers=ops)).status_code == 204
    for item in (mixed, alone):
        erased = (await client.get(f"/v1/feedback/{item['id']}", headers=ops)).json()
        assert erased["customer"]["external_id"] is None
