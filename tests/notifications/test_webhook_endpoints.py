"""Webhook endpoints through HTTP: registering, the SSRF guard, enabling, rotating secrets; the
outbox messages that feedback and case changes write for them; the customer notification and
its follow-up; scopes (SPEC §5).

Most tests run in the rolled-back transaction, where no dispatcher runs: they read what was
queued from the `outbox_message` table. Rotation is proved end to end, with a real dispatcher
posting to a real receiver whose signatures the `standardwebhooks` package checks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from app.core.config import Settings
from app.core.db import Database
from app.notifications.dispatcher import Dispatcher
from tests.builders import (
    send_feedback,
)
from tests.notifications.helpers import (
    ENDPOINT_FIELDS,
    ENDPOINTS,
    HOOK,
    PUBLIC_HOOK,
    UNKNOWN_ID,
    Outbox,
    admin_client,
    at,
    is_secret,
    refused_fields,
    register,
)
from tests.receiver import Receiver

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
