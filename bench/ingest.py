"""Ingest throughput: `POST /v1/feedback` against a bare FastAPI + asyncpg reference.

    .venv/bin/python -m bench.ingest            (or: make bench)

What runs. One embedded PostgreSQL (the pinned build, default durable settings: fsync and
synchronous commit on) under .closeloop-bench/, with two fresh databases in it: one for the
service, migrated to the latest revision, and one for the reference (bench/reference.py). Then,
one after the other, each server is started alone as one process on 127.0.0.1, warmed up, and
loaded by wrk for a fixed time at a fixed number of keep-alive connections, each request posting
one feedback item (a new row: no external_id, no Idempotency-Key). Both get byte-identical
requests, bearer key included, from a small set of NPS bodies: detractors in the share given by
--negative-share, promoters otherwise. Both servers are stopped before the report, the databases
dropped, PostgreSQL stopped.

How to read it. requests/s is what one server process sustained with the load generator and
PostgreSQL on the same machine; p50 and p99 are wrk's latency percentiles at that load. The
absolute figures move with the machine; the ratio service/reference does not (much), because
both ran on the same cores against the same PostgreSQL in the same run, so it is the figure to
compare across machines: the share of a bare FastAPI + asyncpg ingest the service keeps once
it authenticates, validates, classifies, redacts and answers with the full stored item. The
target is 0.6 or more at 32 connections. non-2xx and socket errors must be 0, or the run does
not count (the verdict is FAIL). CPU/req is the CPU time the server process spent per request
(user and system, as the OS counts it); it moves less than requests/s when something else shares
the machine. "cores busy" splits the machine's CPU time during each measured run between the
server, PostgreSQL, wrk and everything else: a server near 1.00 is bound by its own Python work;
"other" well above 0 means the machine was not quiet (another job ran), and the run warns that
its figures are low and the ratio uncertain: run it again when the machine is quiet.

Known differences the ratio includes on purpose: the service checks the bearer key (cached for a
second), the reference does not; the service's table has its unique and lookup indexes, the
reference's only a primary key; the service answers with the whole item, the reference with its
id and receive time.

Exit status: 0 for PASS, 1 for FAIL, 2 when the benchmark could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.core.embedded import EmbeddedPostgres
from bench.common import (
    BenchError,
    CpuUse,
    ServerProcess,
    WrkResult,
    asyncpg_dsn,
    checkpoint,
    clean_environment,
    closeloop_server,
    cpu_use,
    create_api_key,
    embedded_postgres,
    free_port,
    fresh_database,
    machine,
    postgres_version,
    run_cleanly,
    run_wrk,
    save_result,
    server_process,
)
from bench.reference import POOL_SIZE

PATH = "/v1/feedback"
TARGET_RATIO = 0.6
# Above this (in cores) the rest of the machine was busy enough to move the figures.
QUIET_OTHER_CORES = 0.15
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

# NPS detractors (0-6): negative feedback.
DETRACTORS: tuple[dict[str, Any], ...] = (
    {
        "source": "checkout-web",
        "channel": "web",
        "customer": {"external_id": "cus_42", "email": "ana@example.com", "locale": "pt-BR"},
        "metric": "nps",
        "score": 3,
        "comment": "The delivery was late and nobody answered",
        "tags": ["delivery"],
        "touchpoint": "order-tracking",
        "journey_stage": "delivery",
        "attributes": {"plan": "pro", "order_id": "A-1009"},
    },
    {
        "source": "mobile-app",
        "channel": "app",
        "customer": {"external_id": "cus_77", "email": "joao@example.com", "locale": "pt-PT"},
        "metric": "nps",
        "score": 0,
        "comment": "Fui cobrado duas vezes e o suporte não resolveu",
        "tags": ["billing", "support"],
        "touchpoint": "invoice",
        "journey_stage": "support",
        "attributes": {"plan": "basic", "app_version": "5.2.1"},
    },
    {
        "source": "support-email",
        "channel": "email",
        "customer": {"external_id": "cus_310", "email": "lena@example.com", "locale": "de-DE"},
        "metric": "nps",
        "score": 5,
        "comment": "The replacement part never arrived and the ticket was closed anyway",
        "tags": ["support"],
        "touchpoint": "ticket-closed",
        "journey_stage": "support",
        "attributes": {"plan": "pro", "ticket": "T-5521"},
    },
    {
        "source": "checkout-web",
        "channel": "web",
        "customer": {"external_id": "cus_958", "email": "marc@example.com", "locale": "fr"},
        "metric": "nps",
        "score": 6,
        "comment": "Checkout kept failing on the payment step",
        "tags": ["checkout", "payment"],
        "touchpoint": "payment",
        "journey_stage": "purchase",
        "attributes": {"plan": "free", "retries": 3},
    },
)

# NPS promoters (9-10): positive feedback.
PROMOTERS: tuple[dict[str, Any], ...] = (
    {
        "source": "checkout-web",
        "channel": "web",
        "customer": {"external_id": "cus_43", "email": "rita@example.com", "locale": "pt-BR"},
        "metric": "nps",
        "score": 10,
        "comment": "Arrived a day early and the packaging was great",
        "tags": ["delivery"],
        "touchpoint": "order-tracking",
        "journey_stage": "delivery",
        "attributes": {"plan": "pro", "order_id": "A-1010"},
    },
    {
        "source": "mobile-app",
        "channel": "app",
        "customer": {"external_id": "cus_78", "email": "tiago@example.com", "locale": "pt-PT"},
        "metric": "nps",
        "score": 9,
        "comment": "A aplicação é rápida e o pagamento foi simples",
        "tags": ["app"],
        "touchpoint": "home",
        "journey_stage": "usage",
        "attributes": {"plan": "basic", "app_version": "5.2.1"},
    },
    {
        "source": "support-email",
        "channel": "email",
        "customer": {"external_id": "cus_311", "email": "jonas@example.com", "locale": "de-DE"},
        "metric": "nps",
        "score": 10,
        "comment": "Support solved my problem in one reply, thank you",
        "tags": ["support"],
        "touchpoint": "ticket-closed",
        "journey_stage": "support",
        "attributes": {"plan": "pro", "ticket": "T-5522"},
    },
    {
        "source": "renewal-survey",
        "channel": "email",
        "customer": {"external_id": "cus_959", "email": "claire@example.com", "locale": "fr"},
        "metric": "nps",
        "score": 9,
        "comment": "Renewing was easy and the price is fair",
        "tags": ["renewal"],
        "touchpoint": "renewal-email",
        "journey_stage": "renewal",
        "attributes": {"plan": "pro", "seats": 12},
    },
)

# wrk runs one Lua state per thread. The bodies are formatted into requests once, in init().
_LUA_SCRIPT = """\
-- Written by bench/ingest.py for one run. Arguments: the API key, the share of negative bodies.
local negative_bodies = {
%(negative)s
}
local positive_bodies = {
%(positive)s
}
local positive_requests = {}
local share, sent, next_negative, next_positive = 0, 0, 0, 0
local headers, run = nil, 0

function init(args)
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. args[1],
  }
  share = tonumber(args[2])
  math.randomseed(os.time())
  run = math.random(1, 1000000000)
  for i, body in ipairs(positive_bodies) do
    positive_requests[i] = wrk.format("POST", nil, headers, body)
  end
end

-- Request k is negative when floor((k + 1) * share) passes floor(k * share): the share is exact,
-- not left to chance, and the negative requests are spread evenly through the run.
function request()
  local k = sent
  sent = sent + 1
  if math.floor((k + 1) * share) > math.floor(k * share) then
    -- Each complaint from a customer of its own, so that every one opens a case (the costlier
    -- path) rather than joining one of a handful.
    next_negative = next_negative %% #negative_bodies + 1
    local customer = "cus_" .. run .. "_" .. k
    local body = string.gsub(negative_bodies[next_negative], "@CUSTOMER@", customer)
    return wrk.format("POST", nil, headers, body)
  end
  next_positive = next_positive %% #positive_requests + 1
  return positive_requests[next_positive]
end
"""


def _lua_strings(bodies: Sequence[dict[str, Any]]) -> str:
    lines = []
    for body in bodies:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        assert "]==]" not in text
        lines.append(f"  [==[{text}]==],")
    return "\n".join(lines)


def write_lua_script(directory: Path) -> Path:
    path = directory / "ingest.lua"
    complaints = [
        {**body, "customer": {**body["customer"], "external_id": "@CUSTOMER@"}}
        for body in DETRACTORS
    ]
    path.write_text(
        _LUA_SCRIPT % {"negative": _lua_strings(complaints), "positive": _lua_strings(PROMOTERS)},
        encoding="utf-8",
    )
    return path


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    duration: int
    connections: int
    warmup: int
    negative_share: float
    threads: int
    json: bool


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
        "one after the other, and compare their requests/s.",
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
        "--negative-share",
        type=_share,
        default=0.0,
        help="share of bodies that are negative (NPS detractors), 0 to 1 (0)",
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
    return Options(
        duration=args.duration,
        connections=args.connections,
        warmup=args.warmup,
        negative_share=args.negative_share,
        threads=args.threads,
        json=args.json,
    )


# -- the two servers ----------------------------------------------------------------------------


def service_environment(database_url: str) -> dict[str, str]:
    return clean_environment(
        FEEDBACK_DATABASE_URL=database_url,
        FEEDBACK_ACCESS_LOG="false",
        # On, so the limiters' counting is measured, and too high ever to refuse.
        FEEDBACK_INGEST_RATE_LIMIT_PER_MINUTE="1000000000",
        FEEDBACK_RATE_LIMIT_PER_MINUTE="1000000000",
        # Both pools together: the raw one, which ingest uses, as large as the reference's.
        FEEDBACK_DB_POOL_SIZE=str(2 * POOL_SIZE),
        FEEDBACK_LOG_LEVEL="warning",
    )


def check_answers(server: ServerProcess, key: str) -> None:
    """One body of each kind must be stored (201) before any load: a 4xx would make the run moot."""
    with httpx.Client(timeout=10.0) as client:
        for body in (DETRACTORS[0], PROMOTERS[0]):
            answer = client.post(
                server.base_url + PATH, json=body, headers={"Authorization": f"Bearer {key}"}
            )
            if answer.status_code != 201:
                raise BenchError(
                    f"{server.name} answered {answer.status_code} to a valid body, not 201:\n"
                    f"{answer.text[:2000]}\n{server.output_tail()}"
                )


@dataclass(frozen=True)
class Measurement:
    """wrk's figures for one run, and who used the CPU meanwhile."""

    load: WrkResult
    cpu: CpuUse

    @property
    def cpu_ms_per_request(self) -> float:
        """The server process's CPU time per request."""
        return 1000 * self.cpu.server / self.load.requests if self.load.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.load.as_dict(),
            "server_cpu_ms_per_request": round(self.cpu_ms_per_request, 4),
            "cores_busy": self.cpu.cores(),
        }


def measure(
    server: ServerProcess,
    postgres: EmbeddedPostgres,
    *,
    database_url: str,
    options: Options,
    script: Path,
    key: str,
) -> Measurement:
    url = server.base_url + PATH

    def load(seconds: float) -> WrkResult:
        return run_wrk(
            url,
            connections=options.connections,
            threads=options.threads,
            duration_s=seconds,
            script=script,
            script_args=[key, repr(options.negative_share)],
        )

    if options.warmup > 0:
        _progress(f"{server.name}: warming up for {options.warmup:g} s")
        load(options.warmup)
    checkpoint(database_url)
    _progress(f"{server.name}: measuring for {options.duration:g} s")
    with cpu_use(server, postgres) as account:
        result = load(options.duration)
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} died during the run:\n{server.output_tail()}")
    return Measurement(result, account[0])


# -- the report ---------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


def verdict(service: WrkResult, reference: WrkResult) -> tuple[float, bool]:
    ratio = service.requests_per_s / reference.requests_per_s if reference.requests_per_s else 0.0
    passed = ratio >= TARGET_RATIO and service.failed == 0 and reference.failed == 0
    return ratio, passed


def report(result: dict[str, Any]) -> str:
    host = result["machine"]
    settings = result["settings"]
    service = result["results"]["service"]
    reference = result["results"]["reference"]
    targets = (("service", service), ("reference", reference))
    lines = [
        "",
        f"Ingest benchmark: POST {PATH} on 127.0.0.1, {result['started_at']}",
        f"machine   {host['cores']} cores ({host['usable_cores']} usable), {host['processor']}, "
        f"{host['platform']}",
        f"          Python {host['python']} ({host['python_implementation']}), "
        f"PostgreSQL {host['postgresql']} (embedded, fsync on), {host['wrk']}",
        f"settings  {settings['connections']} connections, {settings['wrk_threads']} wrk "
        f"thread(s), {settings['duration_s']:g} s measured after {settings['warmup_s']:g} s "
        f"warm-up, negative share {settings['negative_share']:.2f}",
        "          one uvicorn process per server, asyncpg pool of "
        f"{settings['pool_size']}, run one after the other",
        "",
        f"{'target':<10} {'requests/s':>11} {'p50':>10} {'p99':>10} {'requests':>9} "
        f"{'non-2xx':>8} {'sock err':>8} {'CPU/req':>10}",
    ]
    for name, figures in targets:
        errors = sum(figures["socket_errors"].values())
        latency = figures["latency_ms"]
        lines.append(
            f"{name:<10} {figures['requests_per_s']:>11.1f} {latency['p50']:>7.2f} ms "
            f"{latency['p99']:>7.2f} ms {figures['requests']:>9} "
            f"{figures['non_2xx']:>8} {errors:>8} "
            f"{figures['server_cpu_ms_per_request']:>7.2f} ms"
        )
    lines += ["", f"{'cores busy':<10} {'server':>11} {'postgres':>10} {'wrk':>10} {'other':>9}"]
    for name, figures in targets:
        cores = figures["cores_busy"]
        lines.append(
            f"{name:<10} {cores['server']:>11.2f} {cores['postgres']:>10.2f} "
            f"{cores['load_generator']:>10.2f} {cores['other']:>9.2f}"
        )
    lines += [
        "",
        f"ratio service/reference: {result['ratio']:.3f} (target ≥ {TARGET_RATIO}): "
        f"{result['verdict']}",
    ]
    if result["failed_requests"]:
        lines.append(
            f"  {result['failed_requests']} requests failed (non-2xx or socket errors): "
            "the figures do not count"
        )
    lines += [
        textwrap.fill(warning, 100, initial_indent="  warning: ", subsequent_indent="    ")
        for warning in result["warnings"]
    ]
    lines += [f"  note: {note}" for note in result["notes"]]
    return "\n".join(lines)


# -- the run ------------------------------------------------------------------------------------


def run(stack: ExitStack, options: Options) -> int:
    from app.core.migrations import upgrade

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    host = machine(PACKAGES)
    script = write_lua_script(Path(stack.enter_context(tempfile.TemporaryDirectory())))

    _progress("starting the embedded PostgreSQL (.closeloop-bench/)")
    postgres = stack.enter_context(embedded_postgres())
    service_url = stack.enter_context(fresh_database(postgres, SERVICE_DATABASE))
    reference_url = stack.enter_context(fresh_database(postgres, REFERENCE_DATABASE))
    host["postgresql"] = postgres_version(service_url)

    _progress("migrating the service's database and creating an API key")
    upgrade(service_url)
    env = service_environment(service_url)
    key = create_api_key(env, ["feedback:write"])

    with closeloop_server(env) as service:
        check_answers(service, key)
        service_result = measure(
            service, postgres, database_url=service_url, options=options, script=script, key=key
        )

    port = free_port()
    with server_process(
        "reference",
        [
            sys.executable,
            "-m",
            "bench.reference",
            "--port",
            str(port),
            "--dsn",
            asyncpg_dsn(reference_url),
        ],
        port=port,
        env=clean_environment(),
        ready_path="/readyz",
    ) as reference:
        check_answers(reference, key)
        reference_result = measure(
            reference,
            postgres,
            database_url=reference_url,
            options=options,
            script=script,
            key=key,
        )

    ratio, passed = verdict(service_result.load, reference_result.load)
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "started_at": started_at,
        "machine": host,
        "settings": {
            "path": PATH,
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "connections": options.connections,
            "wrk_threads": options.threads,
            "negative_share": options.negative_share,
            "bodies": {"negative": len(DETRACTORS), "positive": len(PROMOTERS)},
            "pool_size": POOL_SIZE,
            "postgresql": "embedded, default settings (fsync on); one cluster, a database each",
        },
        "results": {"service": service_result.as_dict(), "reference": reference_result.as_dict()},
        "failed_requests": service_result.load.failed + reference_result.load.failed,
        "ratio": round(ratio, 4),
        "target_ratio": TARGET_RATIO,
        "verdict": "PASS" if passed else "FAIL",
        "warnings": [
            f"other processes kept {m.cpu.cores()['other']:.2f} cores busy during the {name} "
            "run: the machine was not quiet, so its figures are low and the ratio uncertain"
            for name, m in (("service", service_result), ("reference", reference_result))
            if m.cpu.cores()["other"] > QUIET_OTHER_CORES
        ],
        "notes": [
            "the reference does not check the bearer key; the service does",
            "the reference's table has a primary key only; the service's has its indexes",
        ],
    }
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
