"""Rate limits in one process: what counts, per what, for how long, and the shared table.

Two real processes sharing one limit are in tests/core/test_processes.py.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from app.core.db import BoundDatabase
from app.core.ratelimit import RateLimiter
from tests.builders import auth, feedback_body, make_api_key

# 12:00:15 of some day: 45 seconds left in its minute.
NOON = datetime(2026, 12, 3, 12, 0, 15, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, *, ingest: int = 0, other: int = 0, proxies: str = "") -> RateLimiter:
    networks = [ipaddress.ip_network(p) for p in proxies.split(",") if p]
    return RateLimiter(
        ingest_per_minute=ingest, per_minute=other, trusted_proxies=networks, clock=clock
    )


def test_items_count_until_the_limit_and_the_wait_is_the_rest_of_the_minute() -> None:
    clock = Clock(NOON)
    limits = limiter(clock, ingest=10)
    counter = (uuid.uuid4(), "203.0.113.7")
    assert limits.take(counter, 6, 10) is None
    assert limits.take(counter, 4, 10) is None
    assert limits.take(counter, 1, 10) == pytest.approx(45.0)
    clock.now += 44.5
    assert limits.take(counter, 1, 10) == pytest.approx(0.5)
    clock.now += 0.5  # a new minute
    assert limits.take(counter, 10, 10) is None


def test_a_refused_request_uses_nothing() -> None:
    limits = limiter(Clock(NOON), ingest=10)
    counter = (uuid.uuid4(), "203.0.113.7")
    assert limits.take(counter, 8, 10) is None
    assert limits.take(counter, 5, 10) is not None
    assert limits.take(counter, 2, 10) is None


def test_each_key_and_address_has_its_own_count() -> None:
    limits = limiter(Clock(NOON), ingest=1)
    key, other_key = uuid.uuid4(), uuid.uuid4()
    assert limits.take((key, "203.0.113.7"), 1, 1) is None
    assert limits.take((key, "203.0.113.7"), 1, 1) is not None
    assert limits.take((key, "198.51.100.1"), 1, 1) is None
    assert limits.take((other_key, "203.0.113.7"), 1, 1) is None


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "headers": headers, "client": (peer, 5000)})


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    untrusting = limiter(Clock(NOON))
    assert untrusting.client_address(_request("198.51.100.1", "203.0.113.7")) == "198.51.100.1"
    trusting = limiter(Clock(NOON), proxies="10.0.0.0/8")
    assert trusting.client_address(_request("198.51.100.1", "203.0.113.7")) == "198.51.100.1"
    assert trusting.client_address(_request("10.1.2.3", "203.0.113.7")) == "203.0.113.7"
    assert trusting.client_address(_request("10.1.2.3")) == "10.1.2.3"


def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() -> None:
    limits = limiter(Clock(NOON), proxies="10.0.0.0/8,2001:db8::/32")
    # What the client wrote comes first; each proxy appends the address it saw.
    spoofed = _request("10.0.0.2", "1.1.1.1, 203.0.113.7", "10.0.0.1")
    assert limits.client_address(spoofed) == "203.0.113.7"
    assert limits.client_address(_request("2001:db8::1", "2001:DB8::2, 2001:0db8:0::9")) == (
        "2001:db8::2"
    )
    # Garbage in the chain: the hop that passed it on is as far as anyone can tell.
    assert limits.client_address(_request("10.0.0.2", "not-an-address, 203.0.113.7")) == (
        "203.0.113.7"
    )
    assert limits.client_address(_request("10.0.0.2", "10.0.0.1, nonsense")) == "10.0.0.2"


async def test_limiters_on_one_database_share_their_counts(database: BoundDatabase) -> None:
    clock = Clock(NOON)
    here, there = limiter(clock, ingest=10), limiter(clock, ingest=10)
    counter = (uuid.uuid4(), "203.0.113.7")
    await there.sync(database)
    for _ in range(7):
        assert here.take(counter, 1, 10) is None
    await here.sync(database)
    await there.sync(database)
    assert there.take(counter, 4, 10) is not None
    assert there.take(counter, 3, 10) is None
    await there.sync(database)
    await here.sync(database)
    assert here.take(counter, 1, 10) is not None
    async with database.raw() as conn:
        assert await conn.fetchval(
            "SELECT count FROM rate_limit_window WHERE api_key_id = $1", counter[0]
        ) == (10)


async def test_a_sync_drops_the_windows_that_ended(database: BoundDatabase) -> None:
    clock = Clock(NOON)
    limits = limiter(clock, ingest=10)
    counter = (uuid.uuid4(), "203.0.113.7")
    assert limits.take(counter, 3, 10) is None
    await limits.sync(database)
    clock.now += 60
    assert limits.take(counter, 10, 10) is None
    await limits.sync(database)
    async with database.raw() as conn:
        windows = await conn.fetch(
            "SELECT window_start, count FROM rate_limit_window WHERE api_key_id = $1", counter[0]
        )
    assert [(w["window_start"].timestamp(), w["count"]) for w in windows] == [(NOON + 45, 10)]


# -- through HTTP ------------------------------------------------------------------------------


@pytest.fixture
def limits(app: FastAPI) -> RateLimiter:
    app.state.rate_limiter = limiter(Clock(NOON), ingest=5, other=3, proxies="10.0.0.0/8")
    limits: RateLimiter = app.state.rate_limiter
    return limits


@pytest.fixture
async def from_proxy(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests arrive from a trusted proxy."""
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _batch(count: int) -> dict[str, object]:
    return {"items": [feedback_body(score=9, comment=None) for _ in range(count)]}


async def test_a_batch_uses_one_per_item_and_past_the_limit_is_429(
    client: httpx.AsyncClient, database: BoundDatabase, limits: RateLimiter
) -> None:
    key = await make_api_key(database, "feedback:write")
    first = await client.post("/v1/feedback/batch", json=_batch(3), headers=auth(key))
    assert first.status_code == 200
    over = await client.post("/v1/feedback/batch", json=_batch(3), headers=auth(key))
    assert over.status_code == 429
    assert over.headers["content-type"] == "application/problem+json"
    assert over.json()["code"] == "rate_limited"
    assert over.headers["retry-after"] == "45"
    # Nothing of a refused batch is stored or counted: two items still fit.
    assert (await client.post("/v1/feedback/batch", json=_batch(2), headers=auth(key))).is_success
    single = await client.post("/v1/feedback", json=feedback_body(), headers=auth(key))
    assert single.status_code == 429


async def test_a_batch_over_the_whole_limit_says_to_split_it(
    client: httpx.AsyncClient, database: BoundDatabase, limits: RateLimiter
) -> None:
    key = await make_api_key(database, "feedback:write")
    refused = await client.post("/v1/feedback/batch", json=_batch(6), headers=auth(key))
    assert refused.status_code == 429
    assert "smaller batches" in refused.json()["detail"]


async def test_an_ingest_key_is_limited_per_client_address_behind_a_trusted_proxy(
    from_proxy: httpx.AsyncClient, database: BoundDatabase, limits: RateLimiter
) -> None:
    key = await make_api_key(database, "feedback:write")

    async def send(address: str) -> int:
        headers = {**auth(key), "X-Forwarded-For": address}
        answer = await from_proxy.post("/v1/feedback/batch", json=_batch(5), headers=headers)
        return answer.status_code

    assert await send("203.0.113.7") == 200
    assert await send("203.0.113.7") == 429
    assert await send("198.51.100.1") == 200


async def test_other_keys_are_limited_per_key_in_requests_on_every_route(
    client: httpx.AsyncClient,
    from_proxy: httpx.AsyncClient,
    database: BoundDatabase,
    limits: RateLimiter,
) -> None:
    key = await make_api_key(database, "feedback:write", "feedback:read", "cases:read")
    # A batch of five is one request for such a key.
    assert (await client.post("/v1/feedback/batch", json=_batch(5), headers=auth(key))).is_success
    assert (await client.get("/v1/cases", headers=auth(key))).status_code == 200
    headers = {**auth(key), "X-Forwarded-For": "198.51.100.1"}
    assert (await from_proxy.get("/v1/feedback", headers=headers)).status_code == 200
    limited = await client.get("/v1/cases", headers=auth(key))
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "45"
    other = await make_api_key(database, "cases:read")
    assert (await client.get("/v1/cases", headers=auth(other))).status_code == 200
