"""The webhook dispatcher against a real receiver on 127.0.0.1 (SPEC §5): signed deliveries,
and failures on the schedule (500, timeout, 429 with Retry-After, a reset, a redirect), each
recorded in the message log."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.core.config import Settings
from app.core.db import Database
from app.notifications.dispatcher import Dispatcher
from app.worker import finish_within
from tests.builders import register_endpoint
from tests.notifications.dispatching import (
    all_messages,
    arrived,
    attempted,
    dispatching,
    get_endpoint,
    insert_messages,
    make_due,
    message_once,
    post_feedback,
    seconds_until_next_attempt,
    webhook_ids,
)
from tests.receiver import Receiver, running_receiver

pytestmark = pytest.mark.usefixtures("dispatcher_errors")


# -- signatures and headers ---------------------------------------------------------------------


async def test_a_delivery_verifies_with_standard_webhooks(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    async with dispatching(committed, settings):
        [feedback_id] = await post_feedback(committed_client)
        await arrived(receiver, 1, "/ok", within=10)
        [listed] = await all_messages(committed_client, endpoint["id"])
        delivered = await message_once(
            committed_client, listed["id"], lambda m: m["status"] == "delivered"
        )
    [delivery] = receiver.at("/ok")
    payload = delivery.verify(endpoint["secret"])
    assert payload == delivered["payload"]
    assert payload["type"] == "feedback.received"
    assert payload["data"]["id"] == feedback_id
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["webhook-id"] == listed["webhook_id"]
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60
    [attempt] = delivered["attempts"]
    assert (attempt["status_code"], attempt["response_excerpt"], attempt["error"]) == (
        200,
        "ok",
        None,
    )


async def test_every_attempt_is_signed_and_sends_the_same_id_and_body(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/fail")
    )
    other = await register_endpoint(committed_client, "feedback.received", url=receiver.url("/ok"))
    async with dispatching(committed, settings):
        [feedback_id] = await post_feedback(committed_client)
        await arrived(receiver, 3, "/fail")
        await arrived(receiver, 1, "/ok")
        [listed] = await all_messages(committed_client, endpoint["id"])
        await message_once(committed_client, listed["id"], lambda m: m["status"] == "failed")

    deliveries = receiver.at("/fail")
    assert len(deliveries) == 3  # the schedule "0,0,0": three attempts, then failed
    for delivery in deliveries:
        payload = delivery.verify(endpoint["secret"])
        assert payload["type"] == "feedback.received"
        assert payload["data"]["id"] == feedback_id
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.headers["webhook-signature"].startswith("v1,")
        assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60
        # Signed with this endpoint's secret only: another endpoint's secret does not verify.
        with pytest.raises(WebhookVerificationError):
            Webhook(other["secret"]).verify(delivery.body, delivery.headers)
    assert {d.body for d in deliveries} == {deliveries[0].body}
    assert set(webhook_ids(deliveries)) == {listed["webhook_id"]}
    # The other endpoint got the same event as its own message, under its own id.
    [elsewhere] = receiver.at("/ok")
    assert elsewhere.verify(other["secret"])["data"]["id"] == feedback_id
    assert elsewhere.headers["webhook-id"] != listed["webhook_id"]


# -- failures, the schedule and the log ---------------------------------------------------------


async def test_a_500_is_retried_on_the_schedule_and_then_failed(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/fail")
    )
    async with dispatching(committed, settings, webhook_retry_schedule="0,100,200"):
        await post_feedback(committed_client)
        await arrived(receiver, 1, "/fail", within=10)
        [listed] = await all_messages(committed_client, endpoint["id"])
        message_id = listed["id"]

        first = await message_once(committed_client, message_id, attempted(1))
        assert 80 <= seconds_until_next_attempt(first) <= 121  # 100 s ± 20%
        assert first["attempt_count"] == 1
        assert first["last_error"] == "HTTP 500"

        await make_due(committed, [message_id])
        second = await message_once(committed_client, message_id, attempted(2))
        assert 160 <= seconds_until_next_attempt(second) <= 241  # 200 s ± 20%

        await make_due(committed, [message_id])
        failed = await message_once(committed_client, message_id, attempted(3))

    assert len(receiver.at("/fail")) == 3
    assert failed["status"] == "failed"
    assert failed["failed_at"] is not None
    assert failed["next_attempt_at"] is None
    assert failed["attempt_count"] == 3
    for attempt in failed["attempts"]:
        assert attempt["status_code"] == 500
        assert attempt["response_excerpt"] == "it broke"
        assert attempt["error"] == "HTTP 500"
        assert isinstance(attempt["duration_ms"], int)
        assert 0 <= attempt["duration_ms"] < 2000
    times = [datetime.fromisoformat(a["at"]) for a in failed["attempts"]]
    assert times == sorted(times)


async def test_retry_delays_are_jittered_within_20_percent(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/fail")
    )
    ids = await insert_messages(committed, endpoint["id"], 12)
    async with dispatching(committed, settings, webhook_retry_schedule="0,100"):
        await arrived(receiver, 12, "/fail")
        messages = [await message_once(committed_client, m, attempted(1)) for m in ids]
    delays = [seconds_until_next_attempt(m) for m in messages]
    assert all(80 <= d <= 121 for d in delays), delays
    # Jitter spreads them out, so a failed batch does not come back all at once.
    assert max(delays) - min(delays) > 1, delays


async def test_a_long_response_is_logged_up_to_2_kib(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/big")
    )
    async with dispatching(committed, settings):
        await post_feedback(committed_client)
        await arrived(receiver, 1, "/big", within=10)
        [listed] = await all_messages(committed_client, endpoint["id"])
        delivered = await message_once(
            committed_client, listed["id"], lambda m: m["status"] == "delivered"
        )
    [attempt] = delivered["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["response_excerpt"] == "x" * 2048  # the receiver sent 10 KiB


async def test_a_redirect_is_a_failure_and_is_not_followed(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/redirect")
    )
    async with dispatching(committed, settings, webhook_retry_schedule="0"):
        await post_feedback(committed_client)
        await arrived(receiver, 1, "/redirect", within=10)
        [listed] = await all_messages(committed_client, endpoint["id"])
        failed = await message_once(
            committed_client, listed["id"], lambda m: m["status"] == "failed"
        )
    [attempt] = failed["attempts"]
    # Followed, the attempt would have ended at the Location (a closed port) instead.
    assert attempt["status_code"] == 302
    assert attempt["error"] == "HTTP 302"
    assert [r.path for r in receiver.received] == ["/redirect"]
    assert (await get_endpoint(committed_client, endpoint["id"]))["failing_since"] is not None


async def test_a_timeout_is_retried_no_sooner_than_a_minute_later(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/hang")
    )
    async with dispatching(committed, settings, webhook_timeout_seconds=0.5):
        await post_feedback(committed_client)
        await arrived(receiver, 1, "/hang", within=10)
        [listed] = await all_messages(committed_client, endpoint["id"])
        message = await message_once(committed_client, listed["id"], attempted(1))
    [attempt] = message["attempts"]
    assert attempt["status_code"] is None
    assert "timed out" in attempt["error"]
    assert attempt["duration_ms"] >= 500
    # The schedule says "at once" (0,0,0), but a timeout waits at least a minute.
    assert 60 <= seconds_until_next_attempt(message) <= 65
    assert len(receiver.at("/hang")) == 1


async def test_a_delivery_in_flight_is_cut_short_when_the_grace_runs_out(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    """SIGTERM's grace over, a delivery still waiting on its receiver ends with it, rather than
    holding the process up to the webhook timeout (a minute here); it is on no record, so its
    lease runs out and it is sent again."""
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/hang")
    )
    dispatcher = Dispatcher(committed, settings.model_copy(update={"webhook_timeout_seconds": 60}))
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    await post_feedback(committed_client)
    await arrived(receiver, 1, "/hang", within=10)
    stop.set()
    # The bound only ends the test if the grace does not (it would wait out the minute).
    async with asyncio.timeout(20):
        await finish_within(0.1, [running])
    assert running.cancelled()
    assert not dispatcher.tasks
    [message] = await all_messages(committed_client, endpoint["id"])
    assert (message["status"], message["attempt_count"]) == ("pending", 0)


@pytest.mark.parametrize(
    ("retry_after", "at_least"),
    [("120", 120), ("0", 60)],
    ids=["retry-after-120", "retry-after-0"],
)
async def test_a_429_is_retried_no_sooner_than_retry_after_or_a_minute(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    retry_after: str,
    at_least: float,
) -> None:
    async with running_receiver(retry_after=retry_after) as receiver:
        endpoint = await register_endpoint(
            committed_client, "feedback.received", url=receiver.url("/busy")
        )
        async with dispatching(committed, settings):
            await post_feedback(committed_client)
            await arrived(receiver, 1, "/busy", within=10)
            [listed] = await all_messages(committed_client, endpoint["id"])
            message = await message_once(committed_client, listed["id"], attempted(1))
    [attempt] = message["attempts"]
    assert attempt["status_code"] == 429
    assert attempt["response_excerpt"] == "slow down"
    assert at_least <= seconds_until_next_attempt(message) <= at_least + 5


async def test_a_connection_reset_is_retried_on_the_schedule_with_its_error(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/reset")
    )
    async with dispatching(committed, settings, webhook_retry_schedule="0,10"):
        await post_feedback(committed_client)
        await arrived(receiver, 1, "/reset", within=10)
        [listed] = await all_messages(committed_client, endpoint["id"])
        message = await message_once(committed_client, listed["id"], attempted(1))
        assert message["status"] == "pending"
        # Not a slow failure: the schedule's 10 s ± 20%, not the one-minute floor.
        assert 8 <= seconds_until_next_attempt(message) <= 13
        await make_due(committed, [listed["id"]])
        failed = await message_once(committed_client, listed["id"], attempted(2))
    assert failed["status"] == "failed"
    for attempt in failed["attempts"]:
        assert attempt["status_code"] is None
        assert attempt["error"]
    assert failed["last_error"] == failed["attempts"][-1]["error"]
