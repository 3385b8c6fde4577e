"""Cases under real concurrency: separate connections, separate transactions, real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.cases.sla import run_pass
from app.core.db import Database
from tests.builders import eventually, feedback_body, make_team

CLOSELOOP = str(Path(sys.executable).parent / "closeloop")


async def test_two_agents_resolving_at_once_exactly_one_wins(
    committed_client: httpx.AsyncClient,
) -> None:
    await make_team(committed_client, "support", resolution_minutes=480)
    item = (await committed_client.post("/v1/feedback", json=feedback_body())).json()
    url = f"/v1/cases/{item['case']['id']}/resolve"

    async def resolve(message: str) -> httpx.Response:
        return await committed_client.post(
            url,
            json={"code": "refunded", "customer_message": message},
            headers={"If-Match": '"1"'},
        )

    answers = await asyncio.gather(*(resolve(f"agent {i}") for i in range(2)))
    assert sorted(a.status_code for a in answers) == [200, 412]
    winner = next(a for a in answers if a.status_code == 200).json()
    case = (await committed_client.get(f"/v1/cases/{item['case']['id']}")).json()
    assert case["version"] == 2
    assert case["resolution"]["customer_message"] == winner["resolution"]["customer_message"]
    events = (await committed_client.get(f"/v1/cases/{case['id']}/events")).json()["items"]
    assert [e["type"] for e in events].count("resolved") == 1


async def test_complaints_arriving_at_once_join_one_case(
    committed_client: httpx.AsyncClient,
) -> None:
    await make_team(committed_client, "support", resolution_minutes=480)
    bodies = [feedback_body(comment=f"still broken, attempt {i}") for i in range(20)]
    answers = await asyncio.gather(
        *(committed_client.post("/v1/feedback", json=body) for body in bodies)
    )
    assert {a.status_code for a in answers} == {201}
    case_ids = {a.json()["case"]["id"] for a in answers}
    assert len(case_ids) == 1
    case = (await committed_client.get(f"/v1/cases/{case_ids.pop()}")).json()
    assert len(case["feedback"]) == 20
    assert case["version"] == 20


async def test_case_numbers_stay_unique_under_concurrency(
    committed_client: httpx.AsyncClient,
) -> None:
    await make_team(committed_client, "support", resolution_minutes=480)
    answers = await asyncio.gather(
        *(
            committed_client.post(
                "/v1/feedback", json=feedback_body(customer={"external_id": f"cus_{i}"})
            )
            for i in range(40)
        )
    )
    numbers = [a.json()["case"]["number"] for a in answers]
    assert len(set(numbers)) == 40


async def test_monitors_side_by_side_flag_each_breach_once(
    committed_client: httpx.AsyncClient, committed: Database
) -> None:
    await make_team(committed_client, "support", resolution_minutes=480)
    for i in range(30):
        body = feedback_body(customer={"external_id": f"cus_{i}"})
        assert (await committed_client.post("/v1/feedback", json=body)).status_code == 201
    later = (await committed_client.get("/v1/cases", params={"limit": 1})).json()["items"][0]
    now = datetime.fromisoformat(later["resolution_due_at"]) + timedelta(minutes=1)
    passes = await asyncio.gather(
        *(
            run_pass(committed.sessionmaker, autoclose_after=timedelta(days=7), now=now)
            for _ in range(4)
        )
    )
    assert sum(p.first_response_breaches for p in passes) == 30
    assert sum(p.resolution_breaches for p in passes) == 30
    async with committed.raw() as conn:
        counts = await conn.fetch(
            "SELECT case_id, data->>'kind' AS kind, count(*) AS n FROM case_event "
            "WHERE type = 'sla_breached' GROUP BY case_id, data->>'kind'"
        )
    assert len(counts) == 60
    assert {row["n"] for row in counts} == {1}


def _start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env.update(FEEDBACK_DATABASE_URL=url, FEEDBACK_SLA_CHECK_INTERVAL_SECONDS="0.2")
    return subprocess.Popen(
        [CLOSELOOP, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _breach_events(database: Database) -> list[Any]:
    async with database.raw() as conn:
        return list(
            await conn.fetch(
                "SELECT case_id, data->>'kind' AS kind FROM case_event WHERE type = 'sla_breached'"
            )
        )


async def test_worker_processes_flag_a_breach_without_any_request(
    committed_client: httpx.AsyncClient, committed: Database, database_url: str
) -> None:
    await make_team(committed_client, "support", resolution_minutes=480)
    item = (await committed_client.post("/v1/feedback", json=feedback_body())).json()
    async with committed.raw() as conn:  # the first response was due a minute ago
        await conn.execute(
            "UPDATE feedback_case SET first_response_due_at = now() - interval '1 minute'"
        )
    workers = [_start_worker(database_url) for _ in range(2)]
    try:

        async def flagged() -> bool:
            assert all(w.poll() is None for w in workers), "a worker exited"
            return bool(await _breach_events(committed))

        await eventually(flagged, within=30)
        # Then more passes of both workers (each takes the job's lease and hands it back), in
        # which nothing may happen: the breach must stay flagged once.
        seen: set[tuple[str, datetime]] = set()

        async def more_passes_by_both() -> bool:
            assert all(w.poll() is None for w in workers), "a worker exited"
            async with committed.raw() as conn:
                lease = await conn.fetchrow(
                    "SELECT holder, expires_at FROM job_lease WHERE name = 'sla_monitor'"
                )
            if lease is not None:
                seen.add((lease["holder"], lease["expires_at"]))
            pids = {holder.rsplit(":", 2)[1] for holder, _ in seen}
            return len(seen) >= 6 and pids >= {str(w.pid) for w in workers}

        await eventually(more_passes_by_both, within=30)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            assert worker.wait(timeout=30) == 0
    events = await _breach_events(committed)
    assert [(str(e["case_id"]), e["kind"]) for e in events] == [
        (item["case"]["id"], "first_response")
    ]


async def test_batches_linking_the_same_customers_at_once_make_one_record_each(
    committed_client: httpx.AsyncClient, committed: Database
) -> None:
    """Concurrent transactions record and link overlapping identities, each in its own order:
    no deadlock, no error, and each customer ends as one record with both identities."""
    await make_team(committed_client, "support", resolution_minutes=480)
    shapes = [
        lambda n: {"email": f"link{n}@example.com"},
        lambda n: {"external_id": f"link_{n}"},
        lambda n: {"external_id": f"link_{n}", "email": f"link{n}@example.com"},
    ]

    def batch(offset: int) -> list[dict[str, Any]]:
        return [
            feedback_body(customer=shapes[(n + offset) % 3](n), comment=f"batch {offset} #{n}")
            for n in range(30)
        ]

    answers = await asyncio.gather(
        *(committed_client.post("/v1/feedback/batch", json={"items": batch(i)}) for i in range(6))
    )
    assert {a.status_code for a in answers} == {200}
    assert {r["status"] for a in answers for r in a.json()["results"]} == {"created"}
    async with committed.raw() as conn:
        records = await conn.fetch(
            "SELECT array_agg(value ORDER BY value) AS values FROM customer_identity "
            "WHERE value LIKE 'link%' GROUP BY customer_id"
        )
    assert sorted(r["values"] for r in records) == sorted(
        [f"link{n}@example.com", f"link_{n}"] for n in range(30)
    )
