"""Webhook signing secrets at rest (SPEC §5, §7): sealed with FEEDBACK_SECRET_KEY when it is set,
shown only at creation and rotation, still verifiable with the `standardwebhooks` package
through a rotation; rows kept in clear from before the key keep signing and are sealed when
next written; a previous secret is deleted from its row once its grace period has ended.

The stored columns are read straight from `webhook_endpoint`: that is what someone who got
hold of the database, or of a backup, would see.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import WebhookVerificationError

from app.core.config import Settings
from app.core.crypto import SEALED_PREFIX
from app.core.db import Database
from app.notifications.dispatcher import Dispatcher
from tests.builders import eventually, feedback_body, register_endpoint
from tests.notifications.helpers import admin_client
from tests.receiver import Receiver

ENDPOINTS = "/v1/webhooks/endpoints"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Secrets sealed with KEY; a failed message is tried again only after 100 s."""
    return settings.model_copy(update={"secret_key": KEY, "webhook_retry_schedule": "0,100"})


@asynccontextmanager
async def dispatching(
    database: Database, settings: Settings, **changes: Any
) -> AsyncIterator[None]:
    """A dispatcher running in this event loop, with these settings changed, until the block
    ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(database, settings.model_copy(update=changes)).run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def rotate(client: httpx.AsyncClient, endpoint_id: str) -> str:
    response = await client.post(f"{ENDPOINTS}/{endpoint_id}/rotate-secret")
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


async def stored(database: Database, endpoint_id: str) -> dict[str, Any]:
    """The endpoint's secret columns as the database holds them."""
    async with database.raw() as conn:
        row = await conn.fetchrow(
            "SELECT secret, previous_secret, previous_secret_expires_at FROM webhook_endpoint "
            "WHERE id = $1",
            uuid.UUID(endpoint_id),
        )
    assert row is not None
    return dict(row)


async def post_feedback(client: httpx.AsyncClient) -> str:
    body = feedback_body(score=10, external_id=f"resp-{uuid.uuid4().hex}")
    response = await client.post("/v1/feedback", json=body)
    assert response.status_code == 201, response.text
    feedback_id: str = response.json()["id"]
    return feedback_id


def assert_sealed(value: str, *clear: str) -> None:
    assert value.startswith(SEALED_PREFIX)
    for secret in clear:
        assert secret not in value
        # Nor its key material without the prefix.
        assert secret.removeprefix("whsec_") not in value


# -- stored sealed, shown twice -----------------------------------------------------------------


async def test_with_a_key_the_stored_secrets_are_never_the_clear_ones(
    admin: httpx.AsyncClient, database: Database
) -> None:
    endpoint = await register_endpoint(admin, "feedback.received", url="http://127.0.0.1:9/hooks")
    first = endpoint["secret"]
    assert first.startswith("whsec_")
    assert_sealed((await stored(database, endpoint["id"]))["secret"], first)

    second = await rotate(admin, endpoint["id"])
    assert second.startswith("whsec_")
    assert second != first
    row = await stored(database, endpoint["id"])
    assert_sealed(row["secret"], first, second)
    assert_sealed(row["previous_secret"], first, second)

    shown = await admin.get(f"{ENDPOINTS}/{endpoint['id']}")
    assert "secret" not in shown.json()
    listed = await admin.get(ENDPOINTS)
    assert all("secret" not in e for e in listed.json()["items"])


async def test_without_a_key_secrets_are_stored_as_they_are(
    settings: Settings, database: Database
) -> None:
    async with admin_client(settings, database, secret_key=None) as no_key:
        endpoint = await register_endpoint(
            no_key, "feedback.received", url="http://127.0.0.1:9/hooks"
        )
    assert (await stored(database, endpoint["id"]))["secret"] == endpoint["secret"]


# -- signing with sealed secrets ----------------------------------------------------------------


@pytest.mark.usefixtures("dispatcher")
async def test_sealed_secrets_sign_what_standard_webhooks_verifies_across_a_rotation(
    committed_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    before = await post_feedback(committed_client)
    await receiver.wait_for(1, "/ok")
    # The same dispatcher, which has opened the first secret, now signs with both.
    rotated = await rotate(committed_client, endpoint["id"])
    after = await post_feedback(committed_client)
    await receiver.wait_for(2, "/ok")

    first, second = receiver.at("/ok")
    assert first.verify(endpoint["secret"])["data"]["id"] == before
    with pytest.raises(WebhookVerificationError):
        first.verify(rotated)
    assert len(second.headers["webhook-signature"].split()) == 2
    for secret in (endpoint["secret"], rotated):
        assert second.verify(secret)["data"]["id"] == after


async def test_a_secret_kept_in_clear_from_before_the_key_signs_and_is_sealed_when_next_written(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    async with admin_client(settings, committed, secret_key=None) as before_the_key:
        endpoint = await register_endpoint(
            before_the_key, "feedback.received", url=receiver.url("/ok")
        )
    secret = endpoint["secret"]
    assert (await stored(committed, endpoint["id"]))["secret"] == secret

    async with dispatching(committed, settings):
        await post_feedback(committed_client)
        await receiver.wait_for(1, "/ok")
        assert receiver.at("/ok")[0].verify(secret)["type"] == "feedback.received"

        # Any change to the endpoint, with the key set, seals what it holds.
        changed = await committed_client.patch(
            f"{ENDPOINTS}/{endpoint['id']}", json={"description": "CRM bridge"}
        )
        assert changed.status_code == 200, changed.text
        assert "secret" not in changed.json()
        assert_sealed((await stored(committed, endpoint["id"]))["secret"], secret)
        await post_feedback(committed_client)
        await receiver.wait_for(2, "/ok")
        assert receiver.at("/ok")[1].verify(secret)["type"] == "feedback.received"


async def test_a_rotation_seals_the_clear_secret_it_keeps_as_the_previous_one(
    committed_client: httpx.AsyncClient, committed: Database, settings: Settings
) -> None:
    async with admin_client(settings, committed, secret_key=None) as before_the_key:
        endpoint = await register_endpoint(
            before_the_key, "feedback.received", url="http://127.0.0.1:9/hooks"
        )
    rotated = await rotate(committed_client, endpoint["id"])
    row = await stored(committed, endpoint["id"])
    assert_sealed(row["previous_secret"], endpoint["secret"])
    assert_sealed(row["secret"], rotated)


async def test_a_sealed_secret_without_the_key_is_an_attempt_with_its_error_and_retried(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    # The key was taken away from the dispatcher: it cannot sign, and says so on each attempt.
    async with dispatching(committed, settings, secret_key=None):
        await post_feedback(committed_client)
        [listed] = (await committed_client.get(f"{ENDPOINTS}/{endpoint['id']}/messages")).json()[
            "items"
        ]

        async def attempted() -> dict[str, Any]:
            response = await committed_client.get(f"/v1/webhooks/messages/{listed['id']}")
            message: dict[str, Any] = response.json()
            return message if message["attempt_count"] and message["attempts"] else {}

        message = await eventually(attempted)
    [attempt] = message["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"] == (
        "SecretKeyError: a secret is encrypted but FEEDBACK_SECRET_KEY is not set"
    )
    assert message["status"] == "pending"
    assert message["next_attempt_at"] is not None
    assert receiver.received == []


# -- the end of the grace period ----------------------------------------------------------------


async def test_the_previous_secret_is_deleted_from_its_row_when_its_grace_ends(
    committed_client: httpx.AsyncClient, committed: Database, settings: Settings
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url="http://127.0.0.1:9/hooks"
    )
    other = await register_endpoint(
        committed_client, "feedback.received", url="http://127.0.0.1:9/other"
    )
    await rotate(committed_client, endpoint["id"])
    await rotate(committed_client, other["id"])
    row = await stored(committed, endpoint["id"])
    expires: datetime = row["previous_secret_expires_at"]
    assert row["previous_secret"] is not None
    dispatcher = Dispatcher(committed, settings)

    # The clock is driven: a minute before the end of the grace period, nothing goes.
    assert await dispatcher.forget_expired_secrets(expires - timedelta(minutes=1)) == 0
    assert (await stored(committed, endpoint["id"]))["previous_secret"] is not None

    # The other endpoint's grace ends later: it keeps its previous secret.
    async with committed.raw() as conn:
        await conn.execute(
            "UPDATE webhook_endpoint SET previous_secret_expires_at = $2 WHERE id = $1",
            uuid.UUID(other["id"]),
            expires + timedelta(hours=1),
        )
    assert await dispatcher.forget_expired_secrets(expires + timedelta(seconds=1)) == 1
    gone = await stored(committed, endpoint["id"])
    assert (gone["previous_secret"], gone["previous_secret_expires_at"]) == (None, None)
    assert gone["secret"] == row["secret"]
    assert (await stored(committed, other["id"]))["previous_secret"] is not None


async def test_a_running_dispatcher_deletes_a_previous_secret_whose_grace_has_ended(
    committed: Database, settings: Settings
) -> None:
    async with admin_client(settings, committed, webhook_secret_grace_hours=0) as no_grace:
        endpoint = await register_endpoint(
            no_grace, "feedback.received", url="http://127.0.0.1:9/hooks"
        )
        await rotate(no_grace, endpoint["id"])
    assert (await stored(committed, endpoint["id"]))["previous_secret"] is not None

    async def deleted() -> bool:
        return (await stored(committed, endpoint["id"]))["previous_secret"] is None

    async with dispatching(committed, settings):
        await eventually(deleted)
