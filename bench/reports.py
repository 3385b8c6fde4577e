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
channels, 8 sources, 6 touchpoints and 7 journey stages. Then VACUUM ANALYZE and a CHECKPOINT.

What is measured: each typical query below, by one client (httpx, one keep-alive connection,
one request at a time), 10 warm-up requests then `--requests` measured; p50/p99 are the
client's round-trip times until the whole answer is read. Target: p99 < 300 ms for each.
The plan of the scores and closed-loop statements for last month is printed after the figures.
The service runs as one `closeloop serve` process on 127.0.0.1.

Exit status: 0 when every target passes, 1 when one fails, 2 when it could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from bench._postgres import checkpoint, embedded_postgres, fresh_database, postgres_version, run_sql
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
TEAM_COUNT = 20
# The migration that adds them (2026-12-07-0200_report_indexes.py): dropped for the baseline.
REPORT_INDEXES = (
    "ix_feedback_report_scores",
    "ix_feedback_report_negative",
    "ix_case_feedback_added",
    "ix_case_event_report",
    "ix_outbox_message_resolved",
)

SETUP_SQL = """
INSERT INTO team (key, name, first_response_minutes, resolution_minutes, escalation_team,
                  is_default, created_at, updated_at)
SELECT 'team_' || lpad(i::text, 2, '0'), 'Team ' || i, 60 + 30 * (i % 4), 1440 + 720 * (i % 5),
       NULL, i = 0, now() - interval '2 years', now() - interval '2 years'
FROM generate_series(0, $1 - 1) AS i
"""
ENDPOINT_SQL = """
INSERT INTO webhook_endpoint (id, url, event_types, enabled, secret, created_at, updated_at)
VALUES (gen_random_uuid(), 'https://hooks.example.com/closeloop', '{case.resolved}', true,
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now(), now())
"""

_CHANNELS = "ARRAY['web','app','email','sms','chat','phone','social','review','in_store','other']"
_STAGES = "ARRAY['awareness','consideration','purchase','delivery','usage','support','renewal']"
_TOUCHPOINTS = "ARRAY['checkout','order-tracking','returns','billing','onboarding','help-center']"

CASES_SQL = f"""
WITH g AS MATERIALIZED (
    SELECT n, floor($2 * power(random(), 2))::int AS t, random() AS ra, random() AS rb,
           random() AS rs, random() AS rc, random() AS rk
    FROM generate_series(1, $1::bigint) AS n
), s AS MATERIALIZED (
    SELECT g.*, gen_random_uuid() AS case_id, gen_random_uuid() AS feedback_id,
           'team_' || lpad(g.t::text, 2, '0') AS team, 'cus_' || n AS customer,
           now() - ra * interval '365 days' AS created, rc < 0.85 AS consent,
           ({_CHANNELS})[1 + n % 10] AS channel, ({_STAGES})[1 + (n / 10) % 7] AS stage,
           ({_TOUCHPOINTS})[1 + (n / 70) % 6] AS touchpoint, 'src_' || (n % 8) AS source
    FROM g
), c AS MATERIALIZED (
    SELECT s.*,
           CASE WHEN created < now() - interval '9 days' THEN 'closed'
                WHEN rs < 0.30 THEN 'open' WHEN rs < 0.45 THEN 'in_progress'
                WHEN rs < 0.55 THEN 'waiting_on_customer' ELSE 'resolved' END AS status,
           make_interval(mins => tm.first_response_minutes) AS first_response,
           make_interval(mins => tm.resolution_minutes) AS resolution
    FROM s JOIN team tm ON tm.key = s.team
), d AS MATERIALIZED (
    SELECT c.*, status IN ('open', 'in_progress', 'waiting_on_customer') AS active,
           CASE WHEN status <> 'open'
                THEN least(now(), created + 2 * rb * first_response) END AS responded,
           CASE WHEN status IN ('resolved', 'closed')
                THEN least(now(), created + 1.5 * rb * resolution) END AS resolved
    FROM c
), new_case AS (
    INSERT INTO feedback_case (
        id, status, priority, priority_rank, team, opened_for_team, customer_key, customer_keys,
        customer_external_id, customer_email, customer_locale, contact_consent, can_notify, tags,
        first_response_due_at, resolution_due_at, first_response_at, resolved_at, closed_at,
        first_response_breached, resolution_breached, resolution_code, notify_customer, version,
        created_at, updated_at)
    SELECT case_id, status, 'normal', 1, team, team, customer,
           ARRAY[customer, customer || '@example.com'], customer, customer || '@example.com',
           'en', consent, true, '{{}}', created + first_response, created + resolution,
           responded, resolved,
           CASE WHEN status = 'closed' THEN resolved + interval '7 days' END,
           coalesce(responded, now()) > created + first_response,
           coalesce(resolved, now()) > created + resolution
               AND status <> 'waiting_on_customer',
           CASE WHEN resolved IS NOT NULL THEN 'fixed' END,
           CASE WHEN resolved IS NOT NULL THEN consent END,
           3, created, coalesce(resolved, responded, created)
    FROM d ORDER BY created
), new_feedback AS (
    INSERT INTO feedback (
        id, source, channel, customer_external_id, customer_email, customer_locale,
        contact_consent, metric, score, comment, touchpoint, journey_stage, category, sentiment,
        routing_team, submitted_at, received_at)
    SELECT feedback_id, source, channel, customer, customer || '@example.com', 'en', consent,
           'nps', (n % 7)::smallint, 'Charged twice for order A-' || n, touchpoint, stage,
           'detractor', 'negative', team, created, created
    FROM d ORDER BY created
), new_link AS (
    INSERT INTO case_feedback (feedback_id, case_id, kind, added_at)
    SELECT feedback_id, case_id, 'opened', created FROM d ORDER BY created
), new_message AS (
    INSERT INTO outbox_message (id, endpoint_id, event_type, body, case_id, status, attempts,
                                tries, next_attempt_at, created_at, delivered_at, failed_at)
    SELECT gen_random_uuid(), (SELECT id FROM webhook_endpoint LIMIT 1), 'case.resolved',
           convert_to('{{"type":"case.resolved"}}', 'UTF8'), case_id,
           CASE WHEN rk < 0.9 THEN 'delivered' ELSE 'failed' END, 1, 1, resolved, resolved,
           CASE WHEN rk < 0.9 THEN resolved END, CASE WHEN rk >= 0.9 THEN resolved END
    FROM d WHERE resolved IS NOT NULL AND consent
), new_event AS (
    INSERT INTO case_event (id, case_id, type, actor, at, data)
    SELECT gen_random_uuid(), case_id, 'resolved', 'agent', resolved, '{{}}'::jsonb
    FROM d WHERE resolved IS NOT NULL
    UNION ALL
    SELECT gen_random_uuid(), case_id, 'reopened', 'customer', resolved, '{{}}'::jsonb
    FROM d WHERE resolved IS NOT NULL AND rk > 0.92
), answered AS MATERIALIZED (
    SELECT d.*, gen_random_uuid() AS answer_id, (n % 11)::smallint AS answer_score
    FROM d WHERE resolved IS NOT NULL AND consent AND rk < 0.27
), new_answer AS (
    INSERT INTO feedback (
        id, source, channel, customer_external_id, customer_locale, contact_consent, metric,
        score, touchpoint, journey_stage, category, sentiment, submitted_at, received_at)
    SELECT answer_id, source, channel, customer, 'en', consent, 'nps', answer_score, touchpoint,
           stage,
           CASE WHEN answer_score <= 6 THEN 'detractor' WHEN answer_score <= 8 THEN 'passive'
                ELSE 'promoter' END,
           CASE WHEN answer_score <= 6 THEN 'negative' WHEN answer_score <= 8 THEN 'neutral'
                ELSE 'positive' END,
           resolved + interval '1 day', resolved + interval '1 day'
    FROM answered
)
INSERT INTO case_feedback (feedback_id, case_id, kind, added_at)
SELECT answer_id, case_id, 'followup', resolved + interval '1 day' FROM answered
"""

# Each metric's neither-negative scores, its share of the items and their categories.
OTHER_FEEDBACK_SQL = f"""
WITH g AS MATERIALIZED (
    SELECT n, random() AS rm, random() AS rv, now() - random() * interval '365 days' AS at
    FROM generate_series(1, $1::bigint) AS n
), m AS (
    SELECT g.*,
           CASE WHEN rm < 0.5 THEN 'nps' WHEN rm < 0.75 THEN 'csat' WHEN rm < 0.9 THEN 'ces'
                ELSE 'star' END AS metric
    FROM g
), s AS (
    SELECT m.*,
           CASE metric WHEN 'nps' THEN 7 + floor(rv * 4) WHEN 'ces' THEN 4 + floor(rv * 4)
                       ELSE 3 + floor(rv * 3) END::smallint AS score
    FROM m
)
INSERT INTO feedback (id, source, channel, customer_external_id, metric, score, touchpoint,
                      journey_stage, category, sentiment, submitted_at, received_at)
SELECT gen_random_uuid(), 'src_' || (n % 8), ({_CHANNELS})[1 + n % 10], 'anon_' || n, metric,
       score, ({_TOUCHPOINTS})[1 + (n / 3) % 6], ({_STAGES})[1 + (n / 7) % 7],
       CASE WHEN metric = 'nps' AND score <= 8 THEN 'passive' WHEN metric = 'nps' THEN 'promoter'
            WHEN score = 3 OR (metric = 'ces' AND score = 4) THEN 'neutral' ELSE 'positive' END,
       CASE WHEN score = 3 OR (metric IN ('ces', 'nps') AND score IN (4, 7, 8)) THEN 'neutral'
            ELSE 'positive' END,
       at, at
FROM s ORDER BY at
"""

FACTS_SQL = """
SELECT (SELECT count(*) FROM feedback) AS feedback, (SELECT count(*) FROM feedback_case) AS cases,
       (SELECT count(*) FROM outbox_message) AS messages,
       round(pg_total_relation_size('feedback') / 2.0 ^ 20)::float8 AS feedback_mb,
       round(pg_database_size(current_database()) / 2.0 ^ 20)::float8 AS database_mb
"""


def seed(url: str, cases: int, feedback: int, *, report_indexes: bool) -> float:
    started = time.monotonic()
    progress(f"seeding {cases:,} cases with their feedback, then {feedback - cases:,} more items")
    statements: list[tuple[str, Sequence[Any]]] = [
        ("SELECT setseed(0.42)", []),
        (CASES_SQL, [cases, TEAM_COUNT]),
        (OTHER_FEEDBACK_SQL, [feedback - cases]),
    ]
    if not report_indexes:
        statements += [(f"DROP INDEX {name}", []) for name in REPORT_INDEXES]
    statements.append(
        ("VACUUM ANALYZE feedback, feedback_case, case_feedback, case_event, outbox_message", [])
    )
    run_sql(url, statements)
    checkpoint(url)
    return time.monotonic() - started


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


def plans(url: str, today: date) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of last month's NPS by journey stage and loop by team, as the
    service sends them."""
    from sqlalchemy.dialects import postgresql

    from app.core.vocabulary import Metric
    from app.reports.closed_loop import loop_statements
    from app.reports.period import report_period
    from app.reports.schemas import LoopGroup, ScoreGroup
    from app.reports.scores import score_query

    span = queries(today)["NPS by journey stage, last month"][1]
    period = report_period(span["from"], span["to"], "UTC")
    query = score_query(
        metric=Metric.NPS,
        group_by=ScoreGroup.JOURNEY_STAGE,
        period=period,
        source=None,
        channel=None,
    )
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
    compiled = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    bounds = [period.start, period.end]
    negative, cases = (
        sql.replace(":start", "$1").replace(":end", "$2") for sql in loop_statements(LoopGroup.TEAM)
    )
    statements = {
        "scores": (str(compiled), []),
        "negative feedback": (negative, bounds),
        "cases": (cases, bounds),
    }
    found = {}
    for name, (sql, arguments) in statements.items():
        rows = run_sql(url, [("EXPLAIN (ANALYZE, BUFFERS) " + sql, arguments)])
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
        print(f"\n-- last month, {name}\n{plan}")
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
