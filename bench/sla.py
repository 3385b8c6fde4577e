"""Auto-closing a backlog: 100,000 quiet resolved cases closed by the SLA monitor's pass.

    .venv/bin/python -m bench.sla                 (about a minute, most of it seeding)

What runs. A fresh database in the embedded PostgreSQL (.closeloop-bench/, default durable
settings), migrated, with 20 teams and two webhook endpoints subscribed to every event. Cases
are seeded as bench/cases.py seeds them (one `INSERT ... SELECT FROM generate_series`, each with
the feedback item that opened it), then all of them are made resolved 8 days ago, VACUUM
ANALYZE, CHECKPOINT. Then one pass of the SLA monitor (`app.cases.sla.run_pass`, as `closeloop
worker` runs it, in this process) with auto-close after 7 days.

What is measured: the pass's wall time, cases closed per second, the WAL it wrote (bytes per
case, from pg_current_wal_lsn() around it), and a check that every case got its two events and
one message per endpoint for each of its two webhook events. Target: ≥ 2,000 cases/s.

Exit status: 0 when the target passes, 1 when it fails, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from app.cases.sla import run_pass
from app.core.db import Database
from bench._cases_seed import TEAM_COUNT, TEAMS_SQL, seed
from bench._postgres import checkpoint, embedded_postgres, fresh_database, postgres_version, run_sql
from bench.common import BenchError, machine, progress, run_cleanly, save_result

TARGET_CASES_PER_SECOND = 2000.0
DATABASE = "closeloop_bench_sla"

RESOLVE_ALL_SQL = """
UPDATE feedback_case SET status = 'resolved', resolved_at = now() - interval '8 days',
    closed_at = NULL, resolution_code = 'fixed', waiting_since = NULL
"""
ENDPOINTS_SQL = """
INSERT INTO webhook_endpoint (id, url, event_types, enabled, secret, created_at, updated_at)
SELECT gen_random_uuid(), 'https://hooks.example.com/' || i, '{*}', true, 'whsec_bench', now(),
       now()
FROM generate_series(1, 2) AS i
"""
CHECK_SQL = """
SELECT (SELECT count(*) FROM feedback_case WHERE status = 'closed') AS closed,
       (SELECT count(*) FROM case_event WHERE type = 'closed') AS closed_events,
       (SELECT count(*) FROM case_event WHERE type = 'status_changed') AS moved_events,
       (SELECT count(*) FROM outbox_message WHERE event_type = 'case.closed') AS closed_messages,
       (SELECT count(*) FROM outbox_message WHERE event_type = 'case.status_changed')
           AS moved_messages
"""


async def timed_pass(url: str) -> dict[str, Any]:
    database = await Database.connect(url, pool_size=4)
    try:
        async with database.raw() as conn:
            wal_before = await conn.fetchval("SELECT pg_current_wal_lsn()")
        started = time.perf_counter()
        result = await run_pass(database.sessionmaker, autoclose_after=timedelta(days=7))
        seconds = time.perf_counter() - started
        async with database.raw() as conn:
            wal = await conn.fetchval(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)", wal_before
            )
            check = dict(await conn.fetchrow(CHECK_SQL) or {})
    finally:
        await database.close()
    return {"seconds": seconds, "closed": result.closed, "wal_bytes": int(wal), "check": check}


def run(stack: ExitStack, args: argparse.Namespace) -> int:
    from app.core.migrations import upgrade

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    host = machine(("sqlalchemy", "asyncpg"))
    progress("starting the embedded PostgreSQL (.closeloop-bench/)")
    postgres = stack.enter_context(embedded_postgres())
    url = stack.enter_context(fresh_database(postgres, DATABASE))
    host["postgresql"] = postgres_version(url)
    upgrade(url)
    run_sql(url, [(TEAMS_SQL, [TEAM_COUNT]), (ENDPOINTS_SQL, [])])
    seeded = seed(url, 1, args.cases)
    run_sql(url, [(RESOLVE_ALL_SQL, []), ("VACUUM ANALYZE feedback_case", [])])
    checkpoint(url)
    progress(f"closing {args.cases:,} quiet resolved cases in one pass")
    measured = asyncio.run(timed_pass(url))
    check = measured["check"]
    expected = {
        "closed": args.cases,
        "closed_events": args.cases,
        "moved_events": args.cases,
        "closed_messages": 2 * args.cases,
        "moved_messages": 2 * args.cases,
    }
    if check != expected or measured["closed"] != args.cases:
        raise BenchError(f"the pass closed {measured['closed']:,}: found {check}, not {expected}")
    rate = args.cases / measured["seconds"]
    result = {
        "benchmark": "sla",
        "started_at": started_at,
        "machine": host,
        "settings": vars(args),
        "seed_s": round(seeded, 1),
        "pass_s": round(measured["seconds"], 2),
        "cases_per_s": round(rate),
        "wal_bytes_per_case": round(measured["wal_bytes"] / args.cases),
        "check": check,
        "target_cases_per_s": TARGET_CASES_PER_SECOND,
        "verdict": "PASS" if rate >= TARGET_CASES_PER_SECOND else "FAIL",
    }
    saved = save_result("sla", result)
    print(
        f"auto-close: {args.cases:,} cases in {measured['seconds']:.2f} s = {rate:,.0f} cases/s "
        f"(target ≥ {TARGET_CASES_PER_SECOND:,.0f}): {result['verdict']}\n"
        f"  WAL {result['wal_bytes_per_case']:,} bytes a case (2 events, 4 messages, the case)\n"
        f"  saved to {saved}"
    )
    return 0 if result["verdict"] == "PASS" else 1


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sla", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--cases", type=int, default=100_000, help="resolved cases (100000)")
    args = parser.parse_args(argv)
    if args.cases < 1000:
        parser.error("--cases ≥ 1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(argv)
    return run_cleanly(lambda stack: run(stack, args))


if __name__ == "__main__":
    sys.exit(main())
