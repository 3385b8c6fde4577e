"""Faults of the webhook dispatcher (SPEC §5): a Retry-After of any form, an answer that breaks
HTTP, an exception while sending, a database that will not record. Each is an attempt on
record, retried on the schedule: the receiver counts what was sent, the message log what was
recorded, and they agree."""

from __future__ import annotations

import contextlib
import email.utils
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database
from app.notifications.signing import new_secret
from tests.builders import eventually as poll
from tests.builders import register_endpoint
from tests.notifications.dispatching import (
    all_messages,
    arrived,
    assert_nodispatcher_error_records,
    attempted,
    dispatcher_error_records,
    dispatching,
    get_message,
    insert_messages,
    make_due,
    message_if,
    message_once,
    messages_once,
    post_feedback,
    seconds_until_next_attempt,
    webhook_ids,
)
from tests.receiver import Receiver, running_receiver

pytestmark = pytest.mark.usefixtures("dispatcher_errors")


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
        assert [r.getMessage() for r in dispatcher_error_records] == [
            f"sending webhook message {listed['id']} failed unexpectedly"
        ]
        dispatcher_error_records.clear()
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
    assert_nodispatcher_error_records()
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
            return any("was lost" in r.getMessage() for r in dispatcher_error_records)

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
    lost_lines = [r.getMessage() for r in dispatcher_error_records if "was lost" in r.getMessage()]
    assert lost_lines == [f"the outcome of an attempt to send webhook message {lost} was lost"]
    assert len(receiver.received) == 6
