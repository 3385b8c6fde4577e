"""Soak: a mixed concurrent load on one `closeloop serve` for a fixed time; no answer may be a 5xx.

    .venv/bin/python -m bench.soak                  (60 s at 64 connections, about 90 s in all)

What runs. A fresh database in the embedded PostgreSQL (.closeloop-bench/), migrated, and one
`closeloop serve` process on 127.0.0.1 with its SLA monitor every second and resolved cases
closing by themselves at the next pass (FEEDBACK_CASE_AUTOCLOSE_DAYS=0), so the monitor keeps
closing a backlog while requests come in. Rate limits stay on, set high enough never to refuse.
Then 64 connections (httpx, keep-alive), each sending one request after another until the time
is up, of these kinds, drawn at random:

- ingest (45 %): one item, 60 % of them detractors from 2,000 returning customers, so they
  open cases and join open ones; and now and then a batch of 20;
- case pages (25 %): a page of a team's open queue, sometimes the next page;
- resolves (15 %): read a case seen on a page, resolve it with its ETag (a 409 or 412 when
  another connection got there first is an answer, not a failure);
- admin writes (12 %): a team, a rule, a webhook endpoint (on loopback, for an event the soak
  never causes) created and deleted again;
- hang-ups (3 %): a long page of cases whose client gives up after 5 ms, as a closed browser
  tab does.

How to read it. Every answer is counted by kind and status. The verdict is PASS when no answer
was a 5xx and no connection failed (hang-ups aside); the service's log is shown otherwise.
The figures (requests/s, p50/p99 by kind) say what the machine managed, not a target.

Exit status: 0 for PASS, 1 for FAIL, 2 when it could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench._postgres import embedded_postgres, fresh_database
from bench.common import (
    clean_environment,
    closeloop_server,
    create_api_key,
    machine,
    percentiles,
    progress,
    run_cleanly,
    save_result,
)

DATABASE = "closeloop_bench_soak"
TEAMS = ("support", "billing", "accounts")
CUSTOMERS = 2_000
KINDS = (("ingest", 45), ("case_page", 25), ("resolve", 15), ("admin_write", 12), ("hang_up", 3))


@dataclass
class SoakResult:
    seconds: float
    connections: int
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values())

    @property
    def passed(self) -> bool:
        return not self.failures and not self.server_errors


@dataclass
class _Shared:
    """What the connections learn from each other: cases seen on pages, to resolve."""

    cases: list[str] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))


def _feedback(rng: random.Random) -> dict[str, Any]:
    negative = rng.random() < 0.6
    customer = rng.randrange(CUSTOMERS)
    return {
        "source": rng.choice(("checkout-web", "ios-app", "call-center-eu")),
        "channel": rng.choice(("web", "app", "phone")),
        "customer": {"external_id": f"cus_{customer}", "email": f"c{customer}@example.com"},
        "metric": "nps",
        "score": rng.randrange(0, 7) if negative else rng.randrange(9, 11),
        "comment": rng.choice(("late again", "refund please", "great", "app crashed", "ok")),
        "attributes": {"plan": rng.choice(("free", "pro", "enterprise"))},
    }


async def _ingest(client: httpx.AsyncClient, shared: _Shared) -> httpx.Response:
    if shared.rng.random() < 0.05:
        items = [_feedback(shared.rng) for _ in range(20)]
        return await client.post("/v1/feedback/batch", json={"items": items})
    return await client.post("/v1/feedback", json=_feedback(shared.rng))


async def _case_page(client: httpx.AsyncClient, shared: _Shared) -> httpx.Response:
    params: dict[str, Any] = {"status": "open", "team": shared.rng.choice(TEAMS), "limit": 50}
    page = await client.get("/v1/cases", params=params)
    if page.status_code == 200:
        body = page.json()
        shared.cases.extend(item["id"] for item in body["items"][:5])
        del shared.cases[:-500]
        if body["next_cursor"] and shared.rng.random() < 0.3:
            page = await client.get("/v1/cases", params={**params, "cursor": body["next_cursor"]})
    return page


async def _resolve(client: httpx.AsyncClient, shared: _Shared) -> httpx.Response:
    if not shared.cases:
        return await _case_page(client, shared)
    case_id = shared.cases.pop(shared.rng.randrange(len(shared.cases)))
    case = await client.get(f"/v1/cases/{case_id}")
    if case.status_code != 200 or case.json()["status"] in ("resolved", "closed"):
        return case
    return await client.post(
        f"/v1/cases/{case_id}/resolve",
        json={"code": "fixed", "customer_message": "Sorted.", "notify_customer": True},
        headers={"If-Match": case.headers["etag"]},
    )


async def _admin_write(client: httpx.AsyncClient, shared: _Shared) -> httpx.Response:
    name = uuid.uuid4().hex[:12]
    choice = shared.rng.randrange(3)
    if choice == 0:
        body = {"key": f"t-{name}", "name": name, "first_response_minutes": 60}
        created = await client.post("/v1/teams", json={**body, "resolution_minutes": 600})
        if created.status_code != 201:
            return created
        return await client.delete(f"/v1/teams/t-{name}")
    if choice == 1:
        rule = {
            "name": f"rule {name}",
            "priority": 500,
            "team": shared.rng.choice(TEAMS),
            "conditions": {"field": "comment", "op": "contains_any", "value": [name]},
        }
        created = await client.post("/v1/routing/rules", json=rule)
        if created.status_code != 201:
            return created
        etag = (await client.get(f"/v1/routing/rules/{created.json()['id']}")).headers["etag"]
        return await client.delete(
            f"/v1/routing/rules/{created.json()['id']}", headers={"If-Match": etag}
        )
    # Loopback, and for an event the soak never causes: nothing is sent to it.
    endpoint = {"url": f"http://127.0.0.1:9/{name}", "event_types": ["case.reopened"]}
    created = await client.post("/v1/webhooks/endpoints", json=endpoint)
    if created.status_code != 201:
        return created
    return await client.delete(f"/v1/webhooks/endpoints/{created.json()['id']}")


async def _hang_up(client: httpx.AsyncClient, shared: _Shared) -> httpx.Response | None:
    params: dict[str, Any] = {"status": ["open", "resolved"], "limit": 200}
    try:
        return await client.get("/v1/cases", params=params, timeout=0.005)
    except httpx.TimeoutException:
        return None


_ACTIONS = {
    "ingest": _ingest,
    "case_page": _case_page,
    "resolve": _resolve,
    "admin_write": _admin_write,
    "hang_up": _hang_up,
}


async def mixed_load(
    base_url: str, admin_key: str, *, seconds: float, connections: int
) -> SoakResult:
    """Load the service at `base_url` (loopback) with the mix above for `seconds`."""
    result = SoakResult(seconds=seconds, connections=connections)
    shared = _Shared()
    names = [name for name, _ in KINDS]
    weights = [weight for _, weight in KINDS]
    deadline = time.monotonic() + seconds

    def client() -> httpx.AsyncClient:
        # One client per connection: httpx looks through its whole pool for a free connection
        # on every request, which with 64 in one pool would make the load generator the
        # bottleneck.
        return httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {admin_key}"},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=60,
        )

    async def connection() -> None:
        async with client() as http:
            while time.monotonic() < deadline:
                kind = shared.rng.choices(names, weights)[0]
                started = time.perf_counter()
                try:
                    answer = await _ACTIONS[kind](http, shared)
                except httpx.HTTPError as exc:
                    result.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                if answer is None:  # hung up, as meant
                    result.statuses[kind][0] += 1
                    continue
                result.latencies[kind].append((time.perf_counter() - started) * 1000)
                result.statuses[kind][answer.status_code] += 1
                if answer.status_code >= 500:
                    result.server_errors.append(
                        f"{kind}: {answer.request.method} {answer.request.url.path} → "
                        f"{answer.status_code} {answer.text[:300]}"
                    )

    async with client() as http:
        for team in TEAMS:
            body = {"key": team, "name": team, "first_response_minutes": 5}
            await http.post("/v1/teams", json={**body, "resolution_minutes": 60})
    await asyncio.gather(*(connection() for _ in range(connections)))
    return result


def soak_environment(database_url: str) -> dict[str, str]:
    return clean_environment(
        FEEDBACK_DATABASE_URL=database_url,
        FEEDBACK_LOG_LEVEL="warning",
        FEEDBACK_ACCESS_LOG="false",
        FEEDBACK_SLA_CHECK_INTERVAL_SECONDS="1",
        FEEDBACK_CASE_AUTOCLOSE_DAYS="0",
        FEEDBACK_RATE_LIMIT_PER_MINUTE="100000000",
        FEEDBACK_INGEST_RATE_LIMIT_PER_MINUTE="100000000",
        FEEDBACK_WEBHOOK_ALLOW_HTTP="true",
        FEEDBACK_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
    )


def report(result: SoakResult) -> str:
    lines = [
        f"Soak: {result.connections} connections for {result.seconds:g} s on 127.0.0.1, "
        f"{result.requests:,} answers ({result.requests / result.seconds:,.0f}/s)",
        "",
        f"{'kind':<12} {'answers':>8} {'p50':>9} {'p99':>9}  statuses",
    ]
    for kind, _ in KINDS:
        counts = result.statuses.get(kind, Counter())
        samples = result.latencies.get(kind, [])
        timed = percentiles(samples, (50, 99)) if samples else {}
        p50, p99 = timed.get("p50", 0.0), timed.get("p99", 0.0)
        shown = ", ".join(f"{status or 'hung up'}: {n}" for status, n in sorted(counts.items()))
        lines.append(f"{kind:<12} {sum(counts.values()):>8} {p50:>6.1f} ms {p99:>6.1f} ms  {shown}")
    lines.append("")
    lines += [f"  5xx: {error}" for error in result.server_errors[:20]]
    lines += [f"  failed: {failure}" for failure in result.failures[:20]]
    lines.append(f"verdict: {'PASS' if result.passed else 'FAIL'} (no 5xx, no failed connection)")
    return "\n".join(lines)


def run(stack: ExitStack, args: argparse.Namespace) -> int:
    from app.core.migrations import upgrade

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    progress("starting the embedded PostgreSQL (.closeloop-bench/)")
    postgres = stack.enter_context(embedded_postgres())
    url = stack.enter_context(fresh_database(postgres, DATABASE))
    upgrade(url)
    env = soak_environment(url)
    key = create_api_key(env, ["admin"], name="bench-soak")
    service = stack.enter_context(closeloop_server(env))
    progress(f"soaking for {args.seconds:g} s at {args.connections} connections")
    result = asyncio.run(
        mixed_load(service.base_url, key, seconds=args.seconds, connections=args.connections)
    )
    text = report(result)
    if not result.passed:
        text += f"\n\nthe service's log ends:\n{service.output_tail()}"
    saved = save_result(
        "soak",
        {
            "benchmark": "soak",
            "started_at": started_at,
            "machine": machine(("fastapi", "sqlalchemy", "asyncpg", "httpx")),
            "settings": vars(args),
            "statuses": {k: dict(v) for k, v in result.statuses.items()},
            "server_errors": result.server_errors,
            "failures": result.failures,
            "verdict": "PASS" if result.passed else "FAIL",
        },
    )
    print(text)
    print(f"\n  saved to {saved}")
    return 0 if result.passed else 1


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=60, help="how long (60)")
    parser.add_argument("--connections", type=int, default=64, help="at once (64)")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 3600 or not 0 < args.connections <= 1000:
        parser.error("0 < --seconds ≤ 3600 and 0 < --connections ≤ 1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(argv)
    return run_cleanly(lambda stack: run(stack, args))


if __name__ == "__main__":
    sys.exit(main())
