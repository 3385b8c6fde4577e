"""Endpoints under the webhook dispatcher (SPEC §5): 410 and long failure disable them, a dead
one holds up no other, and the message log lists what was sent and replays what failed."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database
from tests.builders import register_endpoint
from tests.notifications.dispatching import (
    all_messages,
    arrived,
    attempted,
    count_rows,
    dispatching,
    get_endpoint,
    get_message,
    insert_messages,
    list_messages,
    make_due,
    message_once,
    messages_once,
    post_feedback,
    webhook_ids,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("dispatcher_errors")


# -- endpoints that are gone or keep failing ----------------------------------------------------


async def test_a_410_disables_the_endpoint_and_fails_its_pending_messages(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    gone = await register_endpoint(committed_client, "feedback.received", url=receiver.url("/gone"))
    healthy = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    await post_feedback(committed_client, 3)
    messages = await all_messages(committed_client, gone["id"])
    first, *later = sorted(messages, key=lambda m: m["created_at"])
    # The later ones are not due for an hour: pending, never attempted, not in flight.
    async with committed.raw() as conn:
        await conn.execute(
            "UPDATE outbox_message SET next_attempt_at = now() + interval '1 hour' "
            "WHERE id = ANY($1::uuid[])",
            [uuid.UUID(m["id"]) for m in later],
        )
    async with dispatching(committed, settings):
        await arrived(receiver, 1, "/gone", within=10)
        await arrived(receiver, 3, "/ok", within=10)
        failed = await messages_once(
            committed_client,
            gone["id"],
            lambda ms: len(ms) == 3 and all(m["status"] == "failed" for m in ms),
        )
        await messages_once(
            committed_client,
            healthy["id"],
            lambda ms: len(ms) == 3 and all(m["status"] == "delivered" for m in ms),
        )
        await post_feedback(committed_client)  # a disabled endpoint gets no new messages
        await arrived(receiver, 4, "/ok", within=10)

    assert len(receiver.at("/gone")) == 1
    endpoint = await get_endpoint(committed_client, gone["id"])
    assert endpoint["enabled"] is False
    assert "410" in endpoint["disabled_reason"]
    by_id = {m["id"]: m for m in failed}
    assert by_id[first["id"]]["attempt_count"] == 1
    for message in later:
        assert by_id[message["id"]]["attempt_count"] == 0
        assert "410" in by_id[message["id"]]["last_error"]
    assert len(await all_messages(committed_client, gone["id"])) == 3
    assert (await get_endpoint(committed_client, healthy["id"]))["enabled"] is True


async def test_an_endpoint_failing_for_longer_than_the_limit_is_disabled(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/fail")
    )
    async with dispatching(
        committed, settings, webhook_retry_schedule="0,3600,3600", webhook_disable_after_hours=1
    ):
        await post_feedback(committed_client)
        [listed] = await all_messages(committed_client, endpoint["id"])
        await message_once(committed_client, listed["id"], attempted(1))
        failing = await get_endpoint(committed_client, endpoint["id"])
        assert failing["enabled"] is True
        assert failing["failing_since"] is not None

        # Two hours pass without a success; one more failure then disables the endpoint.
        async with committed.raw() as conn:
            await conn.execute(
                "UPDATE webhook_endpoint SET failing_since = now() - interval '2 hours' "
                "WHERE id = $1",
                uuid.UUID(endpoint["id"]),
            )
        await make_due(committed, [listed["id"]])
        await message_once(committed_client, listed["id"], attempted(2))

    disabled = await get_endpoint(committed_client, endpoint["id"])
    assert disabled["enabled"] is False
    assert "no successful delivery" in disabled["disabled_reason"]


async def test_a_success_restarts_the_failure_clock(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/fail")
    )
    async with dispatching(committed, settings, webhook_retry_schedule="0,3600"):
        await post_feedback(committed_client)
        [listed] = await all_messages(committed_client, endpoint["id"])
        await message_once(committed_client, listed["id"], attempted(1))
        assert (await get_endpoint(committed_client, endpoint["id"]))["failing_since"]

        fixed = await committed_client.patch(
            f"/v1/webhooks/endpoints/{endpoint['id']}", json={"url": receiver.url("/ok")}
        )
        assert fixed.status_code == 200, fixed.text
        await make_due(committed, [listed["id"]])
        await message_once(committed_client, listed["id"], lambda m: m["status"] == "delivered")

    healthy = await get_endpoint(committed_client, endpoint["id"])
    assert healthy["failing_since"] is None
    assert healthy["last_success_at"] is not None
    assert healthy["enabled"] is True


# -- isolation ----------------------------------------------------------------------------------


async def test_a_hung_endpoint_does_not_hold_up_the_others(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    hung = await register_endpoint(committed_client, "feedback.received", url=receiver.url("/hang"))
    healthy = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    # The hung endpoint's messages are older, so they are first in line.
    hung_ids = await insert_messages(committed, hung["id"], 8)
    healthy_ids = await insert_messages(committed, healthy["id"], 20)
    # The hung attempts end (timed out) while the dispatcher stops, after everything this test
    # looks at; how a timeout is recorded is the business of the timeout test.
    async with dispatching(
        committed,
        settings,
        check_on_stop=False,
        webhook_timeout_seconds=3.0,
        webhook_endpoint_concurrency=4,
    ):
        await arrived(receiver, 4, "/hang", within=5)
        await arrived(receiver, 20, "/ok", within=5)
        await messages_once(
            committed_client,
            healthy["id"],
            lambda ms: sum(m["status"] == "delivered" for m in ms) == 20,
        )
        # Every healthy message is delivered and recorded while the hung endpoint's first
        # attempts are still waiting for their answer: none of them has ended yet.
        hung_attempts = await count_rows(
            committed,
            "SELECT count(*) FROM delivery_attempt WHERE message_id = ANY($1::uuid[])",
            [uuid.UUID(m) for m in hung_ids],
        )
        assert hung_attempts == 0
        # The hung endpoint holds its own slots only: 4 requests, not 8.
        assert len(receiver.at("/hang")) == 4
    assert set(webhook_ids(receiver.at("/ok"))) == {f"msg_{uuid.UUID(m).hex}" for m in healthy_ids}


# -- the log, and replay ------------------------------------------------------------------------


async def test_the_message_log_lists_by_status_newest_first_and_failed_ones_can_be_replayed(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/fail")
    )
    async with dispatching(committed, settings, webhook_retry_schedule="0,3600"):
        feedback_ids = await post_feedback(committed_client, 7)
        await arrived(receiver, 7, "/fail")
        await messages_once(
            committed_client,
            endpoint["id"],
            lambda ms: len(ms) == 7 and all(m["attempt_count"] == 1 for m in ms),
        )
        # The messages in the order their feedback came.
        by_feedback = {}
        for message in await all_messages(committed_client, endpoint["id"]):
            detail = await get_message(committed_client, message["id"])
            by_feedback[detail["payload"]["data"]["id"]] = message
        order = [by_feedback[f]["id"] for f in feedback_ids]

        # Messages 0, 2, 4, 5 and 6 fail for good; 1 and 3 wait for their retry in an hour.
        failing = [order[i] for i in (0, 2, 4, 5, 6)]
        await make_due(committed, failing)
        await arrived(receiver, 12, "/fail")
        await messages_once(
            committed_client,
            endpoint["id"],
            lambda ms: sum(m["status"] == "failed" for m in ms) == 5,
        )

        failed_pages = await list_messages(committed_client, endpoint["id"], "failed", limit=2)
        assert [len(p) for p in failed_pages] == [2, 2, 1]
        assert [m["id"] for p in failed_pages for m in p] == [order[i] for i in (6, 5, 4, 2, 0)]
        pending = await all_messages(committed_client, endpoint["id"], "pending")
        assert [m["id"] for m in pending] == [order[3], order[1]]
        every_page = await list_messages(committed_client, endpoint["id"], limit=3)
        assert [len(p) for p in every_page] == [3, 3, 1]
        assert [m["id"] for p in every_page for m in p] == order[::-1]
        created = {m["id"]: m["created_at"] for p in every_page for m in p}

        # The receiver is fixed; everything that failed since message 4 is sent again.
        fixed = await committed_client.patch(
            f"/v1/webhooks/endpoints/{endpoint['id']}", json={"url": receiver.url("/ok")}
        )
        assert fixed.status_code == 200, fixed.text
        recovered = await committed_client.post(
            f"/v1/webhooks/endpoints/{endpoint['id']}/recover",
            json={"since": created[order[4]]},
        )
        assert recovered.status_code == 200, recovered.text
        assert recovered.json() == {"requeued": 3}
        await arrived(receiver, 3, "/ok", within=5)
        await messages_once(
            committed_client,
            endpoint["id"],
            lambda ms: sum(m["status"] == "delivered" for m in ms) == 3,
        )
        wid = {m: f"msg_{uuid.UUID(m).hex}" for m in order}
        assert sorted(webhook_ids(receiver.at("/ok"))) == sorted(wid[order[i]] for i in (4, 5, 6))

        # One older failed message, replayed by hand.
        retried = await committed_client.post(f"/v1/webhooks/messages/{order[0]}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"
        await arrived(receiver, 4, "/ok", within=5)
        replayed = await message_once(
            committed_client, order[0], lambda m: m["status"] == "delivered"
        )

    assert webhook_ids(receiver.at("/ok"))[3] == wid[order[0]]
    assert [a["status_code"] for a in replayed["attempts"]] == [500, 500, 200]
    statuses = {m["id"]: m["status"] for m in await all_messages(committed_client, endpoint["id"])}
    assert [statuses[m] for m in order] == [
        "delivered",
        "pending",
        "failed",
        "pending",
        "delivered",
        "delivered",
        "delivered",
    ]
    assert len(receiver.at("/fail")) == 12
