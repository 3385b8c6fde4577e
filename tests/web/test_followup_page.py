"""The follow-up page through HTTP: the question in the customer's language, the answer on the
case through the follow-up path, and the friendly refusals with their statuses (SPEC §4)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.core.db import BoundDatabase
from app.main import create_app
from app.web.pages import CONTENT_SECURITY_POLICY
from tests.builders import case_events, change_case, read_case
from tests.web.conftest import resolved_link, take_case_resolved

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def admin(admin: httpx.AsyncClient) -> httpx.AsyncClient:
    await take_case_resolved(admin)
    return admin


@pytest.fixture
async def customer(app: FastAPI) -> Any:
    """The customer's browser: no API key, its own cookies-free client."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


def h1(response: httpx.Response) -> str:
    match = re.search(r"<h1[^>]*>(.*?)</h1>", response.text)
    assert match is not None, response.text
    return match.group(1)


@pytest.mark.parametrize(
    ("locale", "question"),
    [
        ("en-GB", "Did we resolve your issue?"),
        ("zh-CN", "我们解决您的问题了吗？"),
        ("zh-Hant-TW", "我們解決您的問題了嗎？"),
        ("pt-BR", "Resolvemos o seu problema?"),
        ("es-MX", "¿Resolvimos su problema?"),
        ("de-DE", "Did we resolve your issue?"),
    ],
)
async def test_the_question_is_in_the_customers_language(
    admin: httpx.AsyncClient,
    customer: httpx.AsyncClient,
    database: BoundDatabase,
    locale: str,
    question: str,
) -> None:
    case, token = await resolved_link(
        admin, database, customer={"external_id": "cus_1", "locale": locale}
    )
    response = await customer.get(f"/f/{token}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert h1(response) == question
    assert case["number"] in response.text
    assert 'name="score"' in response.text
    assert 'method="post"' in response.text


async def test_without_a_locale_the_browser_chooses_and_english_is_last(
    admin: httpx.AsyncClient, customer: httpx.AsyncClient, database: BoundDatabase
) -> None:
    _, token = await resolved_link(admin, database, customer={"external_id": "cus_1"})
    spanish = await customer.get(f"/f/{token}", headers={"Accept-Language": "fr;q=0.9, es;q=0.8"})
    assert h1(spanish) == "¿Resolvimos su problema?"
    assert spanish.headers["content-language"] == "es"
    unknown = await customer.get(f"/f/{token}", headers={"Accept-Language": "fr, de"})
    assert h1(unknown) == "Did we resolve your issue?"


async def test_the_page_loads_nothing_from_elsewhere_and_says_so_in_its_policy(
    admin: httpx.AsyncClient, customer: httpx.AsyncClient, database: BoundDatabase
) -> None:
    _, token = await resolved_link(admin, database)
    response = await customer.get(f"/f/{token}")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    # Every address in the page is relative: this service's own files, nothing else.
    addresses = re.findall(r'(?:src|href|action)="([^"]*)"', response.text)
    assert addresses
    assert all(not re.match(r"^[a-z]+:|^//", a) for a in addresses), addresses
    assert "<style" not in response.text
    assert "style=" not in response.text
    assert "<script>" not in response.text
    for asset in ("followup.css", "followup.js"):
        served = await customer.get(f"/web/{asset}")
        assert served.status_code == 200
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "http" not in served.text  # no address of anyone else's


async def test_an_answer_lands_on_the_case_and_spends_the_link(
    admin: httpx.AsyncClient, customer: httpx.AsyncClient, database: BoundDatabase
) -> None:
    case, token = await resolved_link(admin, database)
    response = await customer.post(
        f"/f/{token}", data={"score": "5", "comment": "All sorted, thanks"}
    )
    assert response.status_code == 200, response.text
    assert h1(response) == "Thank you!"
    assert "reopened" not in response.text

    after = await read_case(admin, case["id"])
    assert after["status"] == "resolved"
    answer, opened = after["feedback"]
    assert (answer["kind"], opened["kind"]) == ("followup", "opened")
    assert (answer["metric"], answer["score"], answer["comment"]) == (
        "csat",
        5,
        "All sorted, thanks",
    )
    # Filed under the source of the complaint, from the web, as the case's customer.
    assert (answer["source"], answer["channel"]) == (opened["source"], "web")
    events = await case_events(admin, case["id"])
    assert (events[-1]["type"], events[-1]["actor"]) == ("followup_received", "customer")
    stored = (await admin.get(f"/v1/feedback/{answer['id']}")).json()
    assert stored["customer"]["external_id"] == "cus_42"

    again = await customer.get(f"/f/{token}")
    assert again.status_code == 410
    assert h1(again) == "You have already answered"
    twice = await customer.post(f"/f/{token}", data={"score": "1"})
    assert twice.status_code == 410
    assert [f["kind"] for f in (await read_case(admin, case["id"]))["feedback"]] == [
        "followup",
        "opened",
    ]


async def test_a_negative_answer_reopens_the_case_and_says_so(
    admin: httpx.AsyncClient, customer: httpx.AsyncClient, database: BoundDatabase
) -> None:
    case, token = await resolved_link(
        admin, database, customer={"external_id": "cus_9", "locale": "es"}
    )
    response = await customer.post(f"/f/{token}", data={"score": "1", "comment": "Sigue igual"})
    assert response.status_code == 200, response.text
    assert "Hemos reabierto su solicitud" in response.text
    after = await read_case(admin, case["id"])
    assert after["status"] == "open"
    events = await case_events(admin, case["id"])
    assert events[-1]["type"] == "reopened"
    assert events[-1]["data"] == {"reason": "followup_negative"}


@pytest.mark.parametrize(
    ("form", "fields"),
    [
        ({"comment": "no score"}, ["score"]),
        ({"score": "9", "comment": "out of range"}, ["score"]),
        ({"score": "5", "comment": "x" * 10_001}, ["comment"]),
        ({"score": "5", "comment": "a\x00b"}, ["comment"]),
    ],
)
async def test_an_invalid_answer_asks_again_keeping_what_was_typed(
    admin: httpx.AsyncClient,
    customer: httpx.AsyncClient,
    database: BoundDatabase,
    form: dict[str, str],
    fields: list[str],
) -> None:
    case, token = await resolved_link(admin, database)
    response = await customer.post(f"/f/{token}", data=form)
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    for field in fields:
        assert f'id="{field}-error"' in response.text
    if form["comment"] != "a\x00b" and len(form["comment"]) < 100:
        assert f"\n{form['comment']}</textarea>" in response.text
    # Nothing was stored, and the link still works.
    assert [f["kind"] for f in (await read_case(admin, case["id"]))["feedback"]] == ["opened"]
    assert (await customer.get(f"/f/{token}")).status_code == 200


async def test_what_the_customer_typed_is_shown_back_escaped(
    admin: httpx.AsyncClient, customer: httpx.AsyncClient, database: BoundDatabase
) -> None:
    _, token = await resolved_link(admin, database)
    typed = '</textarea><script>alert("x")</script>'
    response = await customer.post(f"/f/{token}", data={"comment": typed})
    assert response.status_code == 422
    assert "<script>alert" not in response.text
    assert "&lt;/textarea&gt;&lt;script&gt;" in response.text


async def test_a_body_that_is_not_a_form_is_an_answer_without_a_score(
    admin: httpx.AsyncClient, customer: httpx.AsyncClient, database: BoundDatabase
) -> None:
    _, token = await resolved_link(admin, database)
    as_json = await customer.post(f"/f/{token}", json={"score": 5})
    assert as_json.status_code == 422
    assert 'id="score-error"' in as_json.text
    not_utf8 = await customer.post(f"/f/{token}", content=b"score=5&comment=\xff", headers=FORM)
    assert not_utf8.status_code == 422
    other = await customer.post(
        f"/f/{token}", content=b"score=5", headers={"Content-Type": "text/plain"}
    )
    assert other.status_code == 415


async def test_a_link_with_nul_characters_is_refused_before_the_page(
    customer: httpx.AsyncClient,
) -> None:
    # No token holds a NUL: the input guard answers every route's paths alike (a 422 naming the
    # path), before the page could be asked.
    response = await customer.get("/f/" + "%00" * 20)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "token",
    ["nUYwJ0XtCVpqX1bYcGrHf6cRmxA1MVe0", "short", "not.a-token.of-ours", "a" * 300],
)
async def test_an_unknown_link_is_a_friendly_404(customer: httpx.AsyncClient, token: str) -> None:
    response = await customer.get(f"/f/{token}", headers={"Accept-Language": "pt-PT"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert h1(response) == "Não encontramos esta página"
    posted = await customer.post(f"/f/{token}", data={"score": "5"})
    assert posted.status_code == 404


async def test_an_expired_link_is_410_and_takes_no_answer(
    admin: httpx.AsyncClient,
    customer: httpx.AsyncClient,
    database: BoundDatabase,
    settings: Settings,
) -> None:
    case, token = await resolved_link(admin, database)
    async with database.raw() as conn:
        await conn.execute(
            "UPDATE feedback_case SET resolved_at = resolved_at - $2::interval WHERE id = $1",
            uuid.UUID(case["id"]),
            timedelta(days=settings.followup_ttl_days, minutes=1),
        )
    response = await customer.get(f"/f/{token}")
    assert response.status_code == 410
    assert h1(response) == "This link has expired"
    assert "30 days" in response.text
    posted = await customer.post(f"/f/{token}", data={"score": "5"})
    assert posted.status_code == 410
    assert [f["kind"] for f in (await read_case(admin, case["id"]))["feedback"]] == ["opened"]


async def test_a_link_replaced_by_a_reopening_is_unknown(
    admin: httpx.AsyncClient, customer: httpx.AsyncClient, database: BoundDatabase
) -> None:
    case, token = await resolved_link(admin, database)
    reopened = await change_case(admin, case, "reopen", {"reason": "agent mistake"})
    assert reopened.status_code == 200, reopened.text
    assert (await customer.get(f"/f/{token}")).status_code == 404
    assert (await customer.post(f"/f/{token}", data={"score": "4"})).status_code == 404


async def test_an_address_may_try_links_a_few_times_a_minute(
    settings: Settings, database: BoundDatabase
) -> None:
    app = create_app(settings.model_copy(update={"followup_attempts_per_minute": 3}), database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        statuses = [
            (
                await client.get(f"/f/guess{n:0>20}", headers={"Accept-Language": "zh-CN"})
            ).status_code
            for n in range(3)
        ]
        assert statuses == [404, 404, 404]
        refused = await client.post(
            "/f/guess00000000000000000003",
            data={"score": "5"},
            headers={"Accept-Language": "zh-CN"},
        )
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert h1(refused) == "请稍候"
        assert refused.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
