"""One customer across channels: a record with identities, linked by verified items."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from app.core.db import BoundDatabase
from tests.builders import auth, make_api_key, read_case, send_feedback
from tests.cases.helpers import person

pytestmark = pytest.mark.usefixtures("support")


async def view_of(admin: httpx.AsyncClient, key: str) -> dict[str, Any]:
    response = await admin.get(f"/v1/customers/{quote(key, safe='')}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def identities(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["kind"], i["value"]) for i in view["identities"]]


async def records(database: BoundDatabase) -> int:
    async with database.raw() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM customer")
    return count


async def test_the_email_first_then_app_customer_has_one_view_and_one_case(
    admin: httpx.AsyncClient,
) -> None:
    by_mail = await send_feedback(
        admin, source="support-mail", channel="email", customer=person(email="Ana@Example.com")
    )
    in_app = await send_feedback(
        admin,
        source="ios-app",
        channel="app",
        customer=person("cus_42", email="ana@example.com"),
        comment="The app crashes at checkout",
    )
    assert in_app["case"]["id"] == by_mail["case"]["id"]
    # Later the app sends only its own id: still the same customer, the same case.
    again = await send_feedback(
        admin, source="ios-app", channel="app", customer=person("cus_42"), comment="Still broken"
    )
    assert again["case"]["id"] == by_mail["case"]["id"]
    case = await read_case(admin, by_mail["case"]["id"])
    assert [f["kind"] for f in case["feedback"]] == ["joined", "joined", "opened"]

    for key in ("cus_42", "ana@example.com"):
        view = await view_of(admin, key)
        assert identities(view) == [("email", "ana@example.com"), ("external_id", "cus_42")]
        assert [c["id"] for c in view["cases"]] == [by_mail["case"]["id"]]
        assert len(view["feedback"]) == 3
    email, external_id = view["identities"]
    assert (email["source"], email["channel"], email["feedback_id"]) == (
        "support-mail",
        "email",
        by_mail["id"],
    )
    assert (external_id["source"], external_id["channel"], external_id["feedback_id"]) == (
        "ios-app",
        "app",
        in_app["id"],
    )
    assert email["first_seen_at"] < external_id["first_seen_at"]


async def test_an_item_with_two_known_identities_merges_their_records(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    by_mail = await send_feedback(admin, channel="email", customer=person(email="ana@example.com"))
    in_app = await send_feedback(admin, channel="app", customer=person("cus_42"))
    assert in_app["case"]["id"] != by_mail["case"]["id"]
    assert await records(database) == 2

    both = await send_feedback(
        admin, customer=person("cus_42", email="ana@example.com"), score=9, comment="Thanks"
    )
    assert both["case"] is None
    assert await records(database) == 1
    view = await view_of(admin, "cus_42")
    assert identities(view) == [("email", "ana@example.com"), ("external_id", "cus_42")]
    # Both cases were open before the link; both stay, for an agent to settle. A complaint now
    # joins the older record's case, by either identity.
    assert {c["id"] for c in view["cases"]} == {by_mail["case"]["id"], in_app["case"]["id"]}
    # The queue filtered by either identity finds both, through the record.
    for key in ("cus_42", "ana@example.com"):
        queue = await admin.get("/v1/cases", params={"customer": key})
        assert {c["id"] for c in queue.json()["items"]} == {
            by_mail["case"]["id"],
            in_app["case"]["id"],
        }
    for customer in (person("cus_42"), person(email="ana@example.com")):
        later = await send_feedback(admin, customer=customer, comment="Any news?")
        assert later["case"]["id"] == by_mail["case"]["id"]


async def test_phones_are_one_in_e164_however_typed(admin: httpx.AsyncClient) -> None:
    first = await send_feedback(admin, customer=person(phone="+44 (0)20 7946 0958"))
    second = await send_feedback(admin, customer=person(phone="+44 20 7946-0958"))
    assert second["case"]["id"] == first["case"]["id"]
    assert second["customer"]["phone"] == "+442079460958"
    view = await view_of(admin, "+442079460958")
    assert identities(view) == [("phone", "+442079460958")]


async def test_a_phone_links_to_the_email_it_came_with(admin: httpx.AsyncClient) -> None:
    first = await send_feedback(
        admin, channel="sms", customer=person(email="ana@example.com", phone="+351 912 345 678")
    )
    by_phone = await send_feedback(admin, channel="sms", customer=person(phone="+351912345678"))
    assert by_phone["case"]["id"] == first["case"]["id"]


async def test_two_external_ids_sharing_an_email_stay_two_customers(
    admin: httpx.AsyncClient,
) -> None:
    one = await send_feedback(admin, customer=person("cus_1", email="family@example.com"))
    two = await send_feedback(admin, customer=person("cus_2", email="family@example.com"))
    assert one["case"]["id"] != two["case"]["id"]
    assert identities(await view_of(admin, "cus_2")) == [("external_id", "cus_2")]
    assert identities(await view_of(admin, "cus_1")) == [
        ("external_id", "cus_1"),
        ("email", "family@example.com"),
    ]


async def test_a_batch_is_linked_before_its_cases_open(admin: httpx.AsyncClient) -> None:
    items = [
        {"source": "support-mail", "channel": "email", "customer": {"email": "bo@example.com"}},
        {"source": "ios-app", "channel": "app", "customer": {"external_id": "cus_9"}},
        {"source": "ios-app", "channel": "app", "customer": {"external_id": "cus_9"}},
        {
            "source": "web",
            "channel": "web",
            "customer": {"external_id": "cus_9", "email": "bo@example.com"},
        },
    ]
    body = [{**item, "metric": "nps", "score": 2, "comment": "Bad"} for item in items]
    response = await admin.post("/v1/feedback/batch", json={"items": body})
    assert [r["status"] for r in response.json()["results"]] == ["created"] * 4
    view = await view_of(admin, "bo@example.com")
    assert sorted(identities(view)) == [("email", "bo@example.com"), ("external_id", "cus_9")]
    # The batch is linked before its cases open: its last item makes all four one customer's.
    [case] = view["cases"]
    assert len((await read_case(admin, case["id"]))["feedback"]) == 4


# -- undoing a wrong link ---------------------------------------------------------------------


async def wrongly_linked(admin: httpx.AsyncClient) -> dict[str, Any]:
    """Ana's case, with a colleague's address wrongly given beside her id."""
    opened = await send_feedback(admin, customer=person("cus_42", email="ana@example.com"))
    await send_feedback(admin, customer=person("cus_42", email="desk@example.com"), score=9)
    assert identities(await view_of(admin, "desk@example.com"))[-1] == ("email", "desk@example.com")
    return opened


async def test_an_admin_detaches_a_wrongly_linked_identity(admin: httpx.AsyncClient) -> None:
    opened = await wrongly_linked(admin)
    response = await admin.delete("/v1/customers/cus_42/identities/DESK@example.com")
    assert response.status_code == 204, response.text

    ana = await view_of(admin, "cus_42")
    assert identities(ana) == [("external_id", "cus_42"), ("email", "ana@example.com")]
    desk = await view_of(admin, "desk@example.com")
    assert identities(desk) == [("email", "desk@example.com")]
    [detached] = desk["identities"]
    assert detached["detached_by"] == "test"
    assert detached["detached_at"] is not None
    # A later complaint from that address alone opens a case of its own ...
    alone = await send_feedback(admin, customer=person(email="desk@example.com"))
    assert alone["case"]["id"] != opened["case"]["id"]
    # ... and one that gives it beside Ana's id again joins Ana's case without linking it back.
    again = await send_feedback(admin, customer=person("cus_42", email="desk@example.com"))
    assert again["case"]["id"] == opened["case"]["id"]
    assert identities(await view_of(admin, "desk@example.com")) == [("email", "desk@example.com")]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/customers/nobody@example.com/identities/ana@example.com", 404, "customer_not_found"),
        ("/v1/customers/cus_42/identities/nobody@example.com", 404, "identity_not_found"),
        ("/v1/customers/cus_7/identities/cus_7", 409, "identity_not_linked"),
    ],
    ids=["unknown-customer", "unknown-identity", "only-identity"],
)
async def test_a_detach_that_cannot_be_done_is_a_problem(
    admin: httpx.AsyncClient, path: str, status: int, code: str
) -> None:
    await wrongly_linked(admin)
    await send_feedback(admin, customer=person("cus_7"))
    response = await admin.delete(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert len((await view_of(admin, "cus_42"))["identities"]) == 3


async def test_only_an_admin_detaches(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await wrongly_linked(admin)
    agent = auth(await make_api_key(database, "cases:read", "cases:write"))
    response = await client.delete(
        "/v1/customers/cus_42/identities/desk@example.com", headers=agent
    )
    assert response.status_code == 403
    assert len((await view_of(admin, "cus_42"))["identities"]) == 3
