"""The reports at size: scores and closed-loop figures over 1,000,000 feedback rows, 200,000 cases.

    .venv/bin/python -m bench.reports             (a few minutes, most of it seeding)
    .venv/bin/python -m bench.reports --without-report-indexes     (the same without them)

What runs. A fresh database in the embedded PostgreSQL (.closeloop-bench/, default durable
settings), migrated, with 20 teams and one webhook endpoint, seeded straight into the tables by
`INSERT ... SELECT FROM generate_series` (not through the API), over the last 365 days, in
time order as a live service writes them:
200,000 cases, each with the negative feedback item that opened it (NPS 0–6; 85 % with contact
consent); those older than 9 days closed, the rest open, in progress, waiting or resolved; a
delivered case.resolved message for 90 % of the resolved or closed cases with consent (a failed
one for the rest); a `resolved` event for each resolved or closed case and a `reopened` one for
8 %; a follow-up answer for 30 % of the told cases (half of them negative). Then 800,000 more
feedback items, neither negative nor in a case: NPS 7–10, CSAT 3–5, CES 4–7 or star 3–5 over 10
channels, 8 sources, 6 touchpoints and 7 journey stages. The reports' triggers count them into
the rollups as they are inserted (as for any writer); the counts are folded as the worker folds
them. Then VACUUM ANALYZE and a CHECKPOINT.

What is measured: each typical query below, by one client (httpx, one keep-alive connection,
one request at a time), 10 warm-up requests then `--requests` measured; p50/p99 are the
client's round-trip times until the whole answer is read. Target: p99 < 300 ms for each.
The plans of the scores statements (last month by stage, the year by month) and the closed-loop
one (last month by team) are printed after the figures.
The service runs as one `closeloop serve` process on 127.0.0.1.

Exit status: 0 when every target passes, 1 when one fails, 2 when it could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from bench._postgres import embedded_postgres, fresh_database, postgres_version, run_sql
from bench._reports_seed import ENDPOINT_SQL, SETUP_SQL, TEAM_COUNT, seed
from bench.common import (
    BenchError,
    closeloop_server,
    create_api_key,
    machine,
    percentiles,
    progress,
    run_cleanly,
    save_result,
    service_environment,
)

TARGET_P99_MS = 300.0
DATABASE = "closeloop_bench_reports"

FACTS_SQL = """
SELECT (SELECT count(*) FROM feedback) AS feedback, (SELECT count(*) FROM feedback_case) AS cases,
       (SELECT count(*) FROM outbox_message) AS messages,
       round(pg_total_relation_size('feedback') / 2.0 ^ 20)::float8 AS feedback_mb,
       round(pg_database_size(current_database()) / 2.0 ^ 20)::float8 AS database_mb
"""


def queries(today: date) -> dict[str, tuple[str, dict[str, str]]]:
    """The typical questions: last month by stage, channel and team; a quarter by day in a
    time zone; the year by month; the loop of last month per team and per stage."""
    first = today.replace(day=1)
    last_month = {"from": (first - timedelta(days=1)).replace(day=1).isoformat()}
    last_month["to"] = (first - timedelta(days=1)).isoformat()
    quarter = {"from": (today - timedelta(days=90)).isoformat(), "to": today.isoformat()}
    year = {"from": (today - timedelta(days=365)).isoformat(), "to": today.isoformat()}
    scores, loop = "/v1/reports/scores", "/v1/reports/closed-loop"
    return {
        "NPS by journey stage, last month": (
            scores,
            {"metric": "nps", "group_by": "journey_stage", **last_month},
        ),
        "CSAT by channel, last month": (
            scores,
            {"metric": "csat", "group_by": "channel", **last_month},
        ),
        "NPS by team, last month": (scores, {"metric": "nps", "group_by": "team", **last_month}),
        "NPS by day, 90 days, Europe/Lisbon": (
            scores,
            {"metric": "nps", "group_by": "day", "tz": "Europe/Lisbon", **quarter},
        ),
        "NPS by month, 365 days": (scores, {"metric": "nps", "group_by": "month", **year}),
        "closed loop by team, last month": (loop, {"group_by": "team", **last_month}),
        "closed loop by journey stage, last month": (
            loop,
            {"group_by": "journey_stage", **last_month},
        ),
        "closed loop by team, 90 days": (loop, {"group_by": "team", **quarter}),
    }


def time_query(
    client: httpx.Client, path: str, params: dict[str, str], *, warmup: int, count: int
) -> dict[str, Any]:
    samples = []
    for i in range(warmup + count):
        started = time.perf_counter()
        answer = client.get(path, params=params)
        elapsed = (time.perf_counter() - started) * 1e3
        if answer.status_code != 200:
            raise BenchError(f"GET {path} answered {answer.status_code}:\n{answer.text[:2000]}")
        if i >= warmup:
            samples.append(elapsed)
    overall = answer.json()["overall"]
    counted = overall.get("count", overall.get("negative_feedback"))
    return {**{k: round(v, 2) for k, v in percentiles(samples).items()}, "rows_counted": counted}


def _positional(sql: str, named: dict[str, Any]) -> tuple[str, list[Any]]:
    """A statement with :name parameters as asyncpg takes it: $1, $2, ... and a list."""
    names = list(dict.fromkeys(re.findall(r"(?<!:):([a-z_]+)", sql)))
    for n, name in enumerate(names, start=1):
        sql = re.sub(rf"(?<!:):{name}\b", f"${n}", sql)
    return sql, [named[name] for name in names]


def plans(url: str, today: date) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of last month's NPS by journey stage, the year's NPS by month
    and last month's loop by team, as the service sends them."""
    from app.reports.closed_loop import loop_statement
    from app.reports.period import report_period
    from app.reports.rollups import counts_statement
    from app.reports.schemas import LoopGroup, ScoreGroup

    asked = queries(today)
    month = asked["NPS by journey stage, last month"][1]
    year = asked["NPS by month, 365 days"][1]
    period = report_period(month["from"], month["to"], "UTC")
    whole = report_period(year["from"], year["to"], "UTC")
    bounds = {"start": period.start, "end": period.end}
    statements = {
        "NPS by journey stage, last month": counts_statement(
            metric="nps",
            group_by=ScoreGroup.JOURNEY_STAGE,
            start=period.start,
            end=period.end,
            tz="UTC",
        ),
        "NPS by month, 365 days": counts_statement(
            metric="nps", group_by=ScoreGroup.MONTH, start=whole.start, end=whole.end, tz="UTC"
        ),
        "closed loop by team, last month": (loop_statement(LoopGroup.TEAM), bounds),
    }
    found = {}
    for name, (sql, named) in statements.items():
        positional, arguments = _positional(sql, named)
        rows = run_sql(url, [("EXPLAIN (ANALYZE, BUFFERS) " + positional, arguments)])
        found[name] = "\n".join(r[0] for r in rows)
    return found


def run(stack: ExitStack, args: argparse.Namespace) -> int:
    from app.core.migrations import upgrade

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    host = machine(("fastapi", "sqlalchemy", "asyncpg", "httpx"))
    progress("starting the embedded PostgreSQL (.closeloop-bench/)")
    postgres = stack.enter_context(embedded_postgres())
    url = stack.enter_context(fresh_database(postgres, DATABASE))
    host["postgresql"] = postgres_version(url)
    upgrade(url)
    run_sql(url, [(SETUP_SQL, [TEAM_COUNT]), (ENDPOINT_SQL, [])])
    seeded = seed(url, args.cases, args.feedback, report_indexes=not args.without_report_indexes)
    facts = dict(run_sql(url, [(FACTS_SQL, [])])[0])
    env = service_environment(url)
    key = create_api_key(env, ["reports:read"])
    service = stack.enter_context(closeloop_server(env))
    client = stack.enter_context(
        httpx.Client(
            base_url=service.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
    )
    today = datetime.now(UTC).date()
    results = {}
    for name, (path, params) in queries(today).items():
        progress(f"timing {name}")
        try:
            results[name] = time_query(
                client, path, params, warmup=args.warmup_requests, count=args.requests
            )
        except BenchError as exc:
            raise BenchError(f"{exc}\nthe service's log ends:\n{service.output_tail()}") from exc
    passed = all(r["p99"] < TARGET_P99_MS for r in results.values())
    result: dict[str, Any] = {
        "benchmark": "reports",
        "started_at": started_at,
        "machine": host,
        "settings": vars(args),
        "seed_s": round(seeded, 1),
        **facts,
        "results": results,
        "target_p99_ms": TARGET_P99_MS,
        "verdict": "PASS" if passed else "FAIL",
        "plans": plans(url, today),
    }
    saved = save_result("reports", result)
    print(
        f"\nReports benchmark, {started_at}: {facts['feedback']:,} feedback rows, "
        f"{facts['cases']:,} cases, {facts['messages']:,} messages "
        f"(feedback {facts['feedback_mb']:,.0f} MB with indexes; seeded in {seeded:.0f} s); "
        f"report indexes {'dropped' if args.without_report_indexes else 'present'}"
    )
    print(
        f"machine   {host['cores']} cores, {host['platform']}, Python {host['python']}, "
        f"PostgreSQL {host['postgresql']} (embedded, fsync on)"
    )
    print(f"one client, {args.requests} requests a query after {args.warmup_requests} warm-up\n")
    print(f"{'query':<44} {'counted':>9} {'p50':>10} {'p99':>10} {'max':>10}")
    for name, r in results.items():
        print(
            f"{name:<44} {r['rows_counted']:>9,} {r['p50']:>7.1f} ms {r['p99']:>7.1f} ms "
            f"{r['max']:>7.1f} ms"
        )
    print(f"\np99 < {TARGET_P99_MS:g} ms for every query: {result['verdict']}")
    for name, plan in result["plans"].items():
        print(f"\n-- {name}\n{plan}")
    print(f"\n  saved to {saved}")
    return 0 if passed else 1


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reports", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--feedback", type=int, default=1_000_000, help="rows (1000000)")
    parser.add_argument("--cases", type=int, default=200_000, help="cases (200000)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests a query (200)")
    parser.add_argument("--warmup-requests", type=int, default=10, help="before each (10)")
    parser.add_argument(
        "--without-report-indexes",
        action="store_true",
        help="drop the reports' covering indexes first, to see what they are worth",
    )
    args = parser.parse_args(argv)
    if not 0 < args.cases < args.feedback or args.requests < 100:
        parser.error("0 < --cases < --feedback and --requests ≥ 100")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(argv)
    return run_cleanly(lambda stack: run(stack, args))


if __name__ == "__main__":
    sys.exit(main())
