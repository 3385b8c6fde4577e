"""Several webhook dispatchers on one outbox (SPEC §5): an idle one sends promptly, two send
every message exactly once, and killing a `closeloop worker` process mid-flight loses none."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from app.core.config import Settings
from app.core.db import Database
from tests.builders import register_endpoint
from tests.notifications.dispatching import (
    arrived,
    count_rows,
    dispatching,
    eventually,
    insert_messages,
    messages_once,
    post_feedback,
    webhook_ids,
)
from tests.receiver import Receiver, running_receiver

pytestmark = pytest.mark.usefixtures("dispatcher_errors")


CLOSELOOP = Path(sys.executable).parent / "closeloop"


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
        first = await messages_once(
            committed_client, endpoint["id"], lambda ms: ms[0]["status"] == "delivered"
        )
        await post_feedback(committed_client)
        await receiver.wait_for(2, "/ok", within=10)
        both = await messages_once(
            committed_client,
            endpoint["id"],
            lambda ms: len(ms) == 2 and all(m["status"] == "delivered" for m in ms),
        )
    # The new message woke the idle dispatcher: it arrived, once, and is on record as sent.
    assert [m["id"] for m in first] == [both[1]["id"]]
    assert webhook_ids(receiver.at("/ok")) == [
        f"msg_{uuid.UUID(m['id']).hex}" for m in reversed(both)
    ]


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


def _ports_to(pid: int, port: int) -> set[int]:
    """The local ports of the process's open connections to the receiver."""
    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }


def _sends_to(pid: int, port: int) -> bool:
    """The process has a connection open to the receiver."""
    return bool(_ports_to(pid, port))


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

            async def victim_mid_send() -> bool:
                # Frozen while the receiver holds one of its requests, the victim dies holding
                # that message's lease, so the survivor must take it over (a victim killed
                # between two claims would hold none, and the test would prove nothing).
                victim.send_signal(signal.SIGSTOP)
                if _ports_to(victim.pid, receiver.port) & receiver.in_flight:
                    return True
                victim.send_signal(signal.SIGCONT)
                return False

            await eventually(victim_mid_send, within=10)
            victim.kill()  # SIGKILL: no chance to finish or record anything
            assert await asyncio.wait_for(victim.wait(), 10) == -signal.SIGKILL
            async with committed.raw() as conn:
                # Every lease held at the kill, with the time it runs out: the victim's among them.
                leased_at_kill = await conn.fetch(
                    "SELECT id, next_attempt_at AS lease_end FROM outbox_message "
                    "WHERE status = 'pending' AND lease_token IS NOT NULL"
                )
            assert leased_at_kill, "no message was leased when the victim died"
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
                    "SELECT count(*) FROM outbox_message m "
                    "JOIN unnest($1::uuid[], $2::timestamptz[]) AS k(id, lease_end) ON k.id = m.id "
                    "WHERE m.delivered_at >= k.lease_end",
                    [r["id"] for r in leased_at_kill],
                    [r["lease_end"] for r in leased_at_kill],
                )
            # The survivor records its own leased messages before their leases end; the victim's
            # were recorded only after theirs ran out, when the survivor sent them again.
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
