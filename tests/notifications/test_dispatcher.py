"""The webhook dispatcher against a real receiver on 127.0.0.1 (SPEC §5): signed deliveries,
the retry schedule and its floors, redirects, 410 and long failure, isolation of a dead
endpoint, the message log and replay, and several dispatchers (tasks or `closeloop worker`
processes, one of them killed) sharing one outbox. Faults (a Retry-After of any form, an answer
that breaks HTTP, an exception while sending, a database that will not record) are attempts on
record, retried on the schedule: the receiver counts what was sent, the message log what was
recorded, and they agree.

Messages come the way users make them (an endpoint registered over HTTP, feedback posted), or,
for large counts, straight into `outbox_message`. The clock is driven, not waited for: a
retry falls due when the test sets its `next_attempt_at` to now.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.core.config import Settings
from app.core.db import Database
from app.notifications.dispatcher import Dispatcher
from app.notifications.signing import new_secret
from tests.builders import eventually as poll
from tests.builders import feedback_body, register_endpoint
from tests.receiver import Received, Receiver, running_receiver

CLOSELOOP = Path(sys.executable).parent / "closeloop"
T = TypeVar("T")


# What the dispatcher logged as errors during the current test: claiming or recording failed.
_dispatcher_errors: list[logging.LogRecord] = []


class _ErrorRecords(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _dispatcher_errors.append(record)


@pytest.fixture(autouse=True)
def dispatcher_errors() -> Iterator[None]:
    """Every wait in these tests fails at once, and with its cause, if the dispatcher could
    not claim or record (otherwise it would only show as a wait running out)."""
    handler = _ErrorRecords(logging.ERROR)
    dispatcher_logger = logging.getLogger("app.notifications.dispatcher")
    dispatcher_logger.addHandler(handler)
    try:
        yield
    finally:
        dispatcher_logger.removeHandler(handler)
        _dispatcher_errors.clear()


class DispatcherFailed(AssertionError):
    """The dispatcher logged an error: it could not claim or record."""


def assert_no_dispatcher_errors() -> None:
    if _dispatcher_errors:
        record = _dispatcher_errors[0]
        cause = record.exc_info[1] if record.exc_info else None
        raise DispatcherFailed(f"the dispatcher logged {record.getMessage()!r}: {cause!r}")


async def eventually(check: Callable[[], Awaitable[T]], within: float = 10) -> T:
    """`builders.eventually`, failing at once when the dispatcher logs an error."""

    async def checked() -> T:
        assert_no_dispatcher_errors()
        return await check()

    return await poll(checked, within)


async def arrived(receiver: Receiver, count: int, path: str, within: float = 5) -> None:
    """`receiver.wait_for`, failing at once when the dispatcher logs an error."""

    async def enough() -> bool:
        return len(receiver.at(path)) >= count

    await eventually(enough, within)


@contextlib.asynccontextmanager
async def dispatching(
    database: Database, settings: Settings, *, check_on_stop: bool = True, **overrides: Any
) -> AsyncIterator[Dispatcher]:
    """A dispatcher running in this event loop until the block ends (then it finishes what is
    in flight, bounded by the timeout). Unless told otherwise, it must not have logged an error
    by the time it has stopped."""
    dispatcher = Dispatcher(database, settings.model_copy(update=overrides))
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    if check_on_stop:
        assert_no_dispatcher_errors()


# -- what a user does and sees ------------------------------------------------------------------


async def post_feedback(client: httpx.AsyncClient, count: int = 1) -> list[str]:
    """Post `count` positive items (no cases); answer their ids, in order."""
    ids = []
    for _ in range(count):
        body = feedback_body(score=10, external_id=f"resp-{uuid.uuid4().hex}")
        response = await client.post("/v1/feedback", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def list_messages(
    client: httpx.AsyncClient, endpoint_id: str, status: str | None = None, limit: int = 100
) -> list[list[dict[str, Any]]]:
    """Every page of the endpoint's message log, following the cursor."""
    pages: list[list[dict[str, Any]]] = []
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = status
    while True:
        response = await client.get(f"/v1/webhooks/endpoints/{endpoint_id}/messages", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        if page["next_cursor"] is None:
            return pages
        params["cursor"] = page["next_cursor"]


async def all_messages(
    client: httpx.AsyncClient, endpoint_id: str, status: str | None = None
) -> list[dict[str, Any]]:
    return [m for page in await list_messages(client, endpoint_id, status) for m in page]


async def get_message(client: httpx.AsyncClient, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/webhooks/messages/{message_id}")
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()
    return message


async def get_endpoint(client: httpx.AsyncClient, endpoint_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/webhooks/endpoints/{endpoint_id}")
    assert response.status_code == 200, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def message_if(
    client: httpx.AsyncClient, message_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The message if `check` holds for it, else {}."""
    message = await get_message(client, message_id)
    return message if check(message) else {}


async def message_once(
    client: httpx.AsyncClient,
    message_id: str,
    check: Callable[[dict[str, Any]], bool],
    within: float = 10,
) -> dict[str, Any]:
    """The message, as soon as `check` holds for it."""
    return await eventually(lambda: message_if(client, message_id, check), within)


async def messages_once(
    client: httpx.AsyncClient,
    endpoint_id: str,
    check: Callable[[list[dict[str, Any]]], bool],
    within: float = 10,
) -> list[dict[str, Any]]:
    """The endpoint's messages, as soon as `check` holds for them."""

    async def probe() -> list[dict[str, Any]]:
        messages = await all_messages(client, endpoint_id)
        return messages if check(messages) else []

    return await eventually(probe, within)


def attempted(count: int) -> Callable[[dict[str, Any]], bool]:
    # Both: the API reads the message, then its attempts, each in a snapshot of its own, so
    # an attempt recorded in between shows beside the message as it was before it.
    return lambda message: message["attempt_count"] >= count and len(message["attempts"]) >= count


def seconds_until_next_attempt(message: dict[str, Any]) -> float:
    """From the last attempt to the next one, as the message log shows them."""
    assert message["status"] == "pending", message
    last = datetime.fromisoformat(message["attempts"][-1]["at"])
    due = datetime.fromisoformat(message["next_attempt_at"])
    return (due - last).total_seconds()


def webhook_ids(received: list[Received]) -> list[str]:
    return [r.headers["webhook-id"] for r in received]


# -- the database, for large counts and for driving the clock -----------------------------------


async def insert_messages(database: Database, endpoint_id: str, count: int) -> list[str]:
    """`count` due feedback.received messages for the endpoint, oldest first."""
    async with database.raw() as conn:
        rows = await conn.fetch(
            "INSERT INTO outbox_message (id, endpoint_id, event_type, body, case_id, status, "
            "attempts, tries, next_attempt_at, created_at) "
            "SELECT gen_random_uuid(), $1, 'feedback.received', "
            "convert_to(json_build_object('type', 'feedback.received', 'timestamp', now(), "
            "'data', json_build_object('n', n))::text, 'UTF8'), NULL, 'pending', 0, 0, now(), "
            "now() + n * interval '1 microsecond' "
            "FROM generate_series(1, $2) AS n ORDER BY n RETURNING id",
            uuid.UUID(endpoint_id),
            count,
        )
    return [str(row["id"]) for row in rows]


async def make_due(database: Database, message_ids: list[str]) -> None:
    """Drive the clock: the messages' next attempts fall due now."""
    async with database.raw() as conn:
        await conn.execute(
            "UPDATE outbox_message SET next_attempt_at = now() WHERE id = ANY($1::uuid[])",
            [uuid.UUID(m) for m in message_ids],
        )


async def count_rows(database: Database, query: str, *args: Any) -> int:
    async with database.raw() as conn:
        value = await conn.fetchval(query, *args)
    return int(value)


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


# -- faults: recorded as attempts, never looped -------------------------------------------------


def in_ten_minutes(*, zone: bool) -> Callable[[], str]:
    """A Retry-After: the HTTP date ten minutes from when the test runs, with or without GMT."""

    def header() -> str:
        at = datetime.now(UTC) + timedelta(minutes=10)
        text = email.utils.format_datetime(at, usegmt=True)
        return text if zone else text.removesuffix(" GMT")

    return header


@pytest.mark.parametrize(
    ("retry_after", "at_least", "at_most"),
    [
        (in_ten_minutes(zone=True), 590, 605),
        (in_ten_minutes(zone=False), 590, 605),
        (lambda: "Fri, 31 Dec 9999 23:59:59 GMT", 86_400, 86_405),
        (lambda: "9" * 5000, 86_400, 86_405),
        (lambda: "in a while", 60, 65),
        (lambda: "²", 60, 65),
    ],
    ids=["date", "date-without-zone", "date-far-away", "huge-number", "garbage", "not-ascii"],
)
async def test_any_retry_after_is_an_attempt_retried_no_sooner_than_it_says_or_a_day(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    retry_after: Callable[[], str],
    at_least: float,
    at_most: float,
) -> None:
    async with running_receiver(retry_after=retry_after()) as receiver:
        endpoint = await register_endpoint(
            committed_client, "feedback.received", url=receiver.url("/busy")
        )
        async with dispatching(committed, settings):
            await post_feedback(committed_client)
            await arrived(receiver, 1, "/busy", within=10)
            [listed] = await all_messages(committed_client, endpoint["id"])
            message = await message_once(committed_client, listed["id"], attempted(1))
        assert len(receiver.at("/busy")) == 1
    [attempt] = message["attempts"]
    assert (attempt["status_code"], attempt["error"]) == (429, "HTTP 429")
    # Not understood: the minute a 429 waits anyway; understood: what it says, at most a day.
    assert at_least <= seconds_until_next_attempt(message) <= at_most


@pytest.mark.parametrize(
    ("answer", "status_code"),
    [
        ("not-http", None),
        ("bad-status-line", None),
        ("header-without-colon", None),
        ("bad-content-length", None),
        ("huge-header", None),
        # A 2xx whose answer then breaks off is not a success: sending again is the safe side.
        ("bad-chunk", 200),
        ("cut-short", 200),
        ("binary-retry-after", 503),
    ],
)
async def test_an_answer_that_breaks_http_is_an_attempt_retried_on_the_schedule(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
    answer: str,
    status_code: int | None,
) -> None:
    path = f"/raw/{answer}"
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url(path)
    )
    async with dispatching(committed, settings, webhook_retry_schedule="0,100"):
        await post_feedback(committed_client)
        await arrived(receiver, 1, path, within=10)
        [listed] = await all_messages(committed_client, endpoint["id"])
        message = await message_once(committed_client, listed["id"], attempted(1))
    assert len(receiver.at(path)) == 1
    [attempt] = message["attempts"]
    assert attempt["status_code"] == status_code
    assert attempt["error"]
    assert message["last_error"] == attempt["error"]
    assert message["attempt_count"] == 1
    assert 80 <= seconds_until_next_attempt(message) <= 121  # the schedule's 100 s ± 20%


async def test_an_answer_the_database_cannot_store_as_text_is_stored_readable(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/raw/nul-in-body")
    )
    async with dispatching(committed, settings):
        await post_feedback(committed_client)
        [listed] = await all_messages(committed_client, endpoint["id"])
        delivered = await message_once(
            committed_client, listed["id"], lambda m: m["status"] == "delivered"
        )
    [attempt] = delivered["attempts"]
    # NUL (which PostgreSQL text refuses) and bytes that are not UTF-8 are replaced.
    assert attempt["response_excerpt"] == "ok\ufffd\ufffd\ufffd\ufffd!"
    assert len(receiver.at("/raw/nul-in-body")) == 1


async def test_a_fault_while_sending_is_an_attempt_logged_once_and_retried(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    # A secret that signing chokes on: any fault in sending, a bug among them, goes this way.
    async with committed.raw() as conn:
        await conn.execute(
            "UPDATE webhook_endpoint SET secret = 'whsec_not*base64' WHERE id = $1",
            uuid.UUID(endpoint["id"]),
        )
    async with dispatching(
        committed, settings, check_on_stop=False, webhook_retry_schedule="0,100"
    ):
        await post_feedback(committed_client)
        [listed] = await all_messages(committed_client, endpoint["id"])
        message = await poll(lambda: message_if(committed_client, listed["id"], attempted(1)))
        assert [r.getMessage() for r in _dispatcher_errors] == [
            f"sending webhook message {listed['id']} failed unexpectedly"
        ]
        _dispatcher_errors.clear()
        [attempt] = message["attempts"]
        assert attempt["status_code"] is None
        assert "base64" in attempt["error"]
        assert 80 <= seconds_until_next_attempt(message) <= 121
        assert receiver.received == []

        good = new_secret()
        async with committed.raw() as conn:
            await conn.execute(
                "UPDATE webhook_endpoint SET secret = $2 WHERE id = $1",
                uuid.UUID(endpoint["id"]),
                good,
            )
        await make_due(committed, [listed["id"]])
        delivered = await message_once(
            committed_client, listed["id"], lambda m: m["status"] == "delivered"
        )
    assert_no_dispatcher_errors()
    assert [a["status_code"] for a in delivered["attempts"]] == [None, 200]
    [delivery] = receiver.at("/ok")
    assert delivery.verify(good)["type"] == "feedback.received"


@contextlib.asynccontextmanager
async def attempts_refused(database: Database, condition: str) -> AsyncIterator[None]:
    """PostgreSQL refuses to store a delivery attempt while `condition` (SQL about the row,
    NEW) holds, as a database refuses a write: a trigger, removed afterwards. The sequence
    `test_refusals` counts, outside any transaction, the rows it was asked about."""
    async with database.raw() as conn:
        await conn.execute(
            "CREATE SEQUENCE test_refusals; "
            "CREATE FUNCTION test_refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN IF {condition} THEN RAISE EXCEPTION 'refused by the test'; END IF; "
            "RETURN NEW; END $$; "
            "CREATE TRIGGER test_refuse_attempt BEFORE INSERT ON delivery_attempt "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_attempt()"
        )
    try:
        yield
    finally:
        async with database.raw() as conn:
            await conn.execute(
                "DROP TRIGGER test_refuse_attempt ON delivery_attempt; "
                "DROP FUNCTION test_refuse_attempt(); DROP SEQUENCE test_refusals"
            )


async def test_outcomes_that_cannot_be_recorded_at_first_are_recorded_once_later(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    ids = await insert_messages(committed, endpoint["id"], 5)
    # The first two tries to record fail, as while the database restarts.
    async with (
        attempts_refused(committed, "nextval('test_refusals') <= 2"),
        dispatching(committed, settings),
    ):
        await arrived(receiver, 5, "/ok")
        await messages_once(
            committed_client,
            endpoint["id"],
            lambda ms: all(m["status"] == "delivered" for m in ms),
        )
    assert sorted(webhook_ids(receiver.received)) == sorted(f"msg_{uuid.UUID(m).hex}" for m in ids)
    for message_id in ids:
        message = await get_message(committed_client, message_id)
        assert [a["status_code"] for a in message["attempts"]] == [200]


async def test_an_outcome_the_database_refuses_holds_up_no_other_and_is_recorded_bare(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    bare, lost, *others = await insert_messages(committed, endpoint["id"], 6)
    refused = (
        f"(NEW.message_id = '{bare}' AND NEW.response_excerpt IS NOT NULL) "
        f"OR NEW.message_id = '{lost}'"
    )
    async with (
        attempts_refused(committed, refused),
        dispatching(committed, settings, check_on_stop=False),
    ):
        await arrived(receiver, 6, "/ok")

        async def recorded() -> bool:
            statuses = [(await get_message(committed_client, m))["status"] for m in others]
            return statuses == ["delivered"] * len(others)

        await poll(recorded)
        kept = await poll(
            lambda: message_if(committed_client, bare, lambda m: m["status"] == "delivered")
        )

        async def logged_lost() -> bool:
            return any("was lost" in r.getMessage() for r in _dispatcher_errors)

        await poll(logged_lost)
    # Refused with its excerpt, the outcome is kept without it: a success all the same.
    [attempt] = kept["attempts"]
    assert (attempt["status_code"], attempt["response_excerpt"], attempt["error"]) == (
        200,
        None,
        None,
    )
    # Refused whatever it says, it is the one outcome lost, and the log says which.
    assert (await get_message(committed_client, lost))["attempts"] == []
    lost_lines = [r.getMessage() for r in _dispatcher_errors if "was lost" in r.getMessage()]
    assert lost_lines == [f"the outcome of an attempt to send webhook message {lost} was lost"]
    assert len(receiver.received) == 6


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


# -- promptness and several dispatchers ---------------------------------------------------------


async def test_an_idle_dispatcher_sends_a_new_message_promptly(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await register_endpoint(
        committed_client, "feedback.received", url=receiver.url("/ok")
    )
    async with dispatching(committed, settings):
        await post_feedback(committed_client)
        await receiver.wait_for(1, "/ok", within=10)
        # Everything done and recorded: the dispatcher has nothing left to do.
        await messages_once(
            committed_client, endpoint["id"], lambda ms: ms[0]["status"] == "delivered"
        )
        await post_feedback(committed_client)
        await receiver.wait_for(2, "/ok", within=10)


async def test_two_dispatchers_send_every_message_exactly_once(
    committed_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
    database_url: str,
    receiver: Receiver,
) -> None:
    endpoints = [
        await register_endpoint(committed_client, "feedback.received", url=receiver.url("/ok"))
        for _ in range(3)
    ]
    ids = [m for e in endpoints for m in await insert_messages(committed, e["id"], 100)]
    other = await Database.connect(database_url, pool_size=5)
    try:
        # A long timeout: on a busy machine a slow answer must not turn into a second attempt.
        options: dict[str, Any] = {"webhook_timeout_seconds": 15.0}
        async with (
            dispatching(committed, settings, **options) as first,
            dispatching(other, settings, **options) as second,
        ):
            first.transport.client.headers["x-test-dispatcher"] = "first"
            second.transport.client.headers["x-test-dispatcher"] = "second"
            await arrived(receiver, 300, "/ok", within=20)
            await eventually(
                lambda: count_rows(
                    committed,
                    "SELECT count(*) = 300 FROM outbox_message WHERE status = 'delivered'",
                ),
                within=10,
            )
    finally:
        await other.close()

    received = webhook_ids(receiver.received)
    assert len(received) == 300
    assert set(received) == {f"msg_{uuid.UUID(m).hex}" for m in ids}
    async with committed.raw() as conn:
        attempts = await conn.fetchval("SELECT count(*) FROM delivery_attempt")
        counts = await conn.fetchval(
            "SELECT array_agg(DISTINCT attempts) FROM outbox_message WHERE status = 'delivered'"
        )
    assert attempts == 300
    assert counts == [1]
    senders = Counter(r.headers.get("x-test-dispatcher") for r in receiver.received)
    assert set(senders) == {"first", "second"}, senders


# -- real worker processes, one of them killed --------------------------------------------------


def _worker_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env.update(
        {
            "FEEDBACK_DATABASE_URL": database_url,
            "FEEDBACK_WEBHOOK_ALLOW_HTTP": "true",
            "FEEDBACK_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "FEEDBACK_WEBHOOK_TIMEOUT_SECONDS": "1",  # so the lease is 2 × 1 + 5 = 7 s
            "FEEDBACK_SLA_CHECK_INTERVAL_SECONDS": "60",
        }
    )
    return env


def _has_logged(log: Path, message: str) -> bool:
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            if json.loads(line).get("message") == message:
                return True
    return False


def _sends_to(pid: int, port: int) -> bool:
    """The process has a connection open to the receiver."""
    return any(
        c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        for c in psutil.Process(pid).net_connections(kind="tcp")
    )


async def _undelivered(database: Database) -> list[str]:
    async with database.raw() as conn:
        rows = await conn.fetch("SELECT id FROM outbox_message WHERE status <> 'delivered'")
    return [str(r["id"]) for r in rows]


async def test_killing_a_worker_mid_flight_loses_no_message(
    committed_client: httpx.AsyncClient,
    committed: Database,
    database_url: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    workers: list[asyncio.subprocess.Process] = []
    async with asyncio.timeout(45), running_receiver() as receiver:
        endpoint = await register_endpoint(
            committed_client, "feedback.received", url=receiver.url("/slow")
        )
        try:
            for log in logs:
                with log.open("wb") as out:
                    workers.append(
                        await asyncio.create_subprocess_exec(
                            str(CLOSELOOP),
                            "worker",
                            env=_worker_env(database_url),
                            stdin=asyncio.subprocess.DEVNULL,
                            stdout=out,
                            stderr=out,
                        )
                    )

            async def running() -> bool:
                for worker, log in zip(workers, logs, strict=True):
                    assert worker.returncode is None, log.read_text(errors="replace")[-2000:]
                return all(_has_logged(log, "worker running") for log in logs)

            await eventually(running, within=15)
            ids = await insert_messages(committed, endpoint["id"], 200)
            victim, survivor = workers

            async def both_sending() -> bool:
                delivered = await count_rows(
                    committed, "SELECT count(*) FROM outbox_message WHERE status = 'delivered'"
                )
                return delivered >= 30 and all(_sends_to(w.pid, receiver.port) for w in workers)

            await eventually(both_sending, within=10)
            async with committed.raw() as conn:
                killed_at: datetime = await conn.fetchval("SELECT clock_timestamp()")
            victim.kill()  # SIGKILL: no chance to finish or record anything
            assert await asyncio.wait_for(victim.wait(), 10) == -signal.SIGKILL
            undelivered_at_kill = await _undelivered(committed)
            assert undelivered_at_kill, "everything was delivered before the kill"
            assert len(undelivered_at_kill) < len(ids)

            async def all_delivered() -> bool:
                assert survivor.returncode is None, "the surviving worker exited"
                return not await _undelivered(committed)

            # The victim's leases end 7 s after its last claim; then the survivor sends them.
            await eventually(all_delivered, within=20)
            received = webhook_ids(receiver.received)
            assert set(received) >= {f"msg_{uuid.UUID(m).hex}" for m in ids}
            async with committed.raw() as conn:
                taken_over = await conn.fetchval(
                    "SELECT count(*) FROM outbox_message WHERE delivered_at >= $1",
                    killed_at + timedelta(seconds=5),
                )
            # The victim's leased messages were sent again once its lease ran out.
            assert taken_over > 0

            survivor.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(survivor.wait(), 10) == 0
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
    duplicates = len(received) - len(set(received))
    print(  # shown with -s: what the crash cost
        f"crash test: {len(ids)} messages, {len(undelivered_at_kill)} undelivered at the kill, "
        f"{duplicates} sent twice, {taken_over} after the lease, "
        f"{time.monotonic() - started:.1f} s"
    )
