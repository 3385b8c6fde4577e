"""Case queues, the customer view, bad input and scopes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from app.core.db import BoundDatabase
from tests.builders import (
    auth,
    make_api_key,
    open_case,
    read_case,
    send_feedback,
)
from tests.cases.helpers import (
    NO_NOTICE,
    PRIORITY_ORDER,
    UNKNOWN_CASE,
    at,
    change,
    changed,
    make_rule,
    make_team,
    mentions,
    move_to,
    person,
    queue,
    set_column,
)

# -- queues -------------------------------------------------------------------------------


async def test_the_queue_filters_by_status_team_assignee_priority_and_tag(
    admin: httpx.AsyncClient,
) -> None:
    await make_team(admin, "support")
    await make_team(admin, "billing")
    await make_rule(admin, "billing", mentions("refund"), add_tags=["refund"])
    a = await open_case(admin, customer=person("cus_a"))
    b = await move_to(admin, await open_case(admin, customer=person("cus_b")), "in_progress")
    c = await move_to(
        admin, await open_case(admin, customer=person("cus_c")), "waiting_on_customer"
    )
    d = await open_case(admin, customer=person("cus_d"), comment="I want a refund")
    e = await move_to(admin, await open_case(admin, customer=person("cus_e")), "resolved")
    b = await changed(admin, b, "", {"assignee": "agent-ana", "priority": "high"})
    await changed(admin, d, "", {"assignee": "agent-ana"})

    def numbers(*cases: dict[str, Any]) -> set[str]:
        return {case["number"] for case in cases}

    assert set(await queue(admin)) == numbers(a, b, c, d, e)
    assert set(await queue(admin, status="open")) == numbers(a, d)
    assert set(await queue(admin, status=["in_progress", "waiting_on_customer"])) == numbers(b, c)
    assert set(await queue(admin, status="resolved")) == numbers(e)
    assert set(await queue(admin, team="billing")) == numbers(d)
    assert set(await queue(admin, team="support", status="open")) == numbers(a)
    assert set(await queue(admin, assignee="agent-ana")) == numbers(b, d)
    assert set(await queue(admin, priority="high")) == numbers(b)
    assert set(await queue(admin, priority="normal", assignee="agent-ana")) == numbers(d)
    assert set(await queue(admin, tag="refund")) == numbers(d)
    assert await queue(admin, tag="nothing") == []
    assert await queue(admin, team="nobody") == []


@pytest.mark.usefixtures("support")
async def test_the_queue_filters_by_breached(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    late = await open_case(admin, customer=person("cus_late"))
    also_late = await open_case(admin, customer=person("cus_also_late"))
    on_time = await open_case(admin, customer=person("cus_on_time"))
    await set_column(database, late, "first_response_breached", True)
    await set_column(database, also_late, "resolution_breached", True)
    assert set(await queue(admin, breached="true")) == {late["number"], also_late["number"]}
    assert await queue(admin, breached="false") == [on_time["number"]]
    assert (await read_case(admin, late["id"]))["breached"] is True


@pytest.mark.usefixtures("support")
async def test_the_queue_filters_by_customer_external_id_email_or_phone(
    admin: httpx.AsyncClient,
) -> None:
    ana = await open_case(
        admin, customer=person("cus_ana", email="ana@example.com", phone="+351 912 345 678")
    )
    by_email = await open_case(admin, customer=person(email="bo@example.com"))
    by_phone = await open_case(admin, customer=person(phone="+44 20 7946 0000"))
    await open_case(admin, customer=None)

    assert await queue(admin, customer="cus_ana") == [ana["number"]]
    assert await queue(admin, customer="ANA@example.com") == [ana["number"]]
    assert await queue(admin, customer="+351-912-345-678") == [ana["number"]]
    assert await queue(admin, customer="Bo@Example.com") == [by_email["number"]]
    assert await queue(admin, customer="+44 (20) 7946 0000") == [by_phone["number"]]
    assert await queue(admin, customer="cus_nobody") == []


@pytest.mark.usefixtures("support")
async def test_the_queue_filters_by_a_created_range(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    cases = {}
    for month in (1, 2, 3):
        case = await open_case(admin, customer=person(f"cus_{month}"))
        await set_column(
            database, case, "created_at", datetime.fromisoformat(f"2026-0{month}-01T00:00:00+00:00")
        )
        cases[month] = case["number"]
    february = {"created_from": "2026-02-01T00:00:00Z", "created_to": "2026-03-01T00:00:00Z"}
    assert await queue(admin, **february) == [cases[2]]
    assert set(await queue(admin, created_from="2026-02-01T00:00:00Z")) == {cases[2], cases[3]}
    assert await queue(admin, created_to="2026-02-01T00:00:00Z") == [cases[1]]


@pytest.fixture
async def five_cases(admin: httpx.AsyncClient, database: BoundDatabase) -> list[dict[str, Any]]:
    """Five open cases, created a day apart in order; their resolution due times and
    priorities out of that order, with ties."""
    base = datetime.fromisoformat("2026-05-01T09:00:00+00:00")
    plan = [(30, "normal"), (10, "low"), (30, "urgent"), (20, "normal"), (10, "urgent")]
    cases = []
    for i, (due_hours, priority) in enumerate(plan):
        case = await open_case(admin, customer=person(f"cus_{i}"))
        if priority != "normal":
            case = await changed(admin, case, "", {"priority": priority})
        await set_column(database, case, "created_at", base + timedelta(days=i))
        await set_column(database, case, "resolution_due_at", base + timedelta(hours=due_hours))
        cases.append(await read_case(admin, case["id"]))
    return cases


@pytest.mark.usefixtures("support")
async def test_the_queue_sorts_by_resolution_due_then_creation_or_priority(
    admin: httpx.AsyncClient, five_cases: list[dict[str, Any]]
) -> None:
    def by(key: Any) -> list[str]:
        return [c["number"] for c in sorted(five_cases, key=key)]

    def due(c: dict[str, Any]) -> tuple[datetime, str]:
        return at(c["resolution_due_at"]), c["id"]

    def created(c: dict[str, Any]) -> datetime:
        return at(c["created_at"])

    def urgency(c: dict[str, Any]) -> tuple[int, datetime]:
        return PRIORITY_ORDER[c["priority"]], at(c["created_at"])

    numbers = [c["number"] for c in five_cases]
    default = await queue(admin)
    assert default == by(due)
    assert default == await queue(admin, sort="resolution_due_at")
    assert await queue(admin, sort="created_at") == numbers == by(created)
    assert await queue(admin, sort="-created_at") == numbers[::-1]
    assert await queue(admin, sort="priority") == by(urgency)
    assert await queue(admin, sort="priority") == [
        numbers[2],
        numbers[4],
        numbers[0],
        numbers[3],
        numbers[1],
    ]


@pytest.mark.parametrize("sort", ["resolution_due_at", "created_at", "-created_at", "priority"])
@pytest.mark.usefixtures("support")
async def test_the_queue_pages_through_every_case_once(
    admin: httpx.AsyncClient, five_cases: list[dict[str, Any]], sort: str
) -> None:
    whole = await queue(admin, sort=sort)
    seen: list[str] = []
    params: dict[str, Any] = {"sort": sort, "limit": 2}
    pages = 0
    while True:
        page = (await admin.get("/v1/cases", params=params)).json()
        seen += [c["number"] for c in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert pages == 3
    assert seen == whole
    assert len(set(seen)) == len(five_cases)


@pytest.mark.usefixtures("support")
async def test_a_filtered_queue_pages_within_its_filter(
    admin: httpx.AsyncClient, five_cases: list[dict[str, Any]]
) -> None:
    first = (await admin.get("/v1/cases", params={"priority": "urgent", "limit": 1})).json()
    second = (
        await admin.get(
            "/v1/cases",
            params={"priority": "urgent", "limit": 1, "cursor": first["next_cursor"]},
        )
    ).json()
    assert second["next_cursor"] is None
    urgent = {c["number"] for c in five_cases if c["priority"] == "urgent"}
    assert {first["items"][0]["number"], second["items"][0]["number"]} == urgent


@pytest.fixture
async def lenient(app: FastAPI, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client that gets the 500 answer of an unexpected error instead of the error."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=auth(admin_key)
    ) as client:
        yield client


def retyped(cursor: str, position: int, value: Any) -> str:
    """The cursor with one of its values replaced, as someone editing it by hand would."""
    values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    values[position] = value
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.usefixtures("support")
async def test_a_cursor_with_values_of_the_wrong_type_is_400(
    lenient: httpx.AsyncClient, five_cases: list[dict[str, Any]]
) -> None:
    due = (await lenient.get("/v1/cases", params={"limit": 2})).json()["next_cursor"]
    urgent = (await lenient.get("/v1/cases", params={"limit": 2, "sort": "priority"})).json()[
        "next_cursor"
    ]
    for sort, cursor in [
        ("resolution_due_at", retyped(due, 1, 5)),
        ("priority", retyped(urgent, 1, "2026-05-01T09:00:00+00:00")),
        ("priority", retyped(urgent, 1, True)),
        ("priority", retyped(urgent, 1, 10**30)),
    ]:
        response = await lenient.get("/v1/cases", params={"sort": sort, "cursor": cursor})
        assert response.status_code == 400, (sort, response.status_code)
        assert response.json()["code"] == "invalid_cursor"


@pytest.mark.usefixtures("support")
async def test_bad_queue_requests_are_refused(
    admin: httpx.AsyncClient, five_cases: list[dict[str, Any]]
) -> None:
    too_many = await admin.get("/v1/cases", params={"limit": 201})
    assert too_many.status_code == 422
    assert [e["field"] for e in too_many.json()["errors"]] == ["limit"]
    assert (await admin.get("/v1/cases", params={"limit": 200})).status_code == 200

    cursor = (await admin.get("/v1/cases", params={"limit": 2})).json()["next_cursor"]
    for tampered in ("not-a-cursor", cursor[:-3], cursor + "AAAA", "WyJ4Il0"):
        response = await admin.get("/v1/cases", params={"cursor": tampered})
        assert response.status_code == 400, tampered
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_cursor"
    other_sort = await admin.get("/v1/cases", params={"cursor": cursor, "sort": "created_at"})
    assert other_sort.status_code == 400
    assert other_sort.json()["code"] == "invalid_cursor"
    priority_cursor = (
        await admin.get("/v1/cases", params={"limit": 2, "sort": "priority"})
    ).json()["next_cursor"]
    assert (await admin.get("/v1/cases", params={"cursor": priority_cursor})).status_code == 400

    for name, value, field in [
        ("status", "done", "status[0]"),
        ("sort", "urgency", "sort"),
        ("priority", "asap", "priority"),
        ("breached", "maybe", "breached"),
        ("created_from", "yesterday", "created_from"),
        # Before year 1 in UTC: no time PostgreSQL (or Python) holds.
        ("created_from", "0001-01-01T00:00:00+03:00", "created_from"),
        ("created_to", "9999-12-31T23:00:00-03:00", "created_to"),
    ]:
        response = await admin.get("/v1/cases", params={name: value})
        assert response.status_code == 422, name
        assert [e["field"] for e in response.json()["errors"]] == [field]


# -- the customer view ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["cus_42", "ana@example.com", "ANA@Example.COM", "+351 912 345 678", "+351-912-345-678"]
)
@pytest.mark.usefixtures("support")
async def test_the_customer_view_finds_them_by_any_identity(
    admin: httpx.AsyncClient, key: str
) -> None:
    who = person("cus_42", email="ana@example.com", phone="+351 912 345 678", name="Ana")
    complaint = await send_feedback(admin, customer=who)
    praise = await send_feedback(admin, customer=who, score=10, comment="Thanks, all sorted now")

    response = await admin.get(f"/v1/customers/{quote(key, safe='')}")
    assert response.status_code == 200, response.text
    view = response.json()
    assert set(view) == {"customer", "identities", "feedback", "cases", "notifications"}
    assert [(i["kind"], i["value"]) for i in view["identities"]] == [
        ("external_id", "cus_42"),
        ("email", "ana@example.com"),
        ("phone", "+351912345678"),
    ]
    for identity in view["identities"]:
        assert identity["verified"] is True
        assert (identity["source"], identity["channel"]) == ("checkout-web", "web")
        assert identity["feedback_id"] == complaint["id"]
        assert identity["detached_at"] is None
    assert view["customer"]["external_id"] == "cus_42"
    assert view["customer"]["email"] == "ana@example.com"
    assert view["customer"]["phone"] == "+351912345678"
    assert view["customer"]["name"] == "Ana"
    assert [f["id"] for f in view["feedback"]] == [praise["id"], complaint["id"]]
    assert view["feedback"][1]["case_id"] == complaint["case"]["id"]
    assert view["feedback"][0]["case_id"] is None
    assert [c["id"] for c in view["cases"]] == [complaint["case"]["id"]]
    assert view["notifications"] == []


@pytest.mark.usefixtures("support")
async def test_the_customer_view_joins_channels_through_a_shared_identity(
    admin: httpx.AsyncClient,
) -> None:
    app_item = await send_feedback(
        admin, source="mobile-app", channel="app", customer=person("cus_42"), score=2
    )
    web_item = await send_feedback(
        admin,
        channel="web",
        customer=person("cus_42", email="ana@example.com"),
        score=10,
        comment="Sorted, thanks",
    )
    stranger = await send_feedback(admin, customer=person("cus_99", email="zoe@example.com"))
    response = await admin.get("/v1/customers/Ana@Example.com")
    assert response.status_code == 200
    view = response.json()
    assert [(f["id"], f["channel"]) for f in view["feedback"]] == [
        (web_item["id"], "web"),
        (app_item["id"], "app"),
    ]
    assert [c["id"] for c in view["cases"]] == [app_item["case"]["id"]]
    assert stranger["case"]["id"] != app_item["case"]["id"]


@pytest.mark.usefixtures("support")
async def test_the_customer_view_lists_cases_and_notifications_newest_first(
    admin: httpx.AsyncClient,
) -> None:
    first = await open_case(admin)
    resolved = await changed(
        admin, first, "resolve", {"code": "refunded", "customer_message": "Refunded."}
    )
    second = await open_case(admin, comment="It happened again")
    assert second["id"] != first["id"]

    view = (await admin.get("/v1/customers/cus_42")).json()
    assert [(c["id"], c["status"]) for c in view["cases"]] == [
        (second["id"], "open"),
        (first["id"], "resolved"),
    ]
    assert view["cases"][1]["resolved_at"] == resolved["resolved_at"]
    assert [f["case_id"] for f in view["feedback"]] == [second["id"], first["id"]]
    [told] = view["notifications"]
    assert told["case_id"] == first["id"]
    assert told["case_number"] == first["number"]
    assert (told["outcome"], told["reason"]) == ("not_sent", "no_webhook_endpoint")


@pytest.mark.parametrize("external_id", ["2024-0042", "Ana@Corp"])
@pytest.mark.usefixtures("support")
async def test_an_external_id_is_found_as_given(admin: httpx.AsyncClient, external_id: str) -> None:
    case = await open_case(admin, customer=person(external_id))
    assert await queue(admin, customer=external_id) == [case["number"]]
    response = await admin.get(f"/v1/customers/{quote(external_id, safe='')}")
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["cases"]] == [case["id"]]


async def test_an_unknown_customer_is_404(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/v1/customers/nobody@example.com")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "customer_not_found"


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"assignee": "x"}),
        ("POST", "/resolve", NO_NOTICE),
        ("POST", "/reopen", {"reason": "again"}),
        ("POST", "/close", None),
        ("POST", "/notes", {"body": "hello"}),
        ("GET", "/events", None),
    ],
    ids=["get", "patch", "resolve", "reopen", "close", "note", "events"],
)
async def test_an_unknown_case_is_404(
    admin: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await admin.request(
        method, UNKNOWN_CASE + path, json=body, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "case_not_found"


async def test_a_case_id_that_is_not_a_uuid_is_422(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/v1/cases/C-1001")
    assert response.status_code == 422


@pytest.mark.usefixtures("support")
async def test_resolving_with_notice_needs_the_customer_message(
    admin: httpx.AsyncClient,
) -> None:
    case = await open_case(admin)
    for body in ({"code": "refunded"}, {"code": "refunded", "notify_customer": True}):
        response = await change(admin, case, "resolve", body)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["customer_message"]
    assert (await read_case(admin, case["id"]))["status"] == "open"


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("", {"assignee": "a" * 201}, "assignee"),
        ("", {"assignee": ""}, "assignee"),
        ("", {"tags": [f"t{i}" for i in range(51)]}, "tags"),
        ("", {"tags": [""]}, "tags[0]"),
        ("", {"status": "done"}, "status"),
        ("", {"priority": "asap"}, "priority"),
        ("", {"team": "billing"}, "team"),
        ("resolve", {"notify_customer": False}, "code"),
        ("resolve", {"code": "fixed", "notify_customer": "no"}, "notify_customer"),
        ("reopen", {}, "reason"),
        ("reopen", {"reason": ""}, "reason"),
        ("notes", {"body": ""}, "body"),
        ("notes", {}, "body"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
@pytest.mark.usefixtures("support")
async def test_bad_input_is_a_422_naming_the_field(
    admin: httpx.AsyncClient, action: str, body: dict[str, Any], field: str
) -> None:
    case = await open_case(admin)
    response = await change(admin, case, action, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert await read_case(admin, case["id"]) == case


@pytest.mark.usefixtures("support")
async def test_fifty_tags_and_a_200_character_assignee_are_fine(
    admin: httpx.AsyncClient,
) -> None:
    case = await open_case(admin)
    tags = [f"t{i}" for i in range(50)]
    updated = await changed(admin, case, "", {"tags": tags, "assignee": "a" * 200})
    assert updated["tags"] == tags
    assert updated["assignee"] == "a" * 200


# -- scopes -------------------------------------------------------------------------------


@pytest.mark.usefixtures("support")
async def test_cases_read_may_read_but_not_change(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    case = await open_case(admin)
    reader = auth(await make_api_key(database, "cases:read"))
    url = f"/v1/cases/{case['id']}"
    for path in ("/v1/cases", url, f"{url}/events", "/v1/customers/cus_42"):
        assert (await client.get(path, headers=reader)).status_code == 200, path
    write_headers = {**reader, "If-Match": '"1"'}
    for method, path, body in [
        ("PATCH", url, {"status": "in_progress"}),
        ("POST", f"{url}/resolve", NO_NOTICE),
        ("POST", f"{url}/notes", {"body": "hi"}),
    ]:
        response = await client.request(method, path, json=body, headers=write_headers)
        assert response.status_code == 403, path
        assert response.json()["code"] == "insufficient_scope"
    assert (await read_case(admin, case["id"]))["version"] == 1


@pytest.mark.usefixtures("support")
async def test_cases_write_may_change_a_case(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    case = await open_case(admin)
    writer = auth(await make_api_key(database, "cases:write"))
    response = await client.patch(
        f"/v1/cases/{case['id']}",
        json={"status": "in_progress"},
        headers={**writer, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "in_progress"
    note = await client.post(
        f"/v1/cases/{case['id']}/notes", json={"body": "on it"}, headers=writer
    )
    assert note.status_code == 201


@pytest.mark.usefixtures("support")
async def test_an_ingest_key_cannot_see_cases(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    case = await open_case(admin)
    ingest = auth(await make_api_key(database, "feedback:write"))
    for path in (
        "/v1/cases",
        f"/v1/cases/{case['id']}",
        f"/v1/cases/{case['id']}/events",
        "/v1/customers/cus_42",
    ):
        response = await client.get(path, headers=ingest)
        assert response.status_code == 403, path
        assert response.json()["code"] == "insufficient_scope"


async def test_no_key_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/cases")).status_code == 401
    assert (await client.get(UNKNOWN_CASE)).status_code == 401


async def test_a_patch_that_changes_nothing_keeps_the_version(admin: httpx.AsyncClient) -> None:
    case = await open_case(admin)
    url = f"/v1/cases/{case['id']}"
    for body in ({}, {"status": "open"}, {"assignee": case["assignee"]}):
        response = await admin.patch(url, json=body, headers={"If-Match": '"1"'})
        assert response.status_code == 200
        assert response.headers["etag"] == '"1"'
    assert (await admin.get(url)).json()["version"] == 1
