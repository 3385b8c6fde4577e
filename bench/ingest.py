"""Ingest throughput: `POST /v1/feedback` against a bare FastAPI + asyncpg reference.

    .venv/bin/python -m bench.ingest                                  (or: make bench)
    .venv/bin/python -m bench.ingest --mix realistic --batch 1000 --profile

What runs. One embedded PostgreSQL (the pinned build, default durable settings: fsync and
synchronous commit on) under .closeloop-bench/, with two fresh databases in it: one for the
service, migrated to the latest revision, and one for the reference (bench/reference.py). Then,
one after the other, each server is started alone as one process on 127.0.0.1, warmed up, and
loaded by wrk for a fixed time at a fixed number of keep-alive connections, each request posting
one feedback item (a new row: no external_id, no Idempotency-Key). Both get requests drawn the
same way from the same bodies, bearer key included. Both servers are stopped before the report,
the databases dropped, PostgreSQL stopped.

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
requests together (group commit, app/feedback/group.py).

Exit status: 0 for PASS, 1 for FAIL, 2 when the benchmark could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.core.embedded import EmbeddedPostgres
from app.feedback.schemas import MAX_BATCH_ITEMS
from bench.common import (
    RESULTS_DIR,
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
BATCH_PATH = "/v1/feedback/batch"
# The targets (issue 11): items/s against the reference's, by stream; the service's p99 at most
# this many times the reference's; a batch's items/s at least this many times the single rate.
TARGET_RATIO = {"default": 1.0, "realistic": 0.9}
TARGET_P99_FACTOR = 2.0
TARGET_BATCH_FACTOR = 10.0
# Functions listed in a profile summary, by self time and by total time.
PROFILE_LINES = 25
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


# The realistic stream (--mix realistic): every item with a comment, an e-mail and attributes,
# comments in four languages, from customers drawn out of a fixed set who come back, so that
# complaints join the cases opened by earlier ones. @CUSTOMER@ is replaced per item.
def _realistic(
    source: str, channel: str, locale: str, score: int, comment: str, **attributes: Any
) -> dict[str, Any]:
    return {
        "source": source,
        "channel": channel,
        "customer": {
            "external_id": "@CUSTOMER@",
            "email": "@CUSTOMER@@example.com",
            "locale": locale,
        },
        "metric": "nps",
        "score": score,
        "comment": comment,
        "tags": ["nps"],
        "touchpoint": "survey",
        "journey_stage": "delivery" if score < 5 else "support",
        "attributes": {"survey": "q4-nps", **attributes},
    }


REALISTIC_DETRACTORS: tuple[dict[str, Any], ...] = (
    _realistic(
        "checkout-web",
        "web",
        "en-US",
        2,
        "The delivery was late and nobody answered my emails, write to me at ana.silva@example.org",
        plan="pro",
        order_id="A-1009",
    ),
    _realistic(
        "mobile-app",
        "app",
        "en-GB",
        6,
        "Checkout kept failing on the payment step, three times in a row",
        plan="free",
        retries=3,
    ),
    _realistic(
        "mobile-app",
        "app",
        "zh-CN",
        1,
        "快递晚了五天，客服一直没有回复我的消息",
        plan="basic",
        app_version="5.2.1",
    ),
    _realistic(
        "checkout-web",
        "web",
        "zh-TW",
        4,
        "付款失敗了兩次，但是錢已經被扣了",
        plan="pro",
        order_id="A-2210",
    ),
    _realistic(
        "support-email",
        "email",
        "pt-BR",
        0,
        "Fui cobrado duas vezes e o suporte não resolveu, liguem para +55 11 91234-5678",
        plan="basic",
        ticket="T-5521",
    ),
    _realistic(
        "support-email",
        "email",
        "pt-PT",
        5,
        "A peça de substituição nunca chegou e o pedido foi fechado na mesma",
        plan="pro",
        ticket="T-5522",
    ),
    _realistic(
        "checkout-web",
        "web",
        "es-ES",
        3,
        "El pedido llegó roto y nadie respondió a mis correos",
        plan="free",
        order_id="A-3301",
    ),
    _realistic(
        "mobile-app",
        "app",
        "es-MX",
        6,
        "La aplicación se cierra al pagar y tuve que intentarlo cuatro veces",
        plan="basic",
        app_version="5.1.0",
    ),
)
REALISTIC_OTHERS: tuple[dict[str, Any], ...] = (
    _realistic(
        "checkout-web",
        "web",
        "en-US",
        10,
        "Arrived a day early and the packaging was great",
        plan="pro",
        order_id="A-1010",
    ),
    _realistic(
        "mobile-app", "app", "zh-CN", 9, "应用很快，付款也很简单", plan="basic", app_version="5.2.1"
    ),
    _realistic(
        "support-email",
        "email",
        "pt-BR",
        8,
        "O suporte resolveu em uma resposta, obrigado",
        plan="pro",
        ticket="T-5523",
    ),
    _realistic(
        "renewal-survey",
        "email",
        "es-ES",
        7,
        "Renovar fue fácil aunque el precio subió un poco",
        plan="pro",
        seats=12,
    ),
)
# Customers who come back in the realistic stream (SPEC §4: their complaints join open cases).
RETURNING_CUSTOMERS = 5000
REALISTIC_NEGATIVE_SHARE = 0.6
MIXES = ("default", "realistic")


# wrk runs one Lua state per thread. The bodies are formatted into requests once, in init().
_LUA_SCRIPT = """\
-- Written by bench/ingest.py for one run. Arguments: the API key, the share of negative bodies,
-- the number of returning customers (0: every complaint from a new one), the items per request
-- (0: one item per request to POST /v1/feedback; N: N items to POST /v1/feedback/batch).
local negative_bodies = {
%(negative)s
}
local positive_bodies = {
%(positive)s
}
local share, customers, batch, sent, next_negative, next_positive = 0, 0, 0, 0, 0, 0
local headers, run = nil, 0

function init(args)
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. args[1],
  }
  share = tonumber(args[2])
  customers = tonumber(args[3])
  batch = tonumber(args[4])
  math.randomseed(os.time())
  run = math.random(1, 1000000000)
end

-- Item k is negative when floor((k + 1) * share) passes floor(k * share): the share is exact,
-- not left to chance, and the negative items are spread evenly through the run.
local function item()
  local k = sent
  sent = sent + 1
  local body
  if math.floor((k + 1) * share) > math.floor(k * share) then
    next_negative = next_negative %% #negative_bodies + 1
    body = negative_bodies[next_negative]
  else
    next_positive = next_positive %% #positive_bodies + 1
    body = positive_bodies[next_positive]
  end
  -- Without returning customers each complaint is from a customer of its own, so that every
  -- one opens a case (the costlier path) rather than joining one of a handful.
  local customer
  if customers > 0 then
    customer = "cus_" .. math.random(1, customers)
  else
    customer = "cus_" .. run .. "_" .. k
  end
  return (string.gsub(body, "@CUSTOMER@", customer))
end

function request()
  if batch == 0 then
    return wrk.format("POST", nil, headers, item())
  end
  local items = {}
  for i = 1, batch do
    items[i] = item()
  end
  return wrk.format("POST", nil, headers, '{"items":[' .. table.concat(items, ",") .. ']}')
end
"""


def _lua_strings(bodies: Sequence[dict[str, Any]]) -> str:
    lines = []
    for body in bodies:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        assert "]==]" not in text
        lines.append(f"  [==[{text}]==],")
    return "\n".join(lines)


def write_lua_script(directory: Path, mix: str) -> Path:
    path = directory / "ingest.lua"
    if mix == "realistic":
        negative, positive = REALISTIC_DETRACTORS, REALISTIC_OTHERS
    else:
        negative = tuple(
            {**body, "customer": {**body["customer"], "external_id": "@CUSTOMER@"}}
            for body in DETRACTORS
        )
        positive = PROMOTERS
    path.write_text(
        _LUA_SCRIPT % {"negative": _lua_strings(negative), "positive": _lua_strings(positive)},
        encoding="utf-8",
    )
    return path


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    duration: int
    connections: int
    warmup: int
    mix: str
    negative_share: float
    batch: int
    batch_connections: int
    profile: bool
    threads: int
    json: bool

    @property
    def customers(self) -> int:
        """Returning customers the items are drawn from (0: a new customer per item)."""
        return RETURNING_CUSTOMERS if self.mix == "realistic" else 0

    @property
    def target_ratio(self) -> float:
        return TARGET_RATIO[self.mix]


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


def _sample_bodies(mix: str) -> tuple[dict[str, Any], ...]:
    """One body of each kind, with a customer, as the load sends them."""
    if mix == "realistic":
        bodies = (REALISTIC_DETRACTORS[0], REALISTIC_OTHERS[0])
        return tuple(
            json.loads(json.dumps(body).replace("@CUSTOMER@", "cus_check")) for body in bodies
        )
    return (DETRACTORS[0], PROMOTERS[0])


def check_answers(server: ServerProcess, key: str, mix: str, *, batch: bool = False) -> None:
    """One body of each kind must be stored (201) before any load: a 4xx would make the run moot.
    With batch, one batch of them must have every item created or replayed."""
    headers = {"Authorization": f"Bearer {key}"}
    bodies = _sample_bodies(mix)
    with httpx.Client(timeout=10.0) as client:
        if batch:
            answer = client.post(
                server.base_url + BATCH_PATH, json={"items": list(bodies)}, headers=headers
            )
            results = answer.json().get("results", []) if answer.status_code == 200 else []
            if len(results) != len(bodies) or any(r["status"] == "error" for r in results):
                raise BenchError(
                    f"{server.name} did not store a valid batch ({answer.status_code}):\n"
                    f"{answer.text[:2000]}\n{server.output_tail()}"
                )
            return
        for body in bodies:
            answer = client.post(server.base_url + PATH, json=body, headers=headers)
            if answer.status_code not in (200, 201):
                raise BenchError(
                    f"{server.name} answered {answer.status_code} to a valid body, not 201:\n"
                    f"{answer.text[:2000]}\n{server.output_tail()}"
                )


@dataclass(frozen=True)
class Measurement:
    """wrk's figures for one run, and who used the CPU meanwhile."""

    load: WrkResult
    cpu: CpuUse
    items_per_request: int = 1

    @property
    def items(self) -> int:
        return self.load.requests * self.items_per_request

    @property
    def items_per_s(self) -> float:
        return self.load.requests_per_s * self.items_per_request

    @property
    def cpu_ms_per_item(self) -> float:
        """The server process's CPU time per item."""
        return 1000 * self.cpu.server / self.items if self.items else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.load.as_dict(),
            "items_per_request": self.items_per_request,
            "items_per_s": round(self.items_per_s, 1),
            "server_cpu_ms_per_item": round(self.cpu_ms_per_item, 4),
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
    batch: int = 0,
    profile: Path | None = None,
) -> Measurement:
    url = server.base_url + (BATCH_PATH if batch else PATH)
    connections = options.batch_connections if batch else options.connections

    def load(seconds: float) -> WrkResult:
        return run_wrk(
            url,
            connections=connections,
            threads=min(options.threads, connections),
            duration_s=seconds,
            script=script,
            script_args=[key, repr(options.negative_share), str(options.customers), str(batch)],
            timeout_s=30.0 if batch else 10.0,
        )

    if options.warmup > 0:
        _progress(f"{server.name}: warming up for {options.warmup:g} s")
        load(options.warmup)
    checkpoint(database_url)
    _progress(f"{server.name}: measuring for {options.duration:g} s")
    with ExitStack() as sampling:
        if profile is not None:
            sampling.enter_context(py_spy(server.process.pid, profile, options.duration))
        with cpu_use(server, postgres) as account:
            result = load(options.duration)
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} died during the run:\n{server.output_tail()}")
    return Measurement(result, account[0], batch or 1)


# -- the profile --------------------------------------------------------------------------------


@contextmanager
def py_spy(pid: int, output: Path, seconds: float) -> Iterator[None]:
    """Sample pid with py-spy (collapsed stacks in output) while the block runs."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(binary).exists():
        raise BenchError("--profile needs py-spy (pip install py-spy)")
    argv = [binary, "record", "--pid", str(pid), "--duration", str(round(seconds) + 2)]
    argv += ["--rate", "200", "--format", "raw", "--nonblocking", "--output", str(output)]
    sampler = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        _, errors = sampler.communicate(timeout=seconds + 60)
        if sampler.returncode != 0 or not output.exists():
            raise BenchError(f"py-spy failed ({sampler.returncode}): {errors.decode()[-2000:]}")


def _frame_name(frame: str) -> str:
    """`function (path/to/module.py:line)` as `module.py:function`."""
    match = re.match(r"(.+?) \((.+?):\d+\)$", frame)
    if match is None:
        return frame
    name, path = match.groups()
    return f"{Path(path).name}:{name}"


def profile_summary(collapsed: Path, items: int, cpu_seconds: float) -> dict[str, Any]:
    """Where the service's CPU went, from py-spy's collapsed stacks: the share of samples in
    each function (self: at the top of the stack; total: anywhere on it), as CPU ms per item."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    per_item = 1000 * cpu_seconds / items if items else 0.0

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {
                "function": name,
                "share": round(count / samples, 4),
                "cpu_ms_per_item": round(per_item * count / samples, 4),
            }
            for name, count in counter.most_common(PROFILE_LINES)
        ]

    return {
        "samples": samples,
        "cpu_ms_per_item": round(per_item, 4),
        "self": table(own) if samples else [],
        "total": table(anywhere) if samples else [],
        "collapsed_stacks": str(collapsed),
    }


# -- the report ---------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


def verdicts(
    service: Measurement,
    reference: Measurement,
    batch: Measurement | None,
    options: Options,
) -> dict[str, Any]:
    """Each target, its figure and whether it was reached."""
    ratio = service.items_per_s / reference.items_per_s if reference.items_per_s else 0.0
    p99 = service.load.p99_ms / reference.load.p99_ms if reference.load.p99_ms else 0.0
    targets: dict[str, Any] = {
        "ratio": {"value": round(ratio, 4), "target": f">= {options.target_ratio}"},
        "p99_vs_reference": {"value": round(p99, 3), "target": f"<= {TARGET_P99_FACTOR}"},
    }
    targets["ratio"]["passed"] = ratio >= options.target_ratio
    targets["p99_vs_reference"]["passed"] = p99 <= TARGET_P99_FACTOR
    if batch is not None:
        speedup = batch.items_per_s / service.items_per_s if service.items_per_s else 0.0
        targets["batch_vs_single"] = {
            "value": round(speedup, 3),
            "target": f">= {TARGET_BATCH_FACTOR}",
            "passed": speedup >= TARGET_BATCH_FACTOR,
        }
    return targets


def report(result: dict[str, Any]) -> str:
    host = result["machine"]
    settings = result["settings"]
    runs = result["results"]
    lines = [
        "",
        f"Ingest benchmark: POST {PATH} on 127.0.0.1, {result['started_at']}",
        f"machine   {host['cores']} cores ({host['usable_cores']} usable), {host['processor']}, "
        f"{host['platform']}",
        f"          Python {host['python']} ({host['python_implementation']}), "
        f"PostgreSQL {host['postgresql']} (embedded, fsync on), {host['wrk']}",
        f"settings  {settings['mix']} stream, {settings['connections']} connections, "
        f"{settings['wrk_threads']} wrk thread(s), {settings['duration_s']:g} s measured after "
        f"{settings['warmup_s']:g} s warm-up, negative share {settings['negative_share']:.2f}, "
        f"{settings['returning_customers'] or 'no'} returning customers",
        "          one uvicorn process per server, asyncpg pool of "
        f"{settings['pool_size']}, run one after the other",
    ]
    if "batch" in runs:
        lines.append(
            f"          batch: {settings['batch']} items a request, "
            f"{settings['batch_connections']} connections"
        )
    lines += [
        "",
        f"{'target':<10} {'items/s':>10} {'p50':>10} {'p99':>10} {'requests':>9} "
        f"{'non-2xx':>8} {'sock err':>8} {'CPU/item':>10}",
    ]
    for name, figures in runs.items():
        errors = sum(figures["socket_errors"].values())
        latency = figures["latency_ms"]
        lines.append(
            f"{name:<10} {figures['items_per_s']:>10.1f} {latency['p50']:>7.2f} ms "
            f"{latency['p99']:>7.2f} ms {figures['requests']:>9} "
            f"{figures['non_2xx']:>8} {errors:>8} "
            f"{figures['server_cpu_ms_per_item']:>7.3f} ms"
        )
    lines += ["", f"{'cores busy':<10} {'server':>10} {'postgres':>10} {'wrk':>10} {'other':>9}"]
    for name, figures in runs.items():
        cores = figures["cores_busy"]
        lines.append(
            f"{name:<10} {cores['server']:>10.2f} {cores['postgres']:>10.2f} "
            f"{cores['load_generator']:>10.2f} {cores['other']:>9.2f}"
        )
    lines.append("")
    names = {
        "ratio": "items/s service/reference",
        "p99_vs_reference": "p99 service/reference",
        "batch_vs_single": "items/s batch/single",
    }
    for name, target in result["targets"].items():
        verdict = "PASS" if target["passed"] else "FAIL"
        lines.append(
            f"{names[name]:<26} {target['value']:>7.3f} (target {target['target']}): {verdict}"
        )
    lines.append(f"verdict: {result['verdict']}")
    if result["failed_requests"]:
        lines.append(
            f"  {result['failed_requests']} requests failed (non-2xx or socket errors): "
            "the figures do not count"
        )
    profile = result.get("profile")
    if profile:
        lines += [
            "",
            f"profile of the service (py-spy, {profile['samples']} samples): "
            f"{profile['cpu_ms_per_item']:.3f} ms CPU per item",
            f"  {'self':<52} {'share':>6} {'ms/item':>8}",
        ]
        lines += [
            f"  {row['function'][:52]:<52} {row['share']:>6.1%} {row['cpu_ms_per_item']:>8.4f}"
            for row in profile["self"]
        ]
        lines.append(f"  {'total (anywhere on the stack)':<52} {'share':>6} {'ms/item':>8}")
        lines += [
            f"  {row['function'][:52]:<52} {row['share']:>6.1%} {row['cpu_ms_per_item']:>8.4f}"
            for row in profile["total"]
        ]
        lines.append(f"  collapsed stacks: {profile['collapsed_stacks']}")
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
    script = write_lua_script(Path(stack.enter_context(tempfile.TemporaryDirectory())), options.mix)

    _progress("starting the embedded PostgreSQL (.closeloop-bench/)")
    postgres = stack.enter_context(embedded_postgres())
    service_url = stack.enter_context(fresh_database(postgres, SERVICE_DATABASE))
    reference_url = stack.enter_context(fresh_database(postgres, REFERENCE_DATABASE))
    host["postgresql"] = postgres_version(service_url)

    _progress("migrating the service's database and creating an API key")
    upgrade(service_url)
    env = service_environment(service_url)
    key = create_api_key(env, ["feedback:write"])

    profile_path = None
    if options.profile:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        profile_path = RESULTS_DIR / f"ingest-profile-{stamp}.txt"
    batch_result = None
    with closeloop_server(env) as service:
        check_answers(service, key, options.mix)
        service_result = measure(
            service,
            postgres,
            database_url=service_url,
            options=options,
            script=script,
            key=key,
            profile=profile_path,
        )
        if options.batch:
            check_answers(service, key, options.mix, batch=True)
            batch_result = measure(
                service,
                postgres,
                database_url=service_url,
                options=options,
                script=script,
                key=key,
                batch=options.batch,
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
        check_answers(reference, key, options.mix)
        reference_result = measure(
            reference,
            postgres,
            database_url=reference_url,
            options=options,
            script=script,
            key=key,
        )

    measured = {"service": service_result, "reference": reference_result}
    if batch_result is not None:
        measured["batch"] = batch_result
    targets = verdicts(service_result, reference_result, batch_result, options)
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
        result["profile"] = profile_summary(
            profile_path, service_result.items, service_result.cpu.server
        )
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
