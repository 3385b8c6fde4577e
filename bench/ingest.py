"""Ingest throughput: `POST /v1/feedback` against a bare FastAPI + asyncpg reference.

    .venv/bin/python -m bench.ingest                                  (or: make bench)
    .venv/bin/python -m bench.ingest --mix realistic --batch 1000 --profile
    .venv/bin/python -m bench.ingest --mix realistic --rounds 5 --duration 10

What runs. One embedded PostgreSQL (the pinned build, default durable settings: fsync and
synchronous commit on) under .closeloop-bench/, with two fresh databases in it: one for the
service, migrated to the latest revision, and one for the reference (bench/reference.py). Both
servers are started, each as one process on 127.0.0.1; then, one after the other (the other one
idle), each is warmed up and loaded by wrk for a fixed time at a fixed number of keep-alive
connections, each request posting one feedback item (a new row: no external_id, no
Idempotency-Key). Both get requests drawn the same way from the same bodies, bearer key
included. With --rounds N this is done N times, taking turns (service then reference, then
reference then service ...), and the targets judge the median of the N ratios: on a shared
machine one pair of runs can move by a fifth either way. Both servers are stopped before the
report, the databases dropped, PostgreSQL stopped.

The streams (--mix). default: NPS promoters without a personal detail, plus detractors in the
share given by --negative-share (0), each complaint from a customer of its own, so each opens a
case. realistic: 60% detractors, the rest passives and promoters, every item with a comment (in
English, Chinese, Portuguese or Spanish, some with an e-mail address or a phone number to
redact), a customer id, an e-mail and attributes, the customers drawn from 5,000 who come back,
so most complaints join a case an earlier one opened.

--batch N also loads `POST /v1/feedback/batch` with N items a request (same stream, fewer
connections: --batch-connections) and compares its items/s with the single-item service's.
--profile samples the service with py-spy during its single-item run and prints where its CPU
went, as CPU ms per item by function (self and total).

How to read it. items/s is what one server process stored with the load generator and
PostgreSQL on the same machine; p50 and p99 are wrk's latency percentiles per request at that
load. The absolute figures move with the machine; the ratio service/reference does not (much),
because both ran on the same cores against the same PostgreSQL in the same run, so it is the
figure to compare across machines: the share of a bare FastAPI + asyncpg ingest the service
keeps once it authenticates, validates, classifies, redacts, routes, opens cases, writes its
outbox and answers with the full stored item. The targets: a ratio of 1.0 or more on the
default stream and 0.9 on the realistic one, a p99 at most twice the reference's, a batch at
least 10 times the single-item items/s. non-2xx and socket errors must be 0, or the run does
not count (the verdict is FAIL). CPU/item is the CPU time the server process spent per item
(user and system, as the OS counts it); it moves less than items/s when something else shares
the machine. "cores busy" splits the machine's CPU time during each measured run between the
server, PostgreSQL, wrk and everything else: a server near 1.00 is bound by its own Python work;
"other" well above 0 means the machine was not quiet (another job ran), and the run warns that
its figures are low and the ratio uncertain: run it again when the machine is quiet.

Known differences the ratio includes on purpose: the service checks the bearer key (cached for a
second), the reference does not; the service's table has its unique and lookup indexes, the
reference's only a primary key; the service answers with the whole item, the reference with its
id and receive time; the reference commits each request alone, the service writes concurrent
requests together (group commit, app/feedback/group.py); the reference goes through FastAPI's
routing and dependency solving, the service's request gate serves `POST /v1/feedback` itself
(app/feedback/direct.py), with the same validation, key check and answer.

Exit status: 0 for PASS, 1 for FAIL, 2 when the benchmark could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from app.core.db import asyncpg_dsn
from app.feedback.schemas import MAX_BATCH_ITEMS
from bench._ingest_load import (
    MIXES,
    REALISTIC_NEGATIVE_SHARE,
    RETURNING_CUSTOMERS,
    write_lua_script,
)
from bench._ingest_measure import (
    PATH,
    Measurement,
    Options,
    check_answers,
    measure,
    profile_summary,
)
from bench._ingest_report import report, verdicts
from bench._postgres import embedded_postgres, fresh_database, postgres_version
from bench.common import (
    POOL_SIZE,
    QUIET_OTHER_CORES,
    RESULTS_DIR,
    ServerProcess,
    clean_environment,
    closeloop_server,
    create_api_key,
    free_port,
    machine,
    progress,
    run_cleanly,
    save_result,
    server_process,
    service_environment,
)

SERVICE_DATABASE = "closeloop_bench_service"
REFERENCE_DATABASE = "closeloop_bench_reference"
PACKAGES = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "uvicorn",
    "uvloop",
    "httptools",
    "asyncpg",
)

# -- options ------------------------------------------------------------------------------------


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, not {text}")
        return value

    return parse


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Load POST /v1/feedback and a bare FastAPI + asyncpg reference with wrk, "
        "one after the other, and compare their items/s; with --batch, POST /v1/feedback/batch "
        "too.",
    )
    parser.add_argument(
        "--duration", type=_at_least(1), default=15, help="seconds per measured run (15)"
    )
    parser.add_argument(
        "--connections", type=_at_least(1), default=32, help="open connections (32)"
    )
    parser.add_argument(
        "--warmup", type=_at_least(0), default=3, help="seconds of load before each run (3)"
    )
    parser.add_argument(
        "--mix",
        choices=MIXES,
        default="default",
        help="default: NPS promoters (and --negative-share detractors), each complaint from a "
        "new customer; realistic: 60%% detractors, comments in four languages, every item with "
        f"an e-mail and attributes, from {RETURNING_CUSTOMERS:,} returning customers (default)",
    )
    parser.add_argument(
        "--negative-share",
        type=_share,
        default=None,
        help="share of items that are negative (NPS detractors), 0 to 1 "
        f"(0; {REALISTIC_NEGATIVE_SHARE} with --mix realistic)",
    )
    parser.add_argument(
        "--batch",
        type=_at_least(1),
        default=None,
        metavar="N",
        help="also load POST /v1/feedback/batch with N items a request, and compare its items/s "
        "with the single-item service's",
    )
    parser.add_argument(
        "--batch-connections",
        type=_at_least(1),
        default=4,
        help="open connections for the batch run (4)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the service with py-spy during its measured single-item run and summarise "
        "where its CPU goes (needs py-spy, and ptrace allowed)",
    )
    parser.add_argument(
        "--rounds",
        type=_at_least(1),
        default=1,
        help="measure the two servers this many times each, taking turns (service, reference, "
        "reference, service ...), and judge the median of the rounds' ratios (1)",
    )
    parser.add_argument(
        "--threads", type=_at_least(1), default=1, help="wrk threads (1: it shares the cores)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON on stdout (the table then goes to stderr)",
    )
    args = parser.parse_args(argv)
    if args.threads > args.connections:
        parser.error("--threads cannot exceed --connections")
    if args.batch is not None and args.batch > MAX_BATCH_ITEMS:
        parser.error(f"--batch cannot exceed {MAX_BATCH_ITEMS} (the route's limit)")
    share = args.negative_share
    if share is None:
        share = REALISTIC_NEGATIVE_SHARE if args.mix == "realistic" else 0.0
    return Options(
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        warmup=args.warmup,
        mix=args.mix,
        negative_share=share,
        batch=args.batch or 0,
        batch_connections=args.batch_connections,
        profile=args.profile,
        threads=args.threads,
        json=args.json,
    )


# -- the run ------------------------------------------------------------------------------------


@contextmanager
def _reference_server(reference_url: str) -> Iterator[ServerProcess]:
    """bench/reference.py on a free loopback port, ready, stopped after the block."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.reference", "--port", str(port)]
    with server_process(
        "reference",
        [*argv, "--dsn", asyncpg_dsn(reference_url)],
        port=port,
        env=clean_environment(),
        ready_path="/readyz",
    ) as reference:
        yield reference


def run(stack: ExitStack, options: Options) -> int:
    from app.core.migrations import upgrade

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    host = machine(PACKAGES)
    script = write_lua_script(Path(stack.enter_context(tempfile.TemporaryDirectory())), options.mix)

    progress("starting the embedded PostgreSQL (.closeloop-bench/)")
    postgres = stack.enter_context(embedded_postgres())
    service_url = stack.enter_context(fresh_database(postgres, SERVICE_DATABASE))
    reference_url = stack.enter_context(fresh_database(postgres, REFERENCE_DATABASE))
    host["postgresql"] = postgres_version(service_url)

    progress("migrating the service's database and creating an API key")
    upgrade(service_url)
    env = service_environment(service_url)
    key = create_api_key(env, ["feedback:write"])

    profile_path = None
    if options.profile:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        profile_path = RESULTS_DIR / f"ingest-profile-{stamp}.txt"
    pairs: list[tuple[Measurement, Measurement]] = []
    batch_result = None
    with closeloop_server(env) as service, _reference_server(reference_url) as reference:
        check_answers(service, key, options.mix)
        check_answers(reference, key, options.mix)

        # One measured run of a server: the same load, the same checks, its own database.
        run = partial(measure, postgres=postgres, options=options, script=script, key=key)

        def on_service(profile: Path | None = None) -> Measurement:
            return run(service, database_url=service_url, profile=profile)

        def on_reference() -> Measurement:
            return run(reference, database_url=reference_url)

        for number in range(options.rounds):
            if options.rounds > 1:
                progress(f"round {number + 1} of {options.rounds}")
            # Turn about, so that neither server is always the one measured on a warmer machine.
            if number % 2 == 0:
                measured_service = on_service(profile_path if number == 0 else None)
                pairs.append((measured_service, on_reference()))
            else:
                measured_reference = on_reference()
                pairs.append((on_service(), measured_reference))
        if options.batch:
            check_answers(service, key, options.mix, batch=True)
            batch_result = run(service, database_url=service_url, batch=options.batch)

    measured: dict[str, Measurement] = {}
    for number, (service_result, reference_result) in enumerate(pairs, start=1):
        suffix = f" {number}" if options.rounds > 1 else ""
        measured[f"service{suffix}"] = service_result
        measured[f"reference{suffix}"] = reference_result
    if batch_result is not None:
        measured["batch"] = batch_result
    targets = verdicts(pairs, batch_result, options)
    failed = sum(m.load.failed for m in measured.values())
    passed = failed == 0 and all(t["passed"] for t in targets.values())
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "started_at": started_at,
        "machine": host,
        "settings": {
            "path": PATH,
            "mix": options.mix,
            "duration_s": options.duration,
            "rounds": options.rounds,
            "warmup_s": options.warmup,
            "connections": options.connections,
            "wrk_threads": options.threads,
            "negative_share": options.negative_share,
            "returning_customers": options.customers,
            "batch": options.batch,
            "batch_connections": options.batch_connections,
            "pool_size": POOL_SIZE,
            "postgresql": "embedded, default settings (fsync on); one cluster, a database each",
        },
        "results": {name: m.as_dict() for name, m in measured.items()},
        "failed_requests": failed,
        "ratio": targets["ratio"]["value"],
        "targets": targets,
        "verdict": "PASS" if passed else "FAIL",
        "warnings": [
            f"other processes kept {m.cpu.cores()['other']:.2f} cores busy during the {name} "
            "run: the machine was not quiet, so its figures are low and the ratio uncertain"
            for name, m in measured.items()
            if m.cpu.cores()["other"] > QUIET_OTHER_CORES
        ],
        "notes": [
            "the reference does not check the bearer key; the service does",
            "the reference's table has a primary key only; the service's has its indexes",
        ],
    }
    if profile_path is not None:
        first = pairs[0][0]
        result["profile"] = profile_summary(profile_path, first.items, first.cpu.server)
    saved = save_result("ingest", result)
    table = sys.stderr if options.json else sys.stdout
    print(report(result), file=table)
    print(f"  saved to {saved}", file=table)
    if options.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    return run_cleanly(lambda stack: run(stack, options))


if __name__ == "__main__":
    sys.exit(main())
