"""Webhook endpoints through HTTP: registering, the SSRF guard, enabling, rotating secrets; the
outbox messages that feedback and case changes write for them; the customer notification and
its follow-up; scopes (SPEC §5).

Most tests run in the rolled-back transaction, where no dispatcher runs: they read what was
queued from the `outbox_message` table. Rotation is proved end to end, with a real dispatcher
posting to a real receiver whose signatures the `standardwebhooks` package checks.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import WebhookVerificationError

from app.core.config import Settings
from app.core.db import BoundDatabase, Database
from app.main import create_app
from app.notifications.dispatcher import Dispatcher
from tests.builders import (
    auth,
    feedback_body,
    make_api_key,
    open_case,
    read_case,
    register_endpoint,
    send_feedback,
)
from tests.receiver import Receiver

ENDPOINTS = "/v1/webhooks/endpoints"
# Reachable under this module's settings (the allowlist has 127.0.0.0/8); nothing is sent to it
# in the rolled-back tests, where no dispatcher runs.
HOOK = "http://127.0.0.1:9/hooks"
# A public address: acceptable under the default guard, and checked without DNS.
PUBLIC_HOOK = "https://93.184.216.34/hooks"
UNKNOWN_ID = "00000000-0000-7000-8000-000000000000"
NOTICE = {"code": "refunded", "customer_message": "We refunded your order."}
NO_NOTICE = {"code": "fixed", "notify_customer": False}
ENDPOINT_FIELDS = {
    "id",
    "url",
    "event_types",
    "sources",
    "description",
    "enabled",
    "disabled_reason",
    "last_success_at",
    "failing_since",
    "created_at",
    "updated_at",
}
CASE_BLOCK_FIELDS = {
    "id",
    "number",
    "status",
    "priority",
    "team",
    "assignee",
    "customer",
    "feedback",
    "created_at",
    "updated_at",
}


@asynccontextmanager
async def admin_client(
    settings: Settings, database: Database, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client on a second app over the same database, with these settings changed."""
    key = await make_api_key(database, "admin", name="second-admin")
    app = create_app(settings.model_copy(update=changes), database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=auth(key)
    ) as client:
        yield client


@pytest.fixture
async def strict(database: BoundDatabase, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client on an app with the default guard: https only, no allowlist."""
    async with admin_client(
        settings, database, webhook_allow_http=False, webhook_allowed_networks=""
    ) as client:
        yield client


# -- helpers ------------------------------------------------------------------------------------


# Endpoints registered here post to HOOK unless told otherwise.
register = functools.partial(register_endpoint, url=HOOK)


async def act(
    client: httpx.AsyncClient, case: dict[str, Any], action: str, body: Any = None
) -> httpx.Response:
    """PATCH the case (action "") or POST one of its actions, with its current If-Match."""
    url = f"/v1/cases/{case['id']}"
    headers = {"If-Match": f'"{case["version"]}"'}
    if not action:
        return await client.patch(url, json=body, headers=headers)
    return await client.post(f"{url}/{action}", json=body, headers=headers)


async def acted(
    client: httpx.AsyncClient, case: dict[str, Any], action: str, body: Any = None
) -> dict[str, Any]:
    response = await act(client, case, action, body)
    assert response.status_code == 200, response.text
    changed: dict[str, Any] = response.json()
    return changed


async def timeline(client: httpx.AsyncClient, case_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/cases/{case_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["items"]
    return events


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def is_secret(value: str) -> bool:
    """`whsec_` + the base64 of exactly 32 bytes."""
    prefix, _, encoded = value.partition("_")
    return prefix == "whsec" and len(base64.b64decode(encoded, validate=True)) == 32


def refused_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"]]


@dataclass(frozen=True)
class Message:
    endpoint_id: str
    event_type: str
    payload: dict[str, Any]
    case_id: str | None
    status: str

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.payload["data"]
        return data


@dataclass
class Outbox:
    """The `outbox_message` table, read in the test's transaction."""

    database: BoundDatabase
    seen: set[uuid.UUID] = field(default_factory=set)

    async def all(self) -> list[Message]:
        return [m for _, m in await self._rows()]

    async def new(self) -> list[Message]:
        """The messages written since the last call."""
        fresh = [(i, m) for i, m in await self._rows() if i not in self.seen]
        self.seen.update(i for i, _ in fresh)
        return [m for _, m in fresh]

    async def _rows(self) -> list[tuple[uuid.UUID, Message]]:
        async with self.database.raw() as conn:
            rows = await conn.fetch(
                "SELECT id, endpoint_id, event_type, body, case_id, status FROM outbox_message "
                "ORDER BY created_at, event_type"
            )
        return [
            (
                uuid.UUID(str(r["id"])),
                Message(
                    endpoint_id=str(r["endpoint_id"]),
                    event_type=r["event_type"],
                    payload=json.loads(r["body"]),
                    case_id=None if r["case_id"] is None else str(r["case_id"]),
                    status=r["status"],
                ),
            )
            for r in rows
        ]


@pytest.fixture
def outbox(database: BoundDatabase) -> Outbox:
    return Outbox(database)


def delivered(messages: list[Message], **endpoints: dict[str, Any]) -> list[tuple[str, str]]:
    """(endpoint name, event type) of each message, sorted; names as given by the caller."""
    names = {e["id"]: name for name, e in endpoints.items()}
    return sorted((names.get(m.endpoint_id, "?"), m.event_type) for m in messages)


def expected_block(case: dict[str, Any]) -> dict[str, Any]:
    """The `case` block of a case event, as the case reads through the API."""
    opening = [f for f in reversed(case["feedback"]) if f["kind"] != "followup"]
    return {
        "id": case["id"],
        "number": case["number"],
        "status": case["status"],
        "priority": case["priority"],
        "team": case["team"],
        "assignee": case["assignee"],
        "customer": case["customer"],
        "feedback": [
            {"id": f["id"], "source": f["source"], "external_id": f["external_id"]} for f in opening
        ],
    }


def assert_block_shows(message: Message, case: dict[str, Any]) -> None:
    block = message.data["case"]
    assert set(block) == CASE_BLOCK_FIELDS
    assert {k: v for k, v in block.items() if not k.endswith("_at")} == expected_block(case)
    assert at(block["created_at"]) == at(case["created_at"])
    assert at(block["updated_at"]) == at(case["updated_at"])


# -- registering --------------------------------------------------------------------------------


async def test_registering_answers_the_endpoint_and_its_secret_once(
    admin: httpx.AsyncClient,
) -> None:
    response = await admin.post(
        ENDPOINTS,
        json={
            "url": HOOK,
            "event_types": ["case.resolved", "case.opened"],
            "sources": ["ios-app"],
            "description": "CRM bridge",
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == ENDPOINT_FIELDS | {"secret"}
    uuid.UUID(created["id"])
    assert created["url"] == HOOK
    assert created["event_types"] == ["case.resolved", "case.opened"]
    assert created["sources"] == ["ios-app"]
    assert created["description"] == "CRM bridge"
    assert created["enabled"] is True
    assert created["disabled_reason"] is None
    assert is_secret(created["secret"])

    shown = (await admin.get(f"{ENDPOINTS}/{created['id']}")).json()
    assert set(shown) == ENDPOINT_FIELDS
    assert shown == {k: v for k, v in created.items() if k != "secret"}
    listed = (await admin.get(ENDPOINTS)).json()
    assert listed == {"items": [shown], "next_cursor": None}


async def test_every_endpoint_gets_its_own_secret(admin: httpx.AsyncClient) -> None:
    first = await register(admin, "*")
    second = await register(admin, "*")
    assert first["secret"] != second["secret"]


async def test_the_list_shows_endpoints_oldest_first(admin: httpx.AsyncClient) -> None:
    ids = [(await register(admin, "*", description=str(n)))["id"] for n in range(3)]
    listed = (await admin.get(ENDPOINTS)).json()["items"]
    assert [e["id"] for e in listed] == ids
    assert all("secret" not in e for e in listed)


async def test_an_endpoint_may_take_every_event_type(admin: httpx.AsyncClient) -> None:
    endpoint = await register(admin, "*")
    assert endpoint["event_types"] == ["*"]
    assert endpoint["sources"] is None
    assert endpoint["description"] is None


async def test_repeated_event_types_are_kept_once(admin: httpx.AsyncClient) -> None:
    endpoint = await register(admin, "case.opened", "case.closed", "case.opened")
    assert endpoint["event_types"] == ["case.opened", "case.closed"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": HOOK, "event_types": ["case.deleted"]}, "event_types"),
        ({"url": HOOK, "event_types": ["Case.Opened"]}, "event_types"),
        ({"url": HOOK, "event_types": []}, "event_types"),
        ({"url": HOOK}, "event_types"),
        ({"event_types": ["*"]}, "url"),
        ({"url": HOOK, "event_types": ["*"], "sources": ["Not A Slug"]}, "sources[0]"),
        ({"url": HOOK, "event_types": ["*"], "secret": "whsec_mine"}, "secret"),
    ],
    ids=[
        "unknown-type",
        "wrong-case",
        "no-types",
        "types-missing",
        "url-missing",
        "bad-source",
        "own-secret",
    ],
)
async def test_a_bad_registration_is_a_422_naming_the_field(
    admin: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await admin.post(ENDPOINTS, json=body)
    assert field in refused_fields(response)
    assert (await admin.get(ENDPOINTS)).json()["items"] == []


async def test_an_unknown_event_type_is_named_in_the_problem(admin: httpx.AsyncClient) -> None:
    response = await admin.post(ENDPOINTS, json={"url": HOOK, "event_types": ["case.deleted"]})
    [error] = response.json()["errors"]
    assert error["field"] == "event_types"
    assert "case.deleted" in error["message"]


# -- the SSRF guard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "https://hooks.example.com/" + "a" * 2000,
        "http://93.184.216.34/hooks",
        "ftp://93.184.216.34/hooks",
        "https://user:pw@93.184.216.34/hooks",
        "https://127.0.0.1/",
        "https://10.0.0.5/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2002:a9fe:a9fe::]/",
        "https://[fd00:ec2::254]/",
        "https://2130706433/",
        "https://hooks.example.invalid/",
    ],
    ids=[
        "not-a-url",
        "too-long",
        "http",
        "ftp",
        "credentials",
        "loopback",
        "private",
        "metadata",
        "mapped-loopback",
        "nat64-metadata",
        "6to4-metadata",
        "aws-ipv6-metadata",
        "decimal-loopback",
        "unresolvable",
    ],
)
async def test_a_url_webhooks_may_not_reach_is_refused_and_nothing_stored(
    strict: httpx.AsyncClient, url: str
) -> None:
    response = await strict.post(ENDPOINTS, json={"url": url, "event_types": ["*"]})
    assert refused_fields(response) == ["url"]
    assert (await strict.get(ENDPOINTS)).json()["items"] == []


async def test_a_refusal_says_why(strict: httpx.AsyncClient) -> None:
    response = await strict.post(
        ENDPOINTS, json={"url": "https://169.254.169.254/latest/meta-data", "event_types": ["*"]}
    )
    problem = response.json()
    assert problem["status"] == 422
    [error] = problem["errors"]
    assert error["type"] == "url_refused"
    assert "169.254.169.254" in error["message"]


async def test_the_default_guard_takes_a_public_https_url(strict: httpx.AsyncClient) -> None:
    endpoint = await register(strict, "*", url=PUBLIC_HOOK)
    assert endpoint["url"] == PUBLIC_HOOK


async def test_the_allowlist_lets_loopback_through_and_nothing_else(
    admin: httpx.AsyncClient,
) -> None:
    assert (await register(admin, "*", url="http://127.0.0.1:8080/in"))["enabled"]
    for url in ("http://10.0.0.5/in", "http://[::1]/in", "http://169.254.169.254/"):
        response = await admin.post(ENDPOINTS, json={"url": url, "event_types": ["*"]})
        assert refused_fields(response) == ["url"], url


@pytest.mark.parametrize(
    "url", ["https://10.0.0.5/", "https://[::ffff:127.0.0.1]/", "http://93.184.216.34/hooks"]
)
async def test_changing_to_a_refused_url_is_refused_and_changes_nothing(
    strict: httpx.AsyncClient, url: str
) -> None:
    endpoint = await register(strict, "*", url=PUBLIC_HOOK)
    response = await strict.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"url": url})
    assert refused_fields(response) == ["url"]
    shown = (await strict.get(f"{ENDPOINTS}/{endpoint['id']}")).json()
    assert shown["url"] == PUBLIC_HOOK
    assert shown["updated_at"] == endpoint["updated_at"]


# -- changing, disabling, deleting --------------------------------------------------------------


async def test_an_endpoint_changes_its_url_types_sources_and_description(
    admin: httpx.AsyncClient,
) -> None:
    endpoint = await register(admin, "*", sources=["ios-app"], description="old")
    response = await admin.patch(
        f"{ENDPOINTS}/{endpoint['id']}",
        json={"url": PUBLIC_HOOK, "event_types": ["case.resolved"], "description": "new"},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert "secret" not in changed
    assert changed["url"] == PUBLIC_HOOK
    assert changed["event_types"] == ["case.resolved"]
    assert changed["sources"] == ["ios-app"]
    assert changed["description"] == "new"
    assert at(changed["updated_at"]) > at(endpoint["updated_at"])
    cleared = await admin.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"sources": None})
    assert cleared.json()["sources"] is None
    assert cleared.json()["event_types"] == ["case.resolved"]


async def test_an_endpoint_is_disabled_with_a_reason_and_enabled_again(
    admin: httpx.AsyncClient,
) -> None:
    endpoint = await register(admin, "*")
    url = f"{ENDPOINTS}/{endpoint['id']}"
    disabled = await admin.patch(url, json={"enabled": False, "disabled_reason": "CRM migration"})
    assert disabled.status_code == 200, disabled.text
    assert (disabled.json()["enabled"], disabled.json()["disabled_reason"]) == (
        False,
        "CRM migration",
    )
    shown = (await admin.get(url)).json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "CRM migration")

    enabled = await admin.patch(url, json={"enabled": True})
    assert (enabled.json()["enabled"], enabled.json()["disabled_reason"]) == (True, None)


async def test_disabling_without_a_reason_records_that_an_admin_did(
    admin: httpx.AsyncClient,
) -> None:
    endpoint = await register(admin, "*")
    disabled = await admin.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": False})
    assert disabled.json()["disabled_reason"] == "disabled by an admin"


async def test_a_deleted_endpoint_is_gone(admin: httpx.AsyncClient) -> None:
    endpoint = await register(admin, "*")
    url = f"{ENDPOINTS}/{endpoint['id']}"
    deleted = await admin.delete(url)
    assert deleted.status_code == 204
    assert deleted.content == b""
    again = await admin.get(url)
    assert again.status_code == 404
    assert again.json()["code"] == "endpoint_not_found"
    assert (await admin.delete(url)).status_code == 404
    assert (await admin.get(ENDPOINTS)).json()["items"] == []


async def test_deleting_an_endpoint_deletes_its_messages(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "feedback.received")
    await send_feedback(admin, score=9, comment="Great")
    assert len(await outbox.all()) == 1
    assert (await admin.delete(f"{ENDPOINTS}/{endpoint['id']}")).status_code == 204
    assert await outbox.all() == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"enabled": False}),
        ("DELETE", "", None),
        ("POST", "/rotate-secret", None),
        ("POST", "/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("GET", "/messages", None),
    ],
    ids=["get", "patch", "delete", "rotate", "recover", "messages"],
)
async def test_an_unknown_endpoint_is_404(
    admin: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await admin.request(method, f"{ENDPOINTS}/{UNKNOWN_ID}{path}", json=body)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "endpoint_not_found"


async def test_an_endpoint_id_that_is_not_a_uuid_is_422(admin: httpx.AsyncClient) -> None:
    response = await admin.get(f"{ENDPOINTS}/not-a-uuid")
    assert response.status_code == 422


# -- rotating the secret ------------------------------------------------------------------------


async def test_rotating_answers_a_new_secret_shown_only_then(admin: httpx.AsyncClient) -> None:
    endpoint = await register(admin, "*")
    response = await admin.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret")
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["id"] == endpoint["id"]
    assert is_secret(rotated["secret"])
    assert rotated["secret"] != endpoint["secret"]
    assert "secret" not in (await admin.get(f"{ENDPOINTS}/{endpoint['id']}")).json()


@pytest.mark.usefixtures("dispatcher")
async def test_after_rotation_the_old_and_new_secrets_both_sign_for_the_grace_period(
    committed_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    endpoint = await register(committed_client, "feedback.received", url=receiver.url("/ok"))
    rotated = (await committed_client.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret")).json()
    item = await send_feedback(committed_client, score=10, comment="Lovely")

    await receiver.wait_for(1, "/ok")
    delivery = receiver.at("/ok")[0]
    assert len(delivery.headers["webhook-signature"].split()) == 2
    for secret in (endpoint["secret"], rotated["secret"]):
        payload = delivery.verify(secret)
        assert payload["type"] == "feedback.received"
        assert payload["data"]["id"] == item["id"]


@pytest.mark.usefixtures("dispatcher")
async def test_without_a_grace_period_only_the_new_secret_signs(
    committed: Database,
    committed_client: httpx.AsyncClient,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register(committed_client, "feedback.received", url=receiver.url("/ok"))
    async with admin_client(settings, committed, webhook_secret_grace_hours=0) as no_grace:
        response = await no_grace.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret")
    assert response.status_code == 200, response.text
    new_secret = response.json()["secret"]
    await send_feedback(committed_client, score=10, comment="Lovely")

    await receiver.wait_for(1, "/ok")
    delivery = receiver.at("/ok")[0]
    assert delivery.verify(new_secret)["type"] == "feedback.received"
    with pytest.raises(WebhookVerificationError):
        delivery.verify(endpoint["secret"])


@pytest.fixture
async def ipv6_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(host="::1")
    try:
        await receiver.start()
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    try:
        yield receiver
    finally:
        await receiver.stop()


async def test_a_delivery_to_an_ipv6_literal_has_a_bracketed_host_header(
    committed: Database, settings: Settings, ipv6_receiver: Receiver
) -> None:
    ipv6 = {"webhook_allowed_networks": "127.0.0.0/8,::1/128"}
    url = f"http://[::1]:{ipv6_receiver.port}/ok"
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(committed, settings.model_copy(update=ipv6)).run(stop))
    try:
        async with admin_client(settings, committed, **ipv6) as client:
            endpoint = await register(client, "feedback.received", url=url)
            await send_feedback(client, score=10, comment="Great")
        await ipv6_receiver.wait_for(1, "/ok")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    delivery = ipv6_receiver.at("/ok")[0]
    assert delivery.verify(endpoint["secret"])["type"] == "feedback.received"
    assert delivery.headers["host"] == f"[::1]:{ipv6_receiver.port}"


# -- the outbox: which events become which messages ---------------------------------------------


async def test_negative_feedback_queues_one_message_per_event_and_subscribed_endpoint(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    received = await register(admin, "feedback.received")
    opened = await register(admin, "case.opened")
    everything = await register(admin, "*")
    resolved = await register(admin, "case.resolved")

    item = await send_feedback(admin)

    messages = await outbox.all()
    assert delivered(
        messages, received=received, opened=opened, everything=everything, resolved=resolved
    ) == [
        ("everything", "case.opened"),
        ("everything", "feedback.received"),
        ("opened", "case.opened"),
        ("received", "feedback.received"),
    ]
    assert {m.status for m in messages} == {"pending"}
    for message in messages:
        assert message.payload["type"] == message.event_type
        assert set(message.payload) == {"type", "timestamp", "data"}
        if message.event_type == "feedback.received":
            assert message.case_id is None
        else:
            assert message.case_id == item["case"]["id"]


async def test_feedback_received_carries_the_feedback_as_stored_without_its_case(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "feedback.received")
    item = await send_feedback(admin, external_id="resp-1")
    [message] = await outbox.all()
    assert message.data == {k: v for k, v in item.items() if k != "case"}
    assert message.data["routing"]["team"] == item["case"]["team"]
    assert "case" not in message.data
    assert at(message.payload["timestamp"]) == at(item["received_at"])
    stored = (await admin.get(f"/v1/feedback/{item['id']}")).json()
    assert message.data == {k: v for k, v in stored.items() if k != "case"}


async def test_positive_feedback_queues_feedback_received_only(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    everything = await register(admin, "*")
    item = await send_feedback(admin, score=10, comment="Great service")
    assert item["case"] is None
    messages = await outbox.all()
    assert delivered(messages, everything=everything) == [("everything", "feedback.received")]
    assert messages[0].data["routing"] is None


async def test_case_opened_carries_the_case_block(admin: httpx.AsyncClient, outbox: Outbox) -> None:
    await register(admin, "case.opened")
    item = await send_feedback(
        admin,
        source="ios-app",
        external_id="resp-9",
        customer={
            "external_id": "cus_9",
            "email": "Ana@Example.com",
            "phone": "+55 (11) 91234-5678",
            "name": "Ana",
            "locale": "pt-BR",
        },
    )
    [message] = await outbox.all()
    case = await read_case(admin, item["case"]["id"])
    assert_block_shows(message, case)
    block = message.data["case"]
    assert block["status"] == "open"
    assert block["customer"] == {
        "external_id": "cus_9",
        "email": "ana@example.com",
        "phone": "+5511912345678",
        "name": "Ana",
        "locale": "pt-BR",
        "contact_consent": True,
        "verified": True,
    }
    assert block["feedback"] == [{"id": item["id"], "source": "ios-app", "external_id": "resp-9"}]
    assert at(message.payload["timestamp"]) == at(case["created_at"])


async def test_a_sources_filter_limits_the_messages_to_those_sources(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    ios = await register(admin, "feedback.received", "case.opened", sources=["ios-app"])
    anywhere = await register(admin, "feedback.received", "case.opened")

    await send_feedback(admin, source="checkout-web", customer={"external_id": "cus_1"})
    assert delivered(await outbox.new(), ios=ios, anywhere=anywhere) == [
        ("anywhere", "case.opened"),
        ("anywhere", "feedback.received"),
    ]
    await send_feedback(admin, source="ios-app", customer={"external_id": "cus_2"})
    assert delivered(await outbox.new(), ios=ios, anywhere=anywhere) == [
        ("anywhere", "case.opened"),
        ("anywhere", "feedback.received"),
        ("ios", "case.opened"),
        ("ios", "feedback.received"),
    ]


async def test_case_events_reach_an_endpoint_filtered_to_any_of_the_cases_sources(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    ios = await register(admin, "case.status_changed", sources=["ios-app"])
    web = await register(admin, "case.status_changed", sources=["checkout-web"])
    other = await register(admin, "case.status_changed", sources=["call-center"])
    item = await send_feedback(admin, source="checkout-web")
    await send_feedback(admin, source="ios-app")  # the same customer: it joins the case
    case = await read_case(admin, item["case"]["id"])
    assert len(case["feedback"]) == 2

    await acted(admin, case, "", {"status": "in_progress"})
    assert delivered(await outbox.all(), ios=ios, web=web, other=other) == [
        ("ios", "case.status_changed"),
        ("web", "case.status_changed"),
    ]


async def test_a_disabled_endpoint_gets_nothing_until_enabled(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "*")
    await admin.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": False})
    await send_feedback(admin, customer={"external_id": "cus_1"})
    assert await outbox.all() == []

    await admin.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": True})
    await send_feedback(admin, customer={"external_id": "cus_2"})
    assert delivered(await outbox.all(), endpoint=endpoint) == [
        ("endpoint", "case.opened"),
        ("endpoint", "feedback.received"),
    ]


async def test_joining_an_open_case_writes_no_second_case_opened(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "feedback.received", "case.opened")
    first = await send_feedback(admin, comment="Late again")
    second = await send_feedback(admin, comment="Still late")
    assert second["case"]["id"] == first["case"]["id"]
    messages = await outbox.all()
    assert delivered(messages, endpoint=endpoint) == [
        ("endpoint", "case.opened"),
        ("endpoint", "feedback.received"),
        ("endpoint", "feedback.received"),
    ]
    [opened] = [m for m in messages if m.event_type == "case.opened"]
    assert opened.data["case"]["feedback"] == [
        {"id": first["id"], "source": "checkout-web", "external_id": None}
    ]


async def test_a_replayed_item_writes_no_second_message(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "*")
    body = feedback_body(external_id="resp-5")
    assert (await admin.post("/v1/feedback", json=body)).status_code == 201
    await outbox.new()
    replay = await admin.post("/v1/feedback", json=body)
    assert replay.status_code == 200, replay.text
    assert await outbox.new() == []


async def test_a_batch_queues_the_same_messages_as_single_items(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "*")
    response = await admin.post(
        "/v1/feedback/batch",
        json={
            "items": [
                feedback_body(external_id="b-1", customer={"external_id": "cus_1"}),
                feedback_body(external_id="b-2", score=10, comment="Great"),
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["created", "created"]
    messages = await outbox.all()
    assert delivered(messages, endpoint=endpoint) == [
        ("endpoint", "case.opened"),
        ("endpoint", "feedback.received"),
        ("endpoint", "feedback.received"),
    ]
    received = sorted(
        m.data["external_id"] for m in messages if m.event_type == "feedback.received"
    )
    assert received == ["b-1", "b-2"]


async def test_taking_a_case_writes_case_status_changed(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "case.status_changed")
    case = await open_case(admin)
    case = await acted(admin, case, "", {"status": "in_progress"})
    [message] = await outbox.all()
    assert message.endpoint_id == endpoint["id"]
    assert message.case_id == case["id"]
    assert message.data["from"] == "open"
    assert message.data["to"] == "in_progress"
    assert_block_shows(message, case)
    assert at(message.payload["timestamp"]) == at(case["updated_at"])


async def test_assigning_a_case_writes_case_assigned(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "case.assigned")
    case = await open_case(admin)
    case = await acted(admin, case, "", {"assignee": "ana"})
    [message] = await outbox.new()
    assert message.endpoint_id == endpoint["id"]
    assert (message.data["from"], message.data["to"]) == (None, "ana")
    assert_block_shows(message, case)

    case = await acted(admin, case, "", {"assignee": None})
    [message] = await outbox.new()
    assert (message.data["from"], message.data["to"]) == ("ana", None)
    await acted(admin, case, "", {"priority": "urgent", "tags": ["vip"]})
    assert await outbox.new() == []


async def test_a_case_lifecycle_writes_its_events_for_an_endpoint_taking_all(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    everything = await register(admin, "*")
    case = await open_case(admin)
    await outbox.new()

    steps: list[tuple[str, Any, list[str]]] = [
        ("", {"status": "in_progress"}, ["case.status_changed"]),
        ("", {"status": "waiting_on_customer"}, ["case.status_changed"]),
        ("resolve", NOTICE, ["case.resolved", "case.status_changed"]),
        ("close", None, ["case.closed", "case.status_changed"]),
        ("reopen", {"reason": "It broke again"}, ["case.reopened", "case.status_changed"]),
        ("resolve", NO_NOTICE, ["case.status_changed"]),
        ("", {"status": "closed"}, ["case.closed", "case.status_changed"]),
    ]
    for action, body, types in steps:
        case = await acted(admin, case, action, body)
        messages = await outbox.new()
        assert delivered(messages, everything=everything) == [("everything", t) for t in types], (
            action,
            body,
        )
        for message in messages:
            assert_block_shows(message, case)


async def test_closing_and_reopening_write_case_closed_and_case_reopened(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.closed", "case.reopened")
    case = await open_case(admin)
    case = await acted(admin, case, "resolve", NO_NOTICE)
    assert await outbox.new() == []
    case = await acted(admin, case, "close")
    [closed] = await outbox.new()
    assert closed.event_type == "case.closed"
    assert set(closed.data) == {"case"}
    assert closed.data["case"]["status"] == "closed"

    case = await acted(admin, case, "reopen", {"reason": "The refund never came"})
    [reopened] = await outbox.new()
    assert reopened.event_type == "case.reopened"
    assert reopened.data["reason"] == "The refund never came"
    assert_block_shows(reopened, case)


async def test_case_resolved_is_written_only_when_the_customer_is_told(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved")
    quiet = await open_case(admin, customer={"external_id": "cus_1"})
    await acted(admin, quiet, "resolve", NO_NOTICE)
    assert await outbox.new() == []

    told = await open_case(admin, customer={"external_id": "cus_2", "locale": "pt-BR"})
    told = await acted(admin, told, "resolve", {**NOTICE, "summary": "internal only"})
    [message] = await outbox.new()
    assert message.event_type == "case.resolved"
    assert message.case_id == told["id"]
    assert set(message.data) == {"case", "resolution", "followup"}
    assert message.data["resolution"] == NOTICE
    assert "internal only" not in json.dumps(message.payload)
    token = message.data["followup"]["token"]
    assert message.data["followup"]["url"] == f"https://feedback.example.com/f/{token}"
    assert_block_shows(message, told)
    assert message.data["case"]["status"] == "resolved"


async def test_a_stale_if_match_writes_no_message(admin: httpx.AsyncClient, outbox: Outbox) -> None:
    await register(admin, "*")
    case = await open_case(admin)
    await outbox.new()
    await acted(admin, case, "", {"assignee": "ana"})
    await outbox.new()

    stale = await act(admin, case, "resolve", NOTICE)
    assert stale.status_code == 412, stale.text
    assert await outbox.new() == []
    assert (await read_case(admin, case["id"]))["status"] == "open"


async def test_a_move_that_is_not_allowed_writes_no_message(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "*")
    case = await open_case(admin)
    await outbox.new()
    refused = await act(admin, case, "", {"assignee": "ana", "status": "closed"})
    assert refused.status_code == 409, refused.text
    assert await outbox.new() == []
    assert (await read_case(admin, case["id"]))["assignee"] is None


# -- the customer notification ------------------------------------------------------------------


async def skipped_reason(client: httpx.AsyncClient, case_id: str) -> str:
    events = await timeline(client, case_id)
    assert events[-1]["type"] == "notification_skipped", events
    assert events[-1]["data"]["event"] == "case.resolved"
    reason: str = events[-1]["data"]["reason"]
    return reason


@pytest.mark.parametrize(
    ("customer", "resolution", "reason"),
    [
        (
            {"external_id": "cus_7", "email": "bo@example.com", "contact_consent": False},
            NOTICE,
            "no_contact_consent",
        ),
        (None, NOTICE, "customer_unreachable"),
        ({"name": "Bo", "locale": "en-GB"}, NOTICE, "customer_unreachable"),
        (
            {"external_id": "cus_7", "email": "bo@example.com"},
            NO_NOTICE,
            "agent_chose_not_to_notify",
        ),
    ],
    ids=["no-consent", "anonymous", "no-contact-details", "agent-chose"],
)
async def test_case_resolved_is_not_sent_and_the_case_says_why(
    admin: httpx.AsyncClient,
    outbox: Outbox,
    customer: dict[str, Any] | None,
    resolution: dict[str, Any],
    reason: str,
) -> None:
    await register(admin, "case.resolved")
    case = await open_case(admin, customer=customer)
    resolved = await acted(admin, case, "resolve", resolution)
    assert resolved["status"] == "resolved"
    assert await outbox.all() == []
    assert await skipped_reason(admin, case["id"]) == reason


async def test_without_a_subscribed_endpoint_the_case_says_no_endpoint(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.opened", "case.closed")
    disabled = await register(admin, "case.resolved")
    await admin.patch(f"{ENDPOINTS}/{disabled['id']}", json={"enabled": False})
    await register(admin, "case.resolved", sources=["ios-app"])
    case = await open_case(admin)
    await outbox.new()
    await acted(admin, case, "resolve", NOTICE)
    assert await outbox.new() == []
    assert await skipped_reason(admin, case["id"]) == "no_webhook_endpoint"


async def test_a_queued_notification_is_on_the_timeline_with_its_endpoint_count(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved")
    await register(admin, "*")
    case = await open_case(admin)
    await acted(admin, case, "resolve", NOTICE)
    events = await timeline(admin, case["id"])
    assert [e["type"] for e in events[-3:]] == ["status_changed", "resolved", "notification_queued"]
    assert events[-1]["data"] == {"event": "case.resolved", "endpoints": 2}
    assert events[-1]["actor"] == "test"
    resolved = [m for m in await outbox.all() if m.event_type == "case.resolved"]
    assert len(resolved) == 2
    # One token for the resolution, whichever endpoint carries it.
    assert len({m.data["followup"]["token"] for m in resolved}) == 1


async def test_the_customer_view_lists_each_notification_and_its_outcome(
    admin: httpx.AsyncClient,
) -> None:
    endpoint = await register(admin, "case.resolved")
    customer = {"external_id": "cus_5", "email": "cy@example.com"}
    skipped = await open_case(admin, customer=customer)
    await acted(admin, skipped, "resolve", NO_NOTICE)
    queued = await open_case(admin, customer=customer)  # the first is resolved: a new case
    assert queued["id"] != skipped["id"]
    await acted(admin, queued, "resolve", NOTICE)

    view = (await admin.get("/v1/customers/cus_5")).json()
    assert [(n["case_id"], n["outcome"], n["reason"]) for n in view["notifications"]] == [
        (queued["id"], "pending", None),
        (skipped["id"], "not_sent", "agent_chose_not_to_notify"),
    ]
    pending, not_sent = view["notifications"]
    assert pending["case_number"] == queued["number"]
    assert pending["endpoint_id"] == endpoint["id"]
    assert pending["message_id"] is not None
    assert pending["attempts"] == 0
    assert (not_sent["message_id"], not_sent["endpoint_id"]) == (None, None)
    by_email = (await admin.get("/v1/customers/cy@example.com")).json()
    assert by_email["notifications"] == view["notifications"]


async def test_the_customer_view_says_why_a_customer_without_consent_was_not_told(
    admin: httpx.AsyncClient,
) -> None:
    await register(admin, "case.resolved")
    case = await open_case(admin, customer={"external_id": "cus_6", "contact_consent": False})
    await acted(admin, case, "resolve", NOTICE)
    view = (await admin.get("/v1/customers/cus_6")).json()
    assert [(n["outcome"], n["reason"]) for n in view["notifications"]] == [
        ("not_sent", "no_contact_consent")
    ]


# -- the follow-up ------------------------------------------------------------------------------


async def resolved_with_token(
    client: httpx.AsyncClient, outbox: Outbox, **overrides: Any
) -> tuple[dict[str, Any], str]:
    """A case resolved with a notice to the customer, and the follow-up token its case.resolved
    message carries (an endpoint taking case.resolved must exist)."""
    case = await open_case(client, **overrides)
    case = await acted(client, case, "resolve", NOTICE)
    [message] = [
        m for m in await outbox.all() if m.event_type == "case.resolved" and m.case_id == case["id"]
    ]
    token: str = message.data["followup"]["token"]
    return case, token


def answer(case: dict[str, Any], token: str, **overrides: Any) -> dict[str, Any]:
    """The customer's answer to the follow-up question: CSAT 5 unless told otherwise."""
    body = {
        "metric": "csat",
        "score": 5,
        "comment": "Thank you, all sorted",
        "in_reply_to": {"case_id": case["id"], "token": token},
    }
    return feedback_body(**{**body, **overrides})


async def cases_of(client: httpx.AsyncClient, customer: str) -> list[str]:
    response = await client.get("/v1/cases", params={"customer": customer})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


async def test_a_followup_answer_joins_its_case_and_opens_none(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved")
    case, token = await resolved_with_token(admin, outbox)
    response = await admin.post("/v1/feedback", json=answer(case, token))
    assert response.status_code == 201, response.text
    item = response.json()
    assert item["case"] == {
        "id": case["id"],
        "number": case["number"],
        "team": case["team"],
        "status": "resolved",
    }

    after = await read_case(admin, case["id"])
    assert after["status"] == "resolved"
    assert [(f["id"], f["kind"]) for f in after["feedback"]] == [
        (item["id"], "followup"),
        (case["feedback"][0]["id"], "opened"),
    ]
    events = await timeline(admin, case["id"])
    assert events[-1]["type"] == "followup_received"
    assert events[-1]["actor"] == "customer"
    assert events[-1]["data"] == {"feedback_id": item["id"], "sentiment": "positive", "score": 5}
    assert await cases_of(admin, "cus_42") == [case["id"]]


async def test_a_negative_followup_reopens_the_resolved_case(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved", "case.reopened", "case.opened")
    case, token = await resolved_with_token(admin, outbox)
    await outbox.new()
    response = await admin.post(
        "/v1/feedback",
        json=answer(case, token, metric="nps", score=2, comment="Nothing was fixed"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["case"]["id"] == case["id"]
    assert response.json()["case"]["status"] == "open"

    after = await read_case(admin, case["id"])
    assert after["status"] == "open"
    assert after["resolution"] is None
    events = await timeline(admin, case["id"])
    assert [e["type"] for e in events[-3:]] == ["followup_received", "status_changed", "reopened"]
    assert events[-1]["data"] == {"reason": "followup_negative"}
    [reopened] = await outbox.new()
    assert reopened.event_type == "case.reopened"
    assert reopened.data["reason"] == "followup_negative"
    assert await cases_of(admin, "cus_42") == [case["id"]]


async def test_a_negative_followup_reopens_a_closed_case(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved")
    case, token = await resolved_with_token(admin, outbox)
    await acted(admin, case, "close")
    response = await admin.post("/v1/feedback", json=answer(case, token, score=1))
    assert response.status_code == 201, response.text
    assert (await read_case(admin, case["id"]))["status"] == "open"


async def test_a_followup_token_works_once(admin: httpx.AsyncClient, outbox: Outbox) -> None:
    await register(admin, "case.resolved")
    case, token = await resolved_with_token(admin, outbox)
    first = await admin.post("/v1/feedback", json=answer(case, token))
    assert first.status_code == 201, first.text
    again = await admin.post("/v1/feedback", json=answer(case, token, comment="Again"))
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "followup_used"
    after = await read_case(admin, case["id"])
    assert [f["kind"] for f in after["feedback"]] == ["followup", "opened"]


@pytest.mark.parametrize("wrong", ["token", "case"])
async def test_a_wrong_token_or_case_is_422_and_stores_nothing(
    admin: httpx.AsyncClient, outbox: Outbox, wrong: str
) -> None:
    await register(admin, "case.resolved", "feedback.received")
    case, token = await resolved_with_token(admin, outbox)
    await outbox.new()
    body = answer(case, token)
    if wrong == "token":
        body["in_reply_to"]["token"] = token[:-1] + ("A" if token[-1] != "A" else "B")
    else:
        body["in_reply_to"]["case_id"] = UNKNOWN_ID
    response = await admin.post("/v1/feedback", json=body)
    assert refused_fields(response) == ["in_reply_to.token"]

    # The item and its feedback.received message went with the failed request.
    assert await outbox.new() == []
    view = (await admin.get("/v1/customers/cus_42")).json()
    assert len(view["feedback"]) == 1
    # The right token still works.
    assert (await admin.post("/v1/feedback", json=answer(case, token))).status_code == 201


async def test_a_token_of_another_case_is_refused(admin: httpx.AsyncClient, outbox: Outbox) -> None:
    await register(admin, "case.resolved")
    first, first_token = await resolved_with_token(admin, outbox, customer={"external_id": "c1"})
    second, _ = await resolved_with_token(admin, outbox, customer={"external_id": "c2"})
    response = await admin.post("/v1/feedback", json=answer(second, first_token))
    assert refused_fields(response) == ["in_reply_to.token"]
    assert first["id"] != second["id"]


async def test_a_case_resolved_without_a_notice_takes_no_followup(
    admin: httpx.AsyncClient,
) -> None:
    await register(admin, "case.resolved")
    case = await open_case(admin)
    case = await acted(admin, case, "resolve", NO_NOTICE)
    response = await admin.post("/v1/feedback", json=answer(case, "any-token"))
    assert refused_fields(response) == ["in_reply_to.token"]


# -- messages of an endpoint --------------------------------------------------------------------


async def test_an_endpoints_messages_are_listed_newest_first_with_their_body(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "feedback.received")
    first = await send_feedback(admin, score=9, comment="Good", external_id="m-1")
    second = await send_feedback(admin, score=10, comment="Great", external_id="m-2")
    response = await admin.get(f"{ENDPOINTS}/{endpoint['id']}/messages")
    assert response.status_code == 200, response.text
    listed = response.json()["items"]
    assert [m["status"] for m in listed] == ["pending", "pending"]
    assert all(m["webhook_id"] == "msg_" + uuid.UUID(m["id"]).hex for m in listed)
    detail = (await admin.get(f"/v1/webhooks/messages/{listed[0]['id']}")).json()
    assert detail["payload"]["data"]["id"] == second["id"]
    assert detail["attempts"] == []
    older = (await admin.get(f"/v1/webhooks/messages/{listed[1]['id']}")).json()
    assert older["payload"]["data"]["id"] == first["id"]


# -- scopes -------------------------------------------------------------------------------------


def webhook_routes(endpoint_id: str, message_id: str) -> list[tuple[str, str, Any]]:
    endpoint = f"{ENDPOINTS}/{endpoint_id}"
    message = f"/v1/webhooks/messages/{message_id}"
    return [
        ("POST", ENDPOINTS, {"url": HOOK, "event_types": ["*"]}),
        ("GET", ENDPOINTS, None),
        ("GET", endpoint, None),
        ("PATCH", endpoint, {"enabled": False}),
        ("DELETE", endpoint, None),
        ("POST", f"{endpoint}/rotate-secret", None),
        ("POST", f"{endpoint}/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("GET", f"{endpoint}/messages", None),
        ("GET", message, None),
        ("POST", f"{message}/retry", None),
    ]


async def test_every_webhook_route_needs_the_admin_scope(
    admin: httpx.AsyncClient, app: FastAPI, database: BoundDatabase
) -> None:
    endpoint = await register(admin, "feedback.received")
    await send_feedback(admin, score=10, comment="Great")
    [message] = (await admin.get(f"{ENDPOINTS}/{endpoint['id']}/messages")).json()["items"]
    routes = webhook_routes(endpoint["id"], message["id"])
    for scopes in (["cases:write", "cases:read"], ["feedback:write", "feedback:read"]):
        key = auth(await make_api_key(database, *scopes))
        for method, url, body in routes:
            response = await admin.request(method, url, json=body, headers=key)
            assert response.status_code == 403, (scopes, method, url, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as anonymous:
        for method, url, body in routes:
            response = await anonymous.request(method, url, json=body)
            assert response.status_code == 401, (method, url, response.text)
    # Nothing changed: the endpoint is still there, enabled, with its one message.
    shown = (await admin.get(f"{ENDPOINTS}/{endpoint['id']}")).json()
    assert shown["enabled"] is True
    assert len((await admin.get(ENDPOINTS)).json()["items"]) == 1
