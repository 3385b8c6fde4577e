"""Webhook delivery: 10,000 outbox messages, 4 receivers (one dead), 2 `closeloop worker`s.

    .venv/bin/python -m bench.webhooks            (about a minute)

What runs. A fresh database in the embedded PostgreSQL (.closeloop-bench/, default durable
settings), migrated. Receivers (bench/receiver.py, one process) listen on 127.0.0.1: three
healthy endpoints that answer 200 at once and, in the run "with dead", a fourth that accepts
the connection and never answers. Each run registers its endpoints (`feedback.received`, a new
secret each, stored encrypted: the workers have FEEDBACK_SECRET_KEY, as production should),
starts `--workers` `closeloop worker` processes (SLA monitor and dispatcher, the default
timeout of 15 s and concurrency of 16 per endpoint and 256 per process) and waits until
every one of them polls for due messages; their start-up time is reported apart. Then one
INSERT ... SELECT FROM generate_series writes the messages, all due at one instant T0 a moment
later, and ANALYZE gives the planner the statistics a living table has.

`--messages` is the total of the run "with dead": spread round-robin over the 4 endpoints, so
10,000 gives 2,500 to each, 7,500 to the healthy ones. The run "without dead" sends the same
7,500 to the same three healthy endpoints and nothing else: both runs deliver the same healthy
work, and the only difference is the dead endpoint and its 2,500 messages. The runs alternate,
without first (`--rounds` pairs).

What is measured, from the receivers' clock (the wall clock PostgreSQL's `now()` reads): for
each healthy message, due → received, the time from T0 until its request had fully arrived.
healthy/s is the healthy messages over the time from T0 to the last of them, so it includes the
dispatchers' noticing that messages are due (they poll every 0.2 s); steady/s leaves that out
(first to last arrival). A run ends when every healthy message has arrived: the dead endpoint's
timeouts end later and are not waited for (the receivers stop first, which ends them). Then the
database must show every healthy message delivered ("recorded": T0 until it does), once:
duplicates (a webhook-id received twice, as when a batch of outcomes failed to be recorded and
the messages were sent again when their lease ran out) and extra attempts are counted and must
be 0; the workers' log lines, if any, are shown; a few requests kept whole are checked with
the `standardwebhooks` package. "cores busy" splits the machine's CPU time between T0 and the
last arrival: the workers, the receivers, PostgreSQL, the rest (this process, anything else).

How to read it. p50/p99 of due → received are queueing figures: everything falls due at once,
so p99 is close to the time the whole batch took. Targets: ≥ 1,000 healthy deliveries/s with the
dead endpoint present, and that rate ≥ 0.9 × the rate without it. With several rounds the
medians count. Exit status: 0 PASS, 1 FAIL, 2 could not run, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet

from app.core.crypto import secret_box
from app.core.embedded import EmbeddedPostgres
from app.notifications.signing import new_secret
from bench._measure import CpuSnapshot
from bench._postgres import checkpoint, embedded_postgres, fresh_database, postgres_version, run_sql
from bench._receivers import receivers
from bench._webhooks_report import report, verdict
from bench.common import (
    BenchError,
    ServerProcess,
    clean_environment,
    closeloop_workers,
    machine,
    progress,
    run_cleanly,
    save_result,
)

HEALTHY = 3
DATABASE = "closeloop_bench_webhooks"
LEAD_SECONDS = 2.0  # between writing the messages and T0, when they fall due
# How long, once every healthy message has arrived, the database may take to say so: longer than
# a lease (2 × 15 s + 5 s), after which an outcome that was not recorded is sent again.
RECORDED_WITHIN = 45.0
PACKAGES = ("httpx", "httpcore", "h11", "asyncpg", "uvloop", "standardwebhooks")
# The workers' FEEDBACK_SECRET_KEY, with which the endpoints' secrets are stored.
SECRET_KEY = Fernet.generate_key().decode()

# A feedback.received envelope as ingest writes it (about 800 bytes); each message gets its id.
ENVELOPE = (
    '{"type": "feedback.received", "timestamp": "2026-11-23T21:00:00.000000Z", "data": {'
    '"id": "", "source": "checkout-web", "channel": "web", "external_id": "A-1009-survey", '
    '"customer": {"external_id": "cus_42", "email": "ana@example.com", "phone": null, '
    '"name": "Ana Souza", "locale": "pt-BR", "contact_consent": true}, "metric": "nps", '
    '"score": 3, "comment": "The delivery was late and nobody answered my messages", '
    '"tags": ["delivery", "support"], "touchpoint": "order-tracking", '
    '"journey_stage": "delivery", "attributes": {"plan": "pro", "order_id": "A-1009"}, '
    '"category": "negative", "sentiment": "negative", '
    '"submitted_at": "2026-11-23T20:59:58.000000Z", "received_at": "2026-11-23T21:00:00.000000Z", '
    '"routing": {"rule_id": null, "rule_version": null, "team": "logistics"}}}'
)

RESET_SQL = "TRUNCATE delivery_attempt, outbox_message, webhook_endpoint"
ENDPOINTS_SQL = """
INSERT INTO webhook_endpoint (id, url, event_types, enabled, secret, created_at, updated_at)
SELECT gen_random_uuid(), u.url, ARRAY['feedback.received'], true, u.secret, now(), now()
FROM unnest($1::text[], $2::text[]) AS u(url, secret)
RETURNING id, url
"""
MESSAGES_SQL = """
INSERT INTO outbox_message (id, endpoint_id, event_type, body, status, attempts, tries,
    next_attempt_at, created_at)
SELECT gen_random_uuid(), ($1::uuid[])[1 + i % cardinality($1::uuid[])], 'feedback.received',
    convert_to(jsonb_set($2::jsonb, '{data,id}', to_jsonb(gen_random_uuid()::text))::text, 'UTF8'),
    'pending', 0, 0, $3::timestamptz, now()
FROM generate_series(0, $4 - 1) AS i
"""
POLLING_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND query LIKE '%outbox_message%SKIP LOCKED%'"
)
DELIVERED_SQL = (
    "SELECT count(*) FROM outbox_message WHERE status = 'delivered' AND endpoint_id = ANY($1)"
)
OUTCOME_SQL = """
SELECT (m.endpoint_id = ANY($1)) AS healthy, m.status, count(DISTINCT m.id) AS messages,
    count(a.id) AS attempts
FROM outbox_message m LEFT JOIN delivery_attempt a ON a.message_id = m.id
GROUP BY 1, 2 ORDER BY 1, 2
"""


def worker_environment(database_url: str) -> dict[str, str]:
    return clean_environment(
        FEEDBACK_DATABASE_URL=database_url,
        FEEDBACK_SECRET_KEY=SECRET_KEY,
        FEEDBACK_WEBHOOK_ALLOW_HTTP="true",
        FEEDBACK_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        FEEDBACK_LOG_LEVEL="warning",
        FEEDBACK_SLA_CHECK_INTERVAL_SECONDS="60",
    )


def _value(url: str, sql: str, *arguments: Any) -> Any:
    return run_sql(url, [(sql, arguments)])[0][0]


def until(check: Callable[[], bool], *, within: float, every: float = 0.05) -> float | None:
    """When (monotonic) check() first held, asking every `every` s; None if not within `within`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(every)
    return None


# -- one run ------------------------------------------------------------------------------------


def _all_polling(workers: Sequence[ServerProcess], database_url: str) -> bool:
    for worker in workers:
        if worker.process.poll() is not None:
            raise BenchError(f"{worker.name} exited:\n{worker.output_tail()}")
    return bool(_value(database_url, POLLING_SQL) >= len(workers))


def measure_run(
    label: str, *, dead: int, messages: int, workers: int, url: str, postgres: EmbeddedPostgres
) -> dict[str, Any]:
    """One run: register, start the workers, write the messages, wait for the healthy ones."""
    healthy_messages = messages - messages // (HEALTHY + dead) * dead
    run_sql(url, [(RESET_SQL, ())])
    with receivers(healthy=HEALTHY, dead=dead, expect=healthy_messages) as rx, ExitStack() as stack:
        secrets = [new_secret() for _ in range(HEALTHY + dead)]
        urls = [rx.url(n) for n in range(HEALTHY + dead)]
        sealed = [secret_box(SECRET_KEY).seal(s) for s in secrets]
        ids_by_url = {r["url"]: r["id"] for r in run_sql(url, [(ENDPOINTS_SQL, (urls, sealed))])}
        endpoint_ids = [ids_by_url[u] for u in urls]
        healthy_ids = endpoint_ids[:HEALTHY]

        progress(f"{label}: starting {workers} workers")
        started = time.monotonic()
        processes = stack.enter_context(closeloop_workers(worker_environment(url), workers))
        # Unwinding stops the receivers first: that ends the requests the dead endpoint holds,
        # which the workers would otherwise wait for (up to their timeout) before they stop.
        stack.callback(rx.halt)
        ready = until(lambda: _all_polling(processes, url), within=60, every=0.1)
        if ready is None:
            raise BenchError("the workers did not poll for messages within 60 s")
        pids = ", ".join(str(w.process.pid) for w in processes)
        progress(f"{label}: workers polling after {ready - started:.2f} s (pids {pids})")
        checkpoint(url)

        t0_ns = time.time_ns() + int(LEAD_SECONDS * 1e9)
        t0 = datetime.fromtimestamp(t0_ns / 1e9, UTC)
        run_sql(url, [(MESSAGES_SQL, (endpoint_ids, ENVELOPE, t0, messages)), ("ANALYZE", ())])
        if time.time_ns() > t0_ns - 0.2e9:
            raise BenchError("writing the messages took longer than the lead before T0")
        time.sleep((t0_ns - time.time_ns()) / 1e9)
        groups = {"workers": [w.process.pid for w in processes], "receivers": [rx.pid]}
        before = CpuSnapshot.take(groups, postgres)
        progress(f"{label}: {messages:,} messages due, {healthy_messages:,} to healthy endpoints")
        try:
            rx.wait_for("done", deadline=time.monotonic() + 30 + messages / 100)
        except BenchError as exc:
            tails = "".join(f"\n{w.name} logged:\n{w.output_tail(3000)}" for w in processes)
            raise BenchError(f"{label}: {exc}{tails}") from None
        after = CpuSnapshot.take(groups, postgres)
        recorded = until(
            lambda: bool(_value(url, DELIVERED_SQL, healthy_ids) >= healthy_messages),
            within=RECORDED_WITHIN,
        )
        received = rx.stop()  # first: it ends the requests the dead endpoint holds
        logs = {w.name: w.output_tail(1500) for w in processes}
    outcome = [dict(r) for r in run_sql(url, [(OUTCOME_SQL, (healthy_ids,))])]
    healthy_attempts = sum(r["attempts"] for r in outcome if r["healthy"])
    return {
        "label": label,
        **received.figures(t0_ns, healthy_messages),
        "extra_attempts": healthy_attempts - healthy_messages,
        "all_recorded_s": None if recorded is None else round(recorded - before.at, 3),
        "worker_startup_s": round(ready - started, 2),
        "worker_cpu_ms_per_delivery": round(
            1e3 * (after.groups["workers"] - before.groups["workers"]) / healthy_messages, 3
        ),
        "cores_busy": after.cores_since(before),
        "signatures_verified": received.verify(secrets),
        "database": outcome,
        "worker_logs": {name: log for name, log in logs.items() if log},
    }


# -- the benchmark ------------------------------------------------------------------------------


def run(stack: ExitStack, args: argparse.Namespace) -> int:
    from app.core.migrations import upgrade

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    host = machine(PACKAGES)
    progress("starting the embedded PostgreSQL (.closeloop-bench/) and migrating")
    postgres = stack.enter_context(embedded_postgres())
    url = stack.enter_context(fresh_database(postgres, DATABASE))
    host["postgresql"] = postgres_version(url)
    upgrade(url)

    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for dead in (False, True):
            label = "with dead" if dead else "without dead"
            measured = measure_run(
                label,
                dead=int(dead),
                messages=args.messages if dead else args.messages - args.messages // (HEALTHY + 1),
                workers=args.workers,
                url=url,
                postgres=postgres,
            )
            progress(f"{label}: {measured['healthy_per_s']:.1f} healthy deliveries/s")
            runs[dead].append(measured)
    result: dict[str, Any] = {
        "benchmark": "webhooks",
        "started_at": started_at,
        "machine": host,
        "settings": {
            "messages": args.messages,
            "healthy_messages": runs[True][0]["healthy_messages"],
            "workers": args.workers,
            "rounds": args.rounds,
            "worker_environment": {
                k: v for k, v in worker_environment(url).items() if k.startswith("FEEDBACK_WEB")
            },
        },
        "runs": [r for pair in zip(runs[False], runs[True], strict=True) for r in pair],
        "outcome": verdict(runs[False], runs[True]),
    }
    saved = save_result("webhooks", result)
    table = sys.stderr if args.json else sys.stdout
    print(report(result), file=table)
    print(f"  saved to {saved}", file=table)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result["outcome"]["verdict"] == "PASS" else 1


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhooks",
        description="Deliver outbox messages to loopback receivers with `closeloop worker`s, "
        "with and without a dead endpoint, and compare the healthy endpoints' rates.",
    )
    parser.add_argument(
        "--messages", type=int, default=10_000, help="messages in the run with dead (10000)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs (1)")
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON (the table to stderr)"
    )
    args = parser.parse_args(argv)
    if args.messages < 8 or args.workers < 1 or args.rounds < 1:
        parser.error("--messages ≥ 8, --workers ≥ 1 and --rounds ≥ 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(argv)
    return run_cleanly(lambda stack: run(stack, args))


if __name__ == "__main__":
    sys.exit(main())
