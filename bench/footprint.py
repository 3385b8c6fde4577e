"""What one feedback item costs the database and the CPU: the figures docs/scale.md's model uses.

    .venv/bin/python -m bench.footprint           (about a minute)

What runs. A fresh database in the embedded PostgreSQL (.closeloop-bench/, default durable
settings), migrated, one team, one webhook endpoint subscribed to `case.*` (the dispatcher off,
so only ingest is measured). One `closeloop serve` process; one client sends `--items` single
items (`POST /v1/feedback`, 32 at a time) shaped like the issue's realistic stream: 60 % NPS
detractors, every item with a comment (four languages), an e-mail and attributes, from 5,000
customers who come back (so complaints join open cases).

What is measured around the run: WAL bytes (pg_current_wal_lsn()), the growth of each table
with its indexes (pg_total_relation_size, after VACUUM), and CPU seconds of the service process
and of every PostgreSQL process (user + system), each per item; and items/s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil

from bench._measure import postgres_cpu_seconds
from bench._postgres import embedded_postgres, fresh_database, postgres_version, run_sql
from bench.common import (
    closeloop_server,
    create_api_key,
    machine,
    progress,
    run_cleanly,
    save_result,
    service_environment,
)

DATABASE = "closeloop_bench_footprint"
TABLES = (
    "feedback",
    "feedback_case",
    "case_feedback",
    "case_event",
    "outbox_message",
    "customer",
    "customer_identity",
    "report_score_rollup",
    "report_case",
    "report_loop_item",
    "report_case_dirty",
)
COMMENTS = (
    "The parcel arrived two weeks late and support never answered my e-mails",
    "Entrega atrasada e ninguém respondeu, quero o reembolso",
    "El pedido llegó roto y nadie contesta el teléfono",
    "快递太慢了，客服也不回复，我要退款",
    "Great service, the courier was friendly and quick",
    "Everything fine, would buy again",
)
SIZES_SQL = "SELECT " + ", ".join(f"pg_total_relation_size('{t}') AS {t}" for t in TABLES)


def body(rng: random.Random, n: int) -> dict[str, Any]:
    detractor = rng.random() < 0.6
    customer = rng.randrange(5000)
    return {
        "source": "checkout-web",
        "channel": rng.choice(["web", "app", "email"]),
        "external_id": f"fp-{n}",
        "metric": "nps",
        "score": rng.randrange(0, 7) if detractor else rng.choice([7, 8, 9, 10]),
        "comment": rng.choice(COMMENTS[:4] if detractor else COMMENTS[4:]),
        "customer": {
            "external_id": f"cus_{customer}",
            "email": f"customer{customer}@example.com",
            "locale": "en",
        },
        "touchpoint": "order-tracking",
        "attributes": {"plan": rng.choice(["free", "pro", "enterprise"]), "order_id": f"A-{n}"},
    }


async def send(base_url: str, key: str, items: int, concurrency: int) -> float:
    rng = random.Random(42)
    bodies = [body(rng, n) for n in range(items)]
    queue = iter(bodies)

    async def lane(client: httpx.AsyncClient) -> None:
        for item in queue:
            answer = await client.post("/v1/feedback", json=item)
            if answer.status_code != 201:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:500]}")

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=30
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(lane(client) for _ in range(concurrency)))
        return time.perf_counter() - started


def run(stack: ExitStack, args: argparse.Namespace) -> int:
    from app.core.migrations import upgrade

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    postgres = stack.enter_context(embedded_postgres())
    url = stack.enter_context(fresh_database(postgres, DATABASE))
    upgrade(url)
    run_sql(
        url,
        [
            (
                "INSERT INTO team (key, name, first_response_minutes, resolution_minutes, "
                "is_default, created_at, updated_at) "
                "VALUES ('support', 'Support', 60, 480, true, now(), now())",
                [],
            ),
            (
                "INSERT INTO webhook_endpoint (id, url, event_types, enabled, secret, created_at, "
                "updated_at) VALUES (gen_random_uuid(), 'https://hooks.example.com/in', "
                "'{case.opened,case.resolved}', true, 'whsec_bench', now(), now())",
                [],
            ),
        ],
    )
    env = {**service_environment(url), "FEEDBACK_DISPATCHER_IN_PROCESS": "false"}
    key = create_api_key(env, ["feedback:write"])
    service = stack.enter_context(closeloop_server(env))
    progress(f"sending {args.items:,} items, {args.concurrency} at a time")
    before = run_sql(url, [(f"SELECT pg_current_wal_lsn() AS lsn, {SIZES_SQL[7:]}", [])])[0]
    pg_before = postgres_cpu_seconds(postgres)
    me = psutil.Process(service.process.pid)
    cpu_before = sum(me.cpu_times()[:2])
    seconds = asyncio.run(send(service.base_url, key, args.items, args.concurrency))
    cpu_service = sum(me.cpu_times()[:2]) - cpu_before
    pg_after = postgres_cpu_seconds(postgres)
    cpu_postgres = sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items())
    wal = run_sql(
        url, [("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn) AS wal", [before["lsn"]])]
    )[0]["wal"]
    run_sql(url, [("VACUUM ANALYZE", [])])
    after = run_sql(
        url,
        [
            (
                f"{SIZES_SQL}, (SELECT count(*) FROM feedback_case) AS cases, "
                "(SELECT count(*) FROM outbox_message) AS messages",
                [],
            )
        ],
    )[0]
    per_item = {t: round((after[t] - before[t]) / args.items) for t in TABLES}
    result = {
        "benchmark": "footprint",
        "started_at": started_at,
        "machine": {**machine(("fastapi", "asyncpg")), "postgresql": postgres_version(url)},
        "settings": vars(args),
        "items_per_s": round(args.items / seconds),
        "cases": after["cases"],
        "messages": after["messages"],
        "wal_bytes_per_item": round(float(wal) / args.items),
        "disk_bytes_per_item": per_item,
        "disk_bytes_per_item_total": sum(per_item.values()),
        "cpu_ms_per_item": {
            "service": round(cpu_service * 1000 / args.items, 3),
            "postgres": round(cpu_postgres * 1000 / args.items, 3),
        },
        "load_average": psutil.getloadavg(),
    }
    saved = save_result("footprint", result)
    for name, value in result.items():
        if name not in ("machine", "started_at"):
            print(f"  {name}: {value}")
    print(f"  saved to {saved}")
    return 0


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.footprint", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--items", type=int, default=20_000, help="items sent (20000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests at once (32)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(argv)
    return run_cleanly(lambda stack: run(stack, args))


if __name__ == "__main__":
    sys.exit(main())
