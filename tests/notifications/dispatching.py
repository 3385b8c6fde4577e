"""Helpers of the dispatcher tests: a dispatcher running in the test's event loop, waits that
fail at once when it logs an error, the message log as a user reads it, and the outbox straight
in the database, for large counts and for driving the clock (a retry falls due when the test
sets its `next_attempt_at` to now)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import httpx

from app.core.config import Settings
from app.core.db import Database
from app.notifications.dispatcher import Dispatcher
from tests.builders import eventually as poll
from tests.builders import feedback_body
from tests.receiver import Received, Receiver

T = TypeVar("T")


# What the dispatcher logged as errors during the current test: claiming or recording failed.
dispatcher_error_records: list[logging.LogRecord] = []


class _ErrorRecords(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        dispatcher_error_records.append(record)


@contextlib.contextmanager
def watching_dispatcher_errors() -> Iterator[None]:
    """Every wait of a dispatcher test fails at once, and with its cause, if the dispatcher
    could not claim or record (otherwise it would only show as a wait running out)."""
    handler = _ErrorRecords(logging.ERROR)
    dispatcher_logger = logging.getLogger("app.notifications.dispatcher")
    dispatcher_logger.addHandler(handler)
    try:
        yield
    finally:
        dispatcher_logger.removeHandler(handler)
        dispatcher_error_records.clear()


class DispatcherFailed(AssertionError):
    """The dispatcher logged an error: it could not claim or record."""


def assert_nodispatcher_error_records() -> None:
    if dispatcher_error_records:
        record = dispatcher_error_records[0]
        cause = record.exc_info[1] if record.exc_info else None
        raise DispatcherFailed(f"the dispatcher logged {record.getMessage()!r}: {cause!r}")


async def eventually(check: Callable[[], Awaitable[T]], within: float = 10) -> T:
    """`builders.eventually`, failing at once when the dispatcher logs an error."""

    async def checked() -> T:
        assert_nodispatcher_error_records()
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
        assert_nodispatcher_error_records()


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
