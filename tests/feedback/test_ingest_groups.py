"""Group commit: single-item requests that meet in one group are answered as if sent alone.

The app here sends a group only once it is full (a wait far longer than any test), so the
requests posted together are written together, in one transaction: the rows share their xmin.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cases.linking import LinkingRaced, link_customers
from app.core.config import Settings
from app.core.db import BoundDatabase, Database
from app.feedback import store
from app.feedback.group import GroupCommit
from app.main import create_app
from tests.builders import feedback_body, make_api_key, register_endpoint, webhooks_on_loopback

Post = Callable[..., Awaitable[list[httpx.Response]]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """An endpoint on 127.0.0.1 may subscribe, so the outbox rows show (nothing delivers them)."""
    return webhooks_on_loopback(settings)


@pytest.fixture
async def post_group(
    settings: Settings, database: BoundDatabase
) -> AsyncIterator[Callable[[Sequence[dict[str, Any]]], Awaitable[list[httpx.Response]]]]:
    """Post bodies (each with its own headers under `_headers`) at once, to an app whose group
    is sent when it holds exactly that many items."""
    key = await make_api_key(database, "admin", name="admin")
    clients: list[httpx.AsyncClient] = []

    async def post(bodies: Sequence[dict[str, Any]]) -> list[httpx.Response]:
        grouped = settings.model_copy(
            update={"ingest_group_max": len(bodies), "ingest_group_wait_ms": 600_000}
        )
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(grouped, database)),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {key}"},
        )
        clients.append(client)
        requests = []
        for body in bodies:
            body = dict(body)
            headers = body.pop("_headers", {})
            requests.append(client.post("/v1/feedback", json=body, headers=headers))
        return list(await asyncio.gather(*requests))

    yield post
    for client in clients:
        await client.aclose()


async def _groups_written(connection: AsyncConnection, ids: Sequence[str]) -> int:
    """How many transactions (a group each) wrote these feedback rows."""
    found = await connection.execute(
        text("SELECT count(DISTINCT xmin::text) FROM feedback WHERE id::text = ANY(:ids)"),
        {"ids": list(ids)},
    )
    return int(found.scalar_one())


async def test_concurrent_items_are_written_in_one_transaction(
    post_group: Post, connection: AsyncConnection
) -> None:
    answers = await post_group(
        [feedback_body(score=score, customer={"external_id": f"cus_{score}"}) for score in range(7)]
    )
    assert [a.status_code for a in answers] == [201] * 7
    items = [a.json() for a in answers]
    assert [i["score"] for i in items] == list(range(7))
    assert await _groups_written(connection, [i["id"] for i in items]) == 1
    # Each detractor (0 to 6) of its own customer opened a case of its own.
    assert len({i["case"]["id"] for i in items}) == 7


async def test_two_complaints_of_one_customer_in_one_group_join_one_case(
    post_group: Post, connection: AsyncConnection, admin: httpx.AsyncClient
) -> None:
    await register_endpoint(
        admin, "feedback.received", "case.opened", url="http://127.0.0.1:9/hook"
    )
    answers = await post_group(
        [
            feedback_body(comment="The parcel was late", score=2),
            feedback_body(comment="And now the refund is late too", score=1),
            feedback_body(score=10, customer={"external_id": "cus_happy"}),
        ]
    )
    assert [a.status_code for a in answers] == [201, 201, 201]
    first, second, promoter = (a.json() for a in answers)
    assert first["case"]["id"] == second["case"]["id"]
    assert promoter["case"] is None
    case_id = first["case"]["id"]
    links = await connection.execute(
        text("SELECT feedback_id::text, kind FROM case_feedback WHERE case_id = :id"),
        {"id": case_id},
    )
    assert {r[0]: r[1] for r in links} == {first["id"]: "opened", second["id"]: "joined"}
    events = (await admin.get(f"/v1/cases/{case_id}/events")).json()["items"]
    assert sorted(e["type"] for e in events) == ["created", "feedback_added"]
    messages = await connection.execute(
        text("SELECT event_type, count(*) FROM outbox_message GROUP BY event_type")
    )
    assert {r[0]: r[1] for r in messages} == {"feedback.received": 3, "case.opened": 1}


async def test_one_idempotency_key_twice_in_one_group_stores_once(
    post_group: Post, connection: AsyncConnection
) -> None:
    body = feedback_body(_headers={"Idempotency-Key": "order-1009"})
    answers = await post_group([body, body])
    assert sorted(a.status_code for a in answers) == [200, 201]
    created, replayed = sorted(answers, key=lambda a: a.status_code, reverse=True)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == created.json()["id"]
    assert replayed.json()["case"] == created.json()["case"]
    stored = await connection.execute(text("SELECT count(*) FROM feedback"))
    assert stored.scalar_one() == 1


async def test_one_idempotency_key_with_two_bodies_in_one_group_is_a_conflict(
    post_group: Post,
) -> None:
    headers = {"Idempotency-Key": "order-1010"}
    answers = await post_group(
        [feedback_body(score=3, _headers=headers), feedback_body(score=4, _headers=headers)]
    )
    # Whichever the group holds first is stored; the other is refused.
    assert sorted(a.status_code for a in answers) == [201, 409]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["code"] == "idempotency_key_reused"


async def test_one_external_id_twice_in_one_group_is_a_replay(post_group: Post) -> None:
    same = feedback_body(external_id="resp-1")
    answers = await post_group([same, same])
    assert sorted(a.status_code for a in answers) == [200, 201]
    assert answers[0].json()["id"] == answers[1].json()["id"]


async def test_one_external_id_with_two_bodies_in_one_group_is_a_conflict(
    post_group: Post,
) -> None:
    answers = await post_group(
        [feedback_body(external_id="resp-2"), feedback_body(external_id="resp-2", score=9)]
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    stored, refused = sorted(answers, key=lambda a: a.status_code)
    assert refused.json()["code"] == "conflict"
    assert stored.json()["id"] in refused.json()["detail"]


async def test_an_item_refused_in_a_group_answers_alone(
    post_group: Post, connection: AsyncConnection
) -> None:
    # A signature for a source without an identity secret: a 422 found only when written.
    signed = {"external_id": "cus_7", "signature": "0" * 64}
    answers = await post_group(
        [
            feedback_body(customer={"external_id": "cus_1"}),
            feedback_body(customer=signed),
            feedback_body(customer={"external_id": "cus_2"}),
        ]
    )
    assert [a.status_code for a in answers] == [201, 422, 201]
    assert [e["type"] for e in answers[1].json()["errors"]] == ["no_identity_secret"]
    stored = await connection.execute(text("SELECT customer_external_id FROM feedback"))
    assert sorted(stored.scalars().all()) == ["cus_1", "cus_2"]


async def test_a_group_that_fails_is_written_again_one_item_at_a_time() -> None:
    written: list[list[int]] = []

    async def write(group: list[int]) -> list[int | Exception]:
        if 13 in group:  # like a statement that fails on one item and takes the group with it
            raise ValueError("bad item")
        written.append(group)
        return [item * 2 for item in group]

    groups: GroupCommit[int, int] = GroupCommit(write, max_items=4, wait_s=600)
    outcomes = await asyncio.gather(
        *(groups.submit(item) for item in (1, 13, 3, 4)), return_exceptions=True
    )
    assert [outcomes[0], outcomes[2], outcomes[3]] == [2, 6, 8]
    assert isinstance(outcomes[1], ValueError)
    assert written == [[1], [3], [4]]
    await groups.wait_idle()


async def test_cancel_rolls_back_the_groups_in_flight_and_drops_the_waiting() -> None:
    """A server shutting down once its requests are done: what is still in a group belongs to a
    request it gave up on, so it is not written behind that answer, nor waited for."""
    started, rolled_back = asyncio.Event(), asyncio.Event()

    async def write(group: list[int]) -> list[int | Exception]:
        started.set()
        try:
            await asyncio.Event().wait()  # a transaction that would never end by itself
        except asyncio.CancelledError:
            rolled_back.set()
            raise
        return list(group)

    groups: GroupCommit[int, int] = GroupCommit(write, max_items=2, wait_s=600, writers=1)
    requests = [asyncio.ensure_future(groups.submit(item)) for item in range(4)]
    await started.wait()  # [0, 1] in flight, [2, 3] waiting for the writer
    await groups.cancel()
    assert rolled_back.is_set()
    outcomes = await asyncio.gather(*requests, return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    await groups.wait_idle()  # nothing left running


async def test_a_lone_item_is_sent_after_the_wait() -> None:
    async def write(group: list[int]) -> list[int | Exception]:
        return list(group)

    groups: GroupCommit[int, int] = GroupCommit(write, max_items=256, wait_s=0.001)
    assert await groups.submit(7) == 7
    await groups.wait_idle()


@pytest.mark.parametrize("writers", [1, 2])
async def test_groups_are_written_by_as_many_writers_at_once_as_set(writers: int) -> None:
    # Each write holds until the test lets it go, so what is in flight at once shows.
    release = asyncio.Event()
    in_flight: list[list[int]] = []
    most = 0

    async def write(group: list[int]) -> list[int | Exception]:
        nonlocal most
        in_flight.append(group)
        most = max(most, len(in_flight))
        await release.wait()
        in_flight.remove(group)
        return [item + 100 for item in group]

    groups: GroupCommit[int, int] = GroupCommit(write, max_items=2, wait_s=600, writers=writers)
    answers = asyncio.gather(*(groups.submit(item) for item in range(6)))
    for _ in range(20):  # let the writer send whatever it may
        await asyncio.sleep(0)
    assert most == writers
    assert in_flight == [[0, 1], [2, 3]][:writers]
    release.set()
    # Each request is answered with its own item's outcome, whichever writer wrote it.
    assert await answers == [100, 101, 102, 103, 104, 105]
    await groups.wait_idle()


async def test_groups_written_at_once_link_new_customers_and_join_their_cases(
    committed: Database, settings: Settings
) -> None:
    """Two writers, each with a group holding one complaint of each of three customers seen
    for the first time: the records they make and the cases they open meet in the database,
    in two transactions at once, and end as if the complaints had come one by one."""
    key = await make_api_key(committed, "admin", name="admin")
    grouped = settings.model_copy(
        update={"ingest_group_max": 3, "ingest_group_wait_ms": 600_000, "ingest_group_writers": 2}
    )
    bodies = [
        feedback_body(
            comment=f"complaint {n} of customer {c}",
            score=n,
            customer={"external_id": f"cus_new_{c}", "email": f"new{c}@example.com"},
        )
        for n in range(4)
        for c in range(3)
    ]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(grouped, committed)),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        answers = await asyncio.gather(*(client.post("/v1/feedback", json=b) for b in bodies))
        assert [a.status_code for a in answers] == [201] * 12
        cases: dict[str, set[str]] = {}
        for body, answer in zip(bodies, answers, strict=True):
            customer = body["customer"]["external_id"]
            cases.setdefault(customer, set()).add(answer.json()["case"]["id"])
        assert all(len(ids) == 1 for ids in cases.values()), cases
        assert len({ids.pop() for ids in cases.values()}) == 3
        for c in range(3):
            view = (await client.get(f"/v1/customers/cus_new_{c}")).json()
            assert sorted(i["value"] for i in view["identities"]) == [
                f"cus_new_{c}",
                f"new{c}@example.com",
            ]
    async with committed.raw() as conn:
        groups = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM feedback")
        records = await conn.fetchval("SELECT count(*) FROM customer")
        per_case = await conn.fetch("SELECT count(*) FROM case_feedback GROUP BY case_id")
    assert groups == 4
    assert records == 3
    assert sorted(r[0] for r in per_case) == [4, 4, 4]


@pytest.mark.parametrize(
    "race",
    [LinkingRaced, asyncpg.DeadlockDetectedError],
    ids=["linking raced another writer", "deadlock"],
)
async def test_a_group_that_loses_a_race_is_written_again_whole(
    post_group: Post,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
    race: type[Exception],
) -> None:
    """The group commit links without a savepoint: a race lost there rolls its transaction
    back, and the same group is written again, still together (not item by item)."""
    calls: list[bool] = []

    async def loses_once(conn: Any, rows: Any, *, savepoints: bool = True) -> Any:
        calls.append(savepoints)
        if len(calls) == 1:
            raise race("lost to another writer")
        return await link_customers(conn, rows, savepoints=savepoints)

    monkeypatch.setattr(store, "link_customers", loses_once)
    answers = await post_group(
        [
            feedback_body(comment="The parcel was late", score=2),
            feedback_body(comment="And now the refund is late too", score=1),
            feedback_body(score=10, customer={"external_id": "cus_happy"}),
        ]
    )
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert calls == [False, False]
    first, second, promoter = (a.json() for a in answers)
    assert first["case"]["id"] == second["case"]["id"]
    assert promoter["case"] is None
    assert await _groups_written(connection, [a.json()["id"] for a in answers]) == 1
    stored = await connection.execute(text("SELECT count(*) FROM feedback"))
    assert stored.scalar_one() == 3
    links = await connection.execute(text("SELECT count(*) FROM case_feedback"))
    assert links.scalar_one() == 2
