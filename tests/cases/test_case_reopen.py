"""Reopening a case beside the customer's other cases (SPEC §4): a customer has one active case
per team, and "the same customer" is what intake joins on, the key of their customer record. A
case without one (anonymous feedback, a claimed identity) is nobody else's: it reopens whatever
else is active."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.db import BoundDatabase
from tests.builders import auth, feedback_body, make_api_key, open_case, read_case
from tests.cases.helpers import change, changed, move_to

SHOP = "https://shop.example.com"
AGAIN = {"reason": "oops"}


@pytest.fixture
async def stranger(database: BoundDatabase) -> dict[str, str]:
    """The headers of a web page's publishable key: what it says of the customer is a claim."""
    key = await make_api_key(
        database, "feedback:write", allowed_sources=["checkout-web"], allowed_origins=[SHOP]
    )
    return {**auth(key), "Origin": SHOP}


async def claimed_case(
    admin: httpx.AsyncClient, stranger: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    """A complaint sent with the publishable key: the case it opened, as an admin reads it."""
    response = await admin.post("/v1/feedback", json=feedback_body(**overrides), headers=stranger)
    assert response.status_code == 201, response.text
    item = response.json()
    assert item["customer"]["verified"] is False
    return await read_case(admin, item["case"]["id"])


@pytest.mark.usefixtures("support")
@pytest.mark.parametrize("status", ["resolved", "closed"])
async def test_an_anonymous_case_reopens_while_other_anonymous_cases_are_active(
    admin: httpx.AsyncClient, status: str
) -> None:
    mine = await open_case(admin, customer=None, comment="Nobody answered")
    other = await open_case(admin, customer=None, comment="Still waiting")
    assert other["id"] != mine["id"]
    done = await move_to(admin, mine, status)
    reopened = await changed(admin, done, "reopen", AGAIN)
    assert reopened["status"] == "open"
    assert (await read_case(admin, other["id"]))["status"] == "open"


@pytest.mark.usefixtures("support")
async def test_a_claimed_case_reopens_beside_the_customers_case_and_another_claim(
    admin: httpx.AsyncClient, stranger: dict[str, str]
) -> None:
    """A claim of cus_42 is not cus_42: it neither joins her case nor is kept from reopening
    by it, nor by another case claiming the same."""
    hers = await open_case(admin)  # cus_42 + ana@example.com, sent by a trusted key
    claim = await claimed_case(admin, stranger, score=1)
    again = await claimed_case(admin, stranger, score=0)
    assert len({hers["id"], claim["id"], again["id"]}) == 3
    resolved = await move_to(admin, claim, "resolved")
    assert (await changed(admin, resolved, "reopen", AGAIN))["status"] == "open"


@pytest.mark.usefixtures("support")
async def test_the_customers_case_reopens_beside_a_case_claiming_to_be_hers(
    admin: httpx.AsyncClient, stranger: dict[str, str]
) -> None:
    hers = await move_to(admin, await open_case(admin), "closed")
    claim = await claimed_case(admin, stranger, score=1)
    assert claim["status"] == "open"
    assert (await changed(admin, hers, "reopen", AGAIN))["status"] == "open"


@pytest.mark.usefixtures("support")
async def test_a_case_stays_closed_while_the_same_customer_known_otherwise_has_one_active(
    admin: httpx.AsyncClient,
) -> None:
    """Her first case knew her by e-mail only; the case that followed, by her app id beside it:
    one customer record, so the first may not reopen beside the second."""
    by_email = await open_case(admin, customer={"email": "ana@example.com"})
    by_email = await move_to(admin, by_email, "resolved")
    by_app = await open_case(admin, customer={"external_id": "cus_42", "email": "ana@example.com"})
    assert by_app["id"] != by_email["id"]
    response = await change(admin, by_email, "reopen", AGAIN)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "case_active_elsewhere"
    assert by_app["number"] in response.json()["detail"]
