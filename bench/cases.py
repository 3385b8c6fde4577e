"""Case queues at scale: `GET /v1/cases?status=open&team=X&limit=50` at 10,000 and 1,000,000 cases.

    .venv/bin/python -m bench.cases               (about 5 to 10 minutes, most of it seeding)

What runs. A fresh database in the embedded PostgreSQL (.closeloop-bench/, default durable
settings), migrated, with 20 teams. Cases are seeded straight into `feedback_case` by one
`INSERT ... SELECT FROM generate_series` per phase (not through the API), each with the feedback
item that opened it and their link (`feedback`, `case_feedback`), as ingest leaves them: first
10,000 cases, then 990,000 more. Teams are uneven, as support queues are (the busiest has a
fifth of the cases, the quietest 2 %); statuses 30 % open, 15 % in progress, 10 % waiting on the
customer, 25 % resolved, 20 % closed; priorities low 20 %, normal 50 %, high 22 %, urgent 8 %.
Active cases were opened in the last 7 days, resolved ones resolved in the last 7 (older ones
the service closes by itself), closed ones opened 10 to 90 days ago; due times follow from the
team's SLA targets, breach flags from the due times: the service's SLA monitor finds nothing to
catch up on. After each phase: VACUUM ANALYZE and a CHECKPOINT, as for a table that has lived.

What is measured, at each size, for the busiest team's open cases, by one client (httpx, one
keep-alive connection, one request at a time, so each time is a whole round trip with nothing
queued behind it): the first page, again and again; and a deep page, reached by following
`next_cursor` up to 100 pages in (as deep as the queue goes at 10,000 cases), then requested
again and again with that cursor. Each point takes 30 warm-up requests, then 1,000 measured.
The service runs as one `closeloop serve` process on 127.0.0.1 all along; a non-200 answer
stops the benchmark with the answer shown.

How to read it. p50/p99 are the client's round-trip times until the whole answer is read, the
HTTP client's own time included (a few tenths of a millisecond; decoding the JSON is not).
Targets: p99 ≤ 25 ms at every point, and p99 at 1,000,000 over p99 at 10,000 ≤ 1.5 for each
page: a queue must not slow down as the table grows (keyset pagination over the index on
team, status, resolution_due_at, id). The plans shown are those of the service's two queries
(the page of cases, then their feedback items) as SQLAlchemy writes them, with EXPLAIN
(ANALYZE, BUFFERS): the page prepared, with a custom and a generic plan (prepared statements
may switch to a generic plan after five runs). The ingest half of the issue, 30 % negative
feedback opening cases, is `python -m bench.ingest --negative-share 0.3`: printed, not run.

Exit status: 0 when every target passes, 1 when one fails, 2 when it could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from app.core.db import asyncpg_dsn
from app.core.embedded import EmbeddedPostgres
from app.core.schemas import decode_cursor
from app.feedback.reads import CASE_ITEMS
from bench._cases_seed import TEAM_COUNT, TEAMS_SQL, seed
from bench._measure import cpu_use
from bench._postgres import embedded_postgres, fresh_database, postgres_version, run_sql
from bench.common import (
    QUIET_OTHER_CORES,
    BenchError,
    ServerProcess,
    closeloop_server,
    create_api_key,
    machine,
    percentiles,
    progress,
    run_cleanly,
    save_result,
    service_environment,
)

TARGET_P99_MS = 25.0
TARGET_RATIO = 1.5
DATABASE = "closeloop_bench_cases"
PAGE_SIZE = 50
PATH = "/v1/cases"

# The service's two queries for a page (app/cases/reads.py, app/feedback/reads.py). The page
# query as SQLAlchemy writes it for the one filter and sort timed here; the items query is the
# app's own, not a copy, with its one parameter in asyncpg's style.
PAGE_SQL = """
SELECT * FROM feedback_case WHERE status = $1::VARCHAR AND team = $2::VARCHAR {after}
ORDER BY resolution_due_at, id LIMIT $3::INTEGER
"""
ITEMS_SQL = CASE_ITEMS.text.replace(":ids", "$1")


FACTS_SQL = """
SELECT (SELECT count(*) FROM feedback_case) AS cases,
       (SELECT count(*) FROM feedback_case WHERE team = $1 AND status = 'open') AS team_open_cases,
       round(pg_total_relation_size('feedback_case') / 2.0 ^ 20)::float8 AS feedback_case_mb,
       round(pg_database_size(current_database()) / 2.0 ^ 20)::float8 AS database_mb,
       (SELECT count(*) FROM feedback_case WHERE
            (status = 'open' AND NOT first_response_breached AND first_response_due_at <= now())
            OR (status IN ('open', 'in_progress') AND NOT resolution_breached
                AND resolution_due_at <= now())
            OR (status = 'resolved' AND resolved_at <= now() - interval '7 days')
       ) AS sla_backlog
"""


def _after(cursor: str | None) -> tuple[str, list[Any]]:
    """The keyset condition a cursor stands for, as the service builds it."""
    if cursor is None:
        return "", []
    _, due, last_id = decode_cursor(cursor, 3)
    condition = "AND (resolution_due_at, id) > ($4::TIMESTAMP WITH TIME ZONE, $5::UUID)"
    return condition, [datetime.fromisoformat(due), uuid.UUID(last_id)]


async def _plans(database_url: str, team: str, cursor: str | None) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a page's two queries: the page prepared as the service's
    driver prepares it, with a custom and a generic plan, then its feedback items."""
    condition, after = _after(cursor)
    page_sql = PAGE_SQL.format(after=condition)
    values = ["open", team, PAGE_SIZE + 1, *after]
    types = "varchar, varchar, integer" + (", timestamptz, uuid" if after else "")
    # Only values this module made or parsed (a number, a timestamp, a UUID) become literals.
    arguments = ", ".join(f"'{value}'" for value in values)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        plans = {}
        await conn.execute(f"PREPARE page({types}) AS {page_sql}")
        for mode in ("custom", "generic"):
            await conn.execute(f"SET plan_cache_mode = force_{mode}_plan")
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE page({arguments})")
            plans[f"page, {mode} plan"] = "\n".join(r[0] for r in rows)
        await conn.execute("RESET plan_cache_mode")
        ids = [r["id"] for r in await conn.fetch(page_sql, *values)][:PAGE_SIZE]
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + ITEMS_SQL, ids)
        plan = "\n".join(r[0] for r in rows)
        plans["feedback items"] = re.sub(r"'\{[^}]{200,}\}'", "'{...the page's case ids...}'", plan)
        return plans
    finally:
        await conn.close()


def _get(client: httpx.Client, params: dict[str, str]) -> httpx.Response:
    answer = client.get(PATH, params=params)
    if answer.status_code != 200:
        raise BenchError(
            f"GET {PATH} answered {answer.status_code}, not 200 (params {params}):\n"
            f"{answer.text[:2000]}"
        )
    return answer


def _check_page(answer: httpx.Response, team: str) -> dict[str, Any]:
    """A full page of the team's open cases, oldest due first, or the benchmark stops."""
    body: dict[str, Any] = answer.json()
    items = body.get("items", [])
    due = [item["resolution_due_at"] for item in items]
    if (
        len(items) != PAGE_SIZE
        or any(item["status"] != "open" or item["team"] != team for item in items)
        or [datetime.fromisoformat(d) for d in due]
        != sorted(datetime.fromisoformat(d) for d in due)
    ):
        raise BenchError(
            f"not a full page of {team}'s open cases in due order:\n{answer.text[:2000]}"
        )
    return body


def deep_cursor(client: httpx.Client, query: dict[str, str], depth: int) -> tuple[str, int]:
    """Follow next_cursor to page `depth`, or to the last full page before it; that page's
    cursor and its number."""
    cursor, page = None, 1
    body = _check_page(_get(client, query), query["team"])
    while page < depth and body["next_cursor"]:
        answer = _get(client, query | {"cursor": body["next_cursor"]})
        if len(answer.json()["items"]) < PAGE_SIZE:
            break
        cursor, page = body["next_cursor"], page + 1
        body = _check_page(answer, query["team"])
    if cursor is None:
        raise BenchError(f"{query['team']} has a single page of open cases: no deep page to time")
    return cursor, page


def time_page(
    client: httpx.Client, query: dict[str, str], *, warmup: int, count: int
) -> list[float]:
    """Round-trip times of one page, in ms, each request sent when the last one was answered."""
    _check_page(_get(client, query), query["team"])
    for _ in range(warmup):
        _get(client, query)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(PATH, params=query)
        samples.append((time.perf_counter() - started) * 1e3)
        if answer.status_code != 200:
            raise BenchError(f"GET {PATH} answered {answer.status_code}:\n{answer.text[:2000]}")
    return samples


@dataclass(frozen=True)
class Target:
    """The running service, its database and the client that times it."""

    client: httpx.Client
    service: ServerProcess
    postgres: EmbeddedPostgres
    database_url: str


def time_point(target: Target, query: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """One page's round-trip percentiles, and how busy the rest of the machine was meanwhile."""
    with cpu_use(target.service, target.postgres) as account:
        samples = time_page(target.client, query, warmup=args.warmup_requests, count=args.requests)
    figures = {k: round(v, 3) for k, v in percentiles(samples).items()}
    return {**figures, "cores_busy": account[0].cores()}


def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Both pages of the team's open queue at the table's current size."""
    query = {"status": "open", "team": args.team, "limit": str(PAGE_SIZE)}
    facts = dict(run_sql(target.database_url, [(FACTS_SQL, [args.team])])[0])
    progress(f"{facts['cases']:,} cases: timing the first page")
    first = time_point(target, query, args)
    cursor, page = deep_cursor(target.client, query, args.depth)
    progress(f"{facts['cases']:,} cases: timing page {page}")
    deep = time_point(target, query | {"cursor": cursor}, args)
    return {
        **facts,
        "first_page": first,
        "deep_page": {"page": page, **deep},
        "plans": {
            "first page": asyncio.run(_plans(target.database_url, args.team, None)),
            f"page {page}": asyncio.run(_plans(target.database_url, args.team, cursor)),
        },
    }


def verdicts(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for page in ("first_page", "deep_page"):
        ratio = large[page]["p99"] / small[page]["p99"]
        checks[page] = {
            "p99_ratio": round(ratio, 3),
            "p50_ratio": round(large[page]["p50"] / small[page]["p50"], 3),
            "p99_ok": max(small[page]["p99"], large[page]["p99"]) <= TARGET_P99_MS,
            "ratio_ok": ratio <= TARGET_RATIO,
        }
    passed = all(c["p99_ok"] and c["ratio_ok"] for c in checks.values())
    return {"checks": checks, "verdict": "PASS" if passed else "FAIL"}


def report(result: dict[str, Any]) -> str:
    host, sizes = result["machine"], result["results"]
    lines = [
        "",
        f"Case queue benchmark: GET {PATH}?status=open&team={result['settings']['team']}"
        f"&limit={PAGE_SIZE}, {result['started_at']}",
        f"machine   {host['cores']} cores, {host['platform']}, Python {host['python']}, "
        f"PostgreSQL {host['postgresql']} (embedded, fsync on)",
        f"settings  one client, one keep-alive connection, {result['settings']['requests']} "
        f"requests per point after {result['settings']['warmup_requests']} warm-up",
        "",
        f"{'cases':>10} {'team open':>10} {'page':>6} {'p50':>9} {'p90':>9} {'p99':>9} "
        f"{'max':>9} {'other':>6}  seeded in, feedback_case size",
    ]
    for size in sizes:
        for name in ("first_page", "deep_page"):
            t = size[name]
            lines.append(
                f"{size['cases']:>10,} {size['team_open_cases']:>10,} {t.get('page', 1):>6} "
                f"{t['p50']:>6.2f} ms {t['p90']:>6.2f} ms {t['p99']:>6.2f} ms {t['max']:>6.1f} ms"
                f" {t['cores_busy']['other']:>6.2f}  {size['seed_s']:.0f} s, "
                f"{size['feedback_case_mb']:,.0f} MB with indexes"
            )
    lines.append("")
    for name, check in result["checks"].items():
        lines.append(
            f"{name.replace('_', ' '):<10} p99 ≤ {TARGET_P99_MS:g} ms: "
            f"{'PASS' if check['p99_ok'] else 'FAIL'}; p99 {sizes[-1]['cases']:,}/"
            f"{sizes[0]['cases']:,}: {check['p99_ratio']:.2f} (p50 {check['p50_ratio']:.2f}), "
            f"target ≤ {TARGET_RATIO}: {'PASS' if check['ratio_ok'] else 'FAIL'}"
        )
    lines.append(f"verdict: {result['verdict']}")
    if result["warnings"]:
        lines += [f"  warning: {warning}" for warning in result["warnings"]]
    for size in sizes:
        for page, plans in size["plans"].items():
            for name, plan in plans.items():
                lines += ["", f"-- {size['cases']:,} cases, {page}: {name}", plan]
    return "\n".join(lines)


def run(stack: ExitStack, args: argparse.Namespace) -> int:
    from app.core.migrations import upgrade

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    host = machine(("fastapi", "sqlalchemy", "asyncpg", "httpx"))
    progress("starting the embedded PostgreSQL (.closeloop-bench/)")
    postgres = stack.enter_context(embedded_postgres())
    url = stack.enter_context(fresh_database(postgres, DATABASE))
    host["postgresql"] = postgres_version(url)
    upgrade(url)
    run_sql(url, [(TEAMS_SQL, [TEAM_COUNT])])
    seeded = seed(url, 1, args.small)
    env = service_environment(url)
    key = create_api_key(env, ["cases:read"])
    service = stack.enter_context(closeloop_server(env))
    client = stack.enter_context(
        httpx.Client(
            base_url=service.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
    )
    target = Target(client, service, postgres, url)

    def measured(seeded: float) -> dict[str, Any]:
        try:
            return {"seed_s": round(seeded, 1), **measure(target, args)}
        except BenchError as exc:
            raise BenchError(f"{exc}\nthe service's log ends:\n{service.output_tail()}") from exc

    sizes = [measured(seeded)]
    sizes.append(measured(seed(url, args.small + 1, args.cases)))

    result: dict[str, Any] = {
        "benchmark": "cases",
        "started_at": started_at,
        "machine": host,
        "settings": {**vars(args), "path": PATH, "teams": TEAM_COUNT, "limit": PAGE_SIZE},
        "results": sizes,
        "targets": {"p99_ms": TARGET_P99_MS, "ratio": TARGET_RATIO},
        **verdicts(sizes[0], sizes[1]),
        "warnings": [
            f"other processes kept {size[page]['cores_busy']['other']:.2f} cores busy while "
            f"{page.replace('_', ' ')} was timed at {size['cases']:,} cases: its p99 is high by "
            "an unknown amount; run it again when the machine is quiet"
            for size in sizes
            for page in ("first_page", "deep_page")
            if size[page]["cores_busy"]["other"] > QUIET_OTHER_CORES
        ],
    }
    saved = save_result("cases", result)
    print(report(result))
    print(f"\n  saved to {saved}")
    print(
        "  next, the ingest half of the issue (30 % negative feedback opening cases):\n"
        "    .venv/bin/python -m bench.ingest --negative-share 0.3"
    )
    return 0 if result["verdict"] == "PASS" else 1


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cases", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases in the end (1000000)")
    parser.add_argument("--small", type=int, default=10_000, help="cases first (10000)")
    parser.add_argument("--requests", type=int, default=1000, help="timed requests a point (1000)")
    parser.add_argument("--warmup-requests", type=int, default=30, help="before each point (30)")
    parser.add_argument("--depth", type=int, default=100, help="the deep page's number (100)")
    parser.add_argument("--team", default="team_00", help="whose queue (team_00, the busiest)")
    args = parser.parse_args(argv)
    if not 0 < args.small < args.cases or args.requests < 300 or args.depth < 2:
        parser.error("0 < --small < --cases, --requests ≥ 300 and --depth ≥ 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(argv)
    return run_cleanly(lambda stack: run(stack, args))


if __name__ == "__main__":
    sys.exit(main())
