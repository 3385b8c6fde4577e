"""Two `closeloop serve` and two `closeloop worker` processes on one database do everything once.

Items go in and cases are resolved through both servers at once; complaints of one customer
meet across servers; every process runs the dispatcher and the jobs (the servers by default).
Then every case's due times are moved into the past (the clock driven, not waited for), and
the test waits, with a deadline, until the breaches are flagged and the outbox is empty.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from app.core.db import Database
from app.core.embedded import EmbeddedPostgres
from tests.builders import auth, eventually, make_api_key
from tests.processes import Served, connected, own_database, ready, serve, worker
from tests.receiver import running_receiver

ITEMS_PER_SERVER = 120
CUSTOMERS = 25
# case_event type → the webhook event it causes.
WEBHOOK_OF_EVENT = {
    "created": "case.opened",
    "status_changed": "case.status_changed",
    "resolved": "case.resolved",
    "sla_breached": "case.sla_breached",
}

PROCESS_SETTINGS = {
    "webhook_allow_http": "true",
    "webhook_allowed_networks": "127.0.0.0/8",
    "sla_check_interval_seconds": "0.2",
    "ingest_rate_limit_per_minute": "0",
    "rate_limit_per_minute": "0",
    "access_log": "false",
    "db_pool_size": "6",
}


async def _ingest(http: httpx.AsyncClient, served: Served, key: str, name: str) -> list[str]:
    """Items sent to one server, a few at a time; answers the ids it acknowledged."""
    rng = random.Random(name)
    stored: list[str] = []
    for start in range(0, ITEMS_PER_SERVER, 8):
        bodies = [
            {
                "source": "checkout-web",
                "channel": "web",
                "external_id": f"{name}-{n}",
                "metric": "nps",
                "score": rng.choice([1, 3, 5, 9, 10]),
                "customer": {"external_id": f"cus_{rng.randrange(CUSTOMERS)}"},
            }
            for n in range(start, start + 8)
        ]
        answers = await asyncio.gather(
            *(
                http.post(f"{served.base_url}/v1/feedback", json=b, headers=auth(key))
                for b in bodies
            )
        )
        for answer in answers:
            assert answer.status_code == 201, answer.text
            stored.append(answer.json()["id"])
    return stored


async def _resolve(http: httpx.AsyncClient, servers: list[Served], key: str, rounds: int) -> int:
    """Resolve open cases through either server while items arrive; answers how many."""
    resolved = 0
    for turn in range(rounds):
        served = servers[turn % 2]
        page = await http.get(f"{served.base_url}/v1/cases?status=open&limit=2", headers=auth(key))
        assert page.status_code == 200, page.text
        for case in page.json()["items"]:
            answer = await http.post(
                f"{served.base_url}/v1/cases/{case['id']}/resolve",
                json={"code": "fixed", "customer_message": "Sorted.", "notify_customer": True},
                headers={**auth(key), "If-Match": f'"{case["version"]}"'},
            )
            # The other server's resolver, or a joining item, may have changed it first.
            assert answer.status_code in (200, 409, 412), answer.text
            resolved += answer.status_code == 200
        await asyncio.sleep(0.05)
    return resolved


async def test_two_servers_and_two_workers_do_everything_once(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    async with (
        own_database(pg_server) as url,
        connected(url) as database,
        running_receiver() as receiver,
    ):
        admin = await make_api_key(database, "admin", name="admin")
        with (
            serve(url, tmp_path / "a.log", **PROCESS_SETTINGS) as a,
            serve(url, tmp_path / "b.log", **PROCESS_SETTINGS) as b,
            worker(url, tmp_path / "w1.log", **PROCESS_SETTINGS),
            worker(url, tmp_path / "w2.log", **PROCESS_SETTINGS),
        ):
            async with httpx.AsyncClient(timeout=30) as http:
                await ready(http, a)
                await ready(http, b)
                team = {
                    "key": "support",
                    "name": "Support",
                    "first_response_minutes": 60,
                    "resolution_minutes": 480,
                }
                created = await http.post(f"{a.base_url}/v1/teams", json=team, headers=auth(admin))
                assert created.status_code == 201, created.text
                endpoint = await http.post(
                    f"{b.base_url}/v1/webhooks/endpoints",
                    json={"url": receiver.url("/in"), "event_types": ["*"]},
                    headers=auth(admin),
                )
                assert endpoint.status_code == 201, endpoint.text

                stored_a, stored_b, resolved = await asyncio.gather(
                    _ingest(http, a, admin, "a"),
                    _ingest(http, b, admin, "b"),
                    _resolve(http, [a, b], admin, rounds=10),
                )
                assert resolved > 0
                async with database.raw() as conn:
                    # Every active case due now: the monitors flag each breach, once.
                    moved = await conn.execute(
                        "UPDATE feedback_case SET first_response_due_at = now() - interval '1 s', "
                        "resolution_due_at = now() - interval '1 s' "
                        "WHERE status IN ('open', 'in_progress')"
                    )
                    active = int(moved.split()[-1])

                async def flagged() -> bool:
                    async with database.raw() as conn:
                        left = await conn.fetchval(
                            "SELECT count(*) FROM feedback_case "
                            "WHERE status IN ('open', 'in_progress') AND NOT resolution_breached"
                        )
                    return bool(left == 0)

                await eventually(flagged, within=60)

                async def sent() -> bool:
                    async with database.raw() as conn:
                        pending = await conn.fetchval(
                            "SELECT count(*) FROM outbox_message WHERE status <> 'delivered'"
                        )
                    return bool(pending == 0)

                await eventually(sent, within=60)
        assert active, "no active case was left to breach"
        await _check(database, receiver.received, stored_a + stored_b)


async def _check(database: Database, received: list[Any], acknowledged: list[str]) -> None:
    async with database.raw() as conn:
        stored = {str(r["id"]) for r in await conn.fetch("SELECT id FROM feedback")}
        assert set(acknowledged) <= stored
        assert len(acknowledged) == 2 * ITEMS_PER_SERVER
        # Every negative item in exactly one case; every case with a negative item.
        misplaced = await conn.fetchval(
            "SELECT count(*) FROM feedback f WHERE f.sentiment = 'negative' AND "
            "(SELECT count(*) FROM case_feedback cf WHERE cf.feedback_id = f.id) <> 1"
        )
        assert misplaced == 0
        # One active case per customer at most, whichever servers their complaints reached.
        doubled = await conn.fetchval(
            "SELECT count(*) FROM (SELECT customer_key FROM feedback_case "
            "WHERE status IN ('open', 'in_progress', 'waiting_on_customer') "
            "GROUP BY customer_key HAVING count(*) > 1) d"
        )
        assert doubled == 0
        # Each breach once per kind and case.
        breaches = await conn.fetch(
            "SELECT case_id, data->>'kind' AS kind, count(*) AS n FROM case_event "
            "WHERE type = 'sla_breached' GROUP BY 1, 2"
        )
        assert breaches
        assert {r["n"] for r in breaches} == {1}
        events = Counter(
            {
                r["type"]: r["n"]
                for r in await conn.fetch(
                    "SELECT type, count(*) AS n FROM case_event GROUP BY type"
                )
            }
        )
        messages = Counter(
            {
                r["event_type"]: r["n"]
                for r in await conn.fetch(
                    "SELECT event_type, count(*) AS n FROM outbox_message GROUP BY event_type"
                )
            }
        )
        attempts = Counter(
            {
                r["message_id"].hex: r["n"]
                for r in await conn.fetch(
                    "SELECT message_id, count(*) AS n FROM delivery_attempt GROUP BY message_id"
                )
            }
        )
        ids = {r["id"].hex for r in await conn.fetch("SELECT id FROM outbox_message")}
    # One message per event (one endpoint, subscribed to everything).
    assert messages["feedback.received"] == len(stored)
    for event, webhook in WEBHOOK_OF_EVENT.items():
        assert messages[webhook] == events[event], (event, webhook)
    # Delivered once per attempt: what the receiver got, message by message, is what the
    # attempts on record say was sent.
    arrivals = Counter(r.headers["webhook-id"].removeprefix("msg_") for r in received)
    assert set(arrivals) == ids
    assert arrivals == attempts
