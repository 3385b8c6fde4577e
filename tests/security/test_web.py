"""A stranger on the web routes (SPEC §7 "Trust"): the follow-up page and the widget.

The page takes no API key: its token is the only thing that opens it, and it opens one answer
to one question. A publishable key adds nothing there; the page tells its holder nothing of the
case but its number; the answer is filed as the case's customer whatever the form says; and no
other site's script may read the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.core.db import BoundDatabase
from tests.builders import auth, make_api_key, read_case, webhooks_on_loopback
from tests.web.conftest import resolved_link, take_case_resolved

SHOP = "https://shop.example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Resolutions hand out links only while an endpoint takes case.resolved: the tests register
    one on 127.0.0.1 (nothing is sent to it)."""
    return webhooks_on_loopback(settings)


@pytest.fixture
async def visitor(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Anyone's browser: no key."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


@pytest.fixture
async def stranger(database: BoundDatabase) -> dict[str, str]:
    key = await make_api_key(
        database, "feedback:write", name="checkout site", allowed_origins=[SHOP]
    )
    return {**auth(key), "Origin": SHOP}


async def test_a_publishable_key_opens_no_link(
    visitor: httpx.AsyncClient, stranger: dict[str, str]
) -> None:
    response = await visitor.get("/f/nUYwJ0XtCVpqX1bYcGrHf6cRmxA1MVe0", headers=stranger)
    assert response.status_code == 404
    posted = await visitor.post(
        "/f/nUYwJ0XtCVpqX1bYcGrHf6cRmxA1MVe0", data={"score": "5"}, headers=stranger
    )
    assert posted.status_code == 404


async def test_the_page_shows_nothing_of_the_case_but_its_number(
    admin: httpx.AsyncClient, visitor: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await take_case_resolved(admin)
    case, token = await resolved_link(
        admin,
        database,
        customer={"external_id": "cus_77", "email": "ana@example.com", "name": "Ana Lima"},
        comment="My parcel never came",
    )
    page = (await visitor.get(f"/f/{token}")).text
    assert case["number"] in page
    for secret in ("cus_77", "ana@example.com", "Ana Lima", "parcel", "We refunded", case["id"]):
        assert secret not in page
    assert case["team"] not in page


async def test_the_answer_is_the_cases_customers_whatever_the_form_claims(
    admin: httpx.AsyncClient, visitor: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await take_case_resolved(admin)
    case, token = await resolved_link(admin, database)
    answer = await visitor.post(
        f"/f/{token}",
        data={
            "score": "5",
            "customer.external_id": "someone-else",
            "customer_email": "mallory@example.com",
            "source": "another-source",
            "in_reply_to.case_id": "00000000-0000-7000-8000-000000000000",
        },
    )
    assert answer.status_code == 200, answer.text
    [item, opened] = (await read_case(admin, case["id"]))["feedback"]
    stored = (await admin.get(f"/v1/feedback/{item['id']}")).json()
    assert stored["customer"]["external_id"] == "cus_42"
    assert stored["customer"]["email"] is None
    assert stored["source"] == opened["source"]


async def test_no_other_site_may_read_the_page(
    admin: httpx.AsyncClient, visitor: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await take_case_resolved(admin)
    _, token = await resolved_link(admin, database)
    page = await visitor.get(f"/f/{token}", headers={"Origin": SHOP})
    assert page.status_code == 200
    assert "access-control-allow-origin" not in page.headers
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    preflight = await visitor.options(
        f"/f/{token}", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
