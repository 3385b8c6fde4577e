"""SIGTERM: `closeloop serve` stops accepting, lets requests and deliveries in flight finish
(within FEEDBACK_SHUTDOWN_GRACE_SECONDS), and exits 0; nothing acknowledged is lost and no
delivery is sent without its attempt on record, or recorded twice."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx

from app.core.embedded import EmbeddedPostgres
from tests.builders import auth, eventually, feedback_body, make_api_key
from tests.processes import connected, own_database, ready, serve
from tests.receiver import running_receiver

SETTINGS = {
    "webhook_allow_http": "true",
    "webhook_allowed_networks": "127.0.0.0/8",
    "ingest_rate_limit_per_minute": "0",
    "rate_limit_per_minute": "0",
    "access_log": "false",
    "shutdown_grace_seconds": "20",
}


async def test_sigterm_finishes_what_is_in_flight_and_exits_0(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    async with (
        own_database(pg_server) as url,
        connected(url) as database,
        running_receiver(slow_seconds=1.0) as receiver,
    ):
        key = await make_api_key(database, "admin", name="admin")
        acknowledged: list[str] = []
        refused = 0
        with serve(url, tmp_path / "serve.log", **SETTINGS) as served:
            async with httpx.AsyncClient(timeout=30) as http:
                await ready(http, served)
                endpoint = await http.post(
                    f"{served.base_url}/v1/webhooks/endpoints",
                    # Each delivery takes a second: some are in flight at SIGTERM.
                    json={"url": receiver.url("/slow"), "event_types": ["feedback.received"]},
                    headers=auth(key),
                )
                assert endpoint.status_code == 201, endpoint.text

                async def send(lane: int) -> None:
                    nonlocal refused
                    for n in range(10_000):
                        body = feedback_body(external_id=f"{lane}-{n}", score=9, customer=None)
                        try:
                            answer = await http.post(
                                f"{served.base_url}/v1/feedback", json=body, headers=auth(key)
                            )
                        except httpx.TransportError:
                            refused += 1
                            return  # the server stopped accepting: it is going away
                        if answer.status_code == 503:
                            return
                        assert answer.status_code == 201, answer.text
                        acknowledged.append(answer.json()["id"])

                lanes = [asyncio.create_task(send(lane)) for lane in range(8)]
                await eventually(lambda: _at_least(acknowledged, 80, receiver.received))
                served.process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(asyncio.gather(*lanes), 40)
                returncode = await asyncio.to_thread(served.process.wait, 40)
        log = served.log_lines()
        assert returncode == 0, "\n".join(log[-30:])
        assert refused > 0
        async with database.raw() as conn:
            stored = {str(r["id"]) for r in await conn.fetch("SELECT id FROM feedback")}
            attempts = Counter(
                {
                    r["message_id"].hex: r["n"]
                    for r in await conn.fetch(
                        "SELECT message_id, count(*) AS n FROM delivery_attempt GROUP BY 1"
                    )
                }
            )
    assert set(acknowledged) <= stored
    arrivals = Counter(r.headers["webhook-id"].removeprefix("msg_") for r in receiver.received)
    assert arrivals, "no delivery was in flight"
    assert arrivals == attempts
    assert set(attempts.values()) == {1}
    assert not any("cut short" in line for line in log)


async def _at_least(acknowledged: list[str], count: int, received: Sequence[object]) -> bool:
    return len(acknowledged) >= count and len(received) > 0
