"""Real `closeloop serve` processes, each test on a database of its own: two processes share one
rate limit; a mixed load answers no 5xx; the README's tour leaves no personal data in the logs."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.auth import hash_key
from app.core.db import Database
from app.core.embedded import EmbeddedPostgres
from bench.soak import mixed_load
from tests.builders import auth, change_case, eventually, feedback_body, make_api_key
from tests.processes import connected, own_database, ready, serve
from tests.receiver import running_receiver


async def _counted(database: Database, key: str) -> int:
    """What the table holds for a key, over all windows and addresses (0 before any sync)."""
    async with database.raw() as conn:
        total = await conn.fetchval(
            "SELECT coalesce(sum(w.count), 0) FROM rate_limit_window w "
            "JOIN api_key k ON k.id = w.api_key_id WHERE k.key_hash = $1",
            hash_key(key),
        )
    return int(total)


async def test_two_processes_share_one_rate_limit(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    limited = {"ingest_rate_limit_per_minute": "10", "dispatcher_in_process": "false"}
    async with own_database(pg_server) as url, connected(url) as database:
        with (
            serve(url, tmp_path / "a.log", **limited) as a,
            serve(url, tmp_path / "b.log", **limited) as b,
        ):
            async with httpx.AsyncClient(timeout=30) as http:
                await ready(http, a)
                await ready(http, b)

                sent = 0

                async def post(served: Any, key: str) -> int:
                    # A new X-Forwarded-For each time: no proxy is trusted, so it changes
                    # nothing (uvicorn would believe it from a loopback peer).
                    nonlocal sent
                    sent += 1
                    headers = {**auth(key), "X-Forwarded-For": f"203.0.113.{sent % 250}"}
                    url = f"{served.base_url}/v1/feedback"
                    answer = await http.post(url, json=feedback_body(score=9), headers=headers)
                    return answer.status_code

                # Counts are per minute: a run that straddles a minute starts again.
                for _ in range(3):
                    minute = time.time() // 60
                    key = await make_api_key(database, "feedback:write")
                    probe = await make_api_key(database, "feedback:write")
                    through_a = [await post(a, key) for _ in range(10)]
                    await eventually(partial(_has, database, key, 10))
                    # B's next sync reads A's count; the sync that writes B's probe has done so.
                    assert await post(b, probe) == 201
                    await eventually(partial(_has, database, probe, 1))
                    refused = (await post(b, key), await post(a, key))
                    if time.time() // 60 == minute:
                        break
                else:
                    pytest.fail("three runs in a row straddled a minute")
    assert through_a == [201] * 10
    assert refused == (429, 429)


async def _has(database: Database, key: str, count: int) -> bool:
    return await _counted(database, key) == count


async def test_a_mixed_load_answers_no_5xx(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    """bench/soak.py's load for a few seconds: ingest, case pages, resolves, admin writes and
    hang-ups at 64 connections, while the SLA monitor closes what is resolved."""
    async with own_database(pg_server) as url, connected(url) as database:
        admin = await make_api_key(database, "admin")
        settings = {
            "sla_check_interval_seconds": "0.5",
            "case_autoclose_days": "0",
            "rate_limit_per_minute": "100000000",
            "webhook_allow_http": "true",
            "webhook_allowed_networks": "127.0.0.0/8",
            "access_log": "false",
        }
        with serve(url, tmp_path / "serve.log", **settings) as served:
            async with httpx.AsyncClient() as http:
                await ready(http, served)
            result = await mixed_load(served.base_url, admin, seconds=8, connections=64)
            log = served.log_lines()
            assert result.server_errors == [], "\n".join(log[-40:])
            assert result.failures == []
            for kind in ("ingest", "case_page", "resolve", "admin_write", "hang_up"):
                assert sum(result.statuses[kind].values()) > 0, kind

            async def closed() -> int:
                async with database.raw() as conn:
                    count: int = await conn.fetchval(
                        "SELECT count(*) FROM feedback_case WHERE status = 'closed'"
                    )
                return count

            async with database.raw() as conn:
                resolved = await conn.fetchval(
                    "SELECT count(*) FROM feedback_case WHERE status IN ('resolved', 'closed')"
                )
            if not resolved:
                # On a slow machine every resolve of the load may have met a stale ETag (412) or
                # a case another connection resolved first: resolve one here, as an agent would.
                async with httpx.AsyncClient(base_url=served.base_url, headers=auth(admin)) as http:
                    page = await http.get("/v1/cases", params={"status": "open", "limit": 1})
                    case = page.json()["items"][0]
                    resolve = {"code": "fixed", "customer_message": "Sorted."}
                    answer = await change_case(http, case, "resolve", resolve)
                    assert answer.status_code == 200, answer.text

            # The server's SLA monitor closes what is resolved on its next passes (a loaded
            # machine may need more than the load's 8 seconds).
            assert await eventually(closed, within=30), "the SLA monitor closed nothing"


# -- the README's tour, and what the logs say of it ---------------------------------------------

EMAILS = ("ana@example.com", "Ana.Souza@Example.COM", "bob@example.org", "carol@example.net")
# As typed, and as stored (+ and digits).
PHONES = ("+55 11 91234-5678", "(11) 91234-5678", "+1 415 555 0199", "+1-415-555-0199")
STORED_PHONES = ("+5511912345678", "+14155550199", "91234-5678", "555 0199")
COMMENTS = (
    "Entrega atrasada e ninguém respondeu",
    "Quero meu reembolso ou ligo para +1 415 555 0199",
    "我要退款，请发邮件到 carol@example.net",
)
NAMES = ("Ana Souza",)


async def _tour(http: httpx.AsyncClient, admin: str, hook_url: str, receiver: Any) -> None:
    """What README.md's "A quick tour" does, in order."""

    async def call(method: str, path: str, key: str, expect: int, **kw: Any) -> Any:
        answer = await http.request(
            method, path, headers={**auth(key), **kw.pop("headers", {})}, **kw
        )
        assert answer.status_code == expect, (method, path, answer.text)
        return answer

    # API keys
    await call(
        "POST",
        "/v1/api-keys",
        admin,
        201,
        json={
            "name": "checkout site",
            "scopes": ["feedback:write"],
            "allowed_sources": ["checkout-web"],
            "allowed_origins": ["https://shop.example.com"],
        },
    )
    writer = (
        await call(
            "POST",
            "/v1/api-keys",
            admin,
            201,
            json={
                "name": "survey backend",
                "scopes": ["feedback:write", "feedback:read"],
            },
        )
    ).json()["key"]
    spare = (
        await call(
            "POST",
            "/v1/api-keys",
            admin,
            201,
            json={
                "name": "spare",
                "scopes": ["reports:read"],
            },
        )
    ).json()
    await call("GET", "/v1/api-keys", admin, 200)
    await call("DELETE", f"/v1/api-keys/{spare['id']}", admin, 200)

    # Teams, a rule, evaluate and backtest
    for team in ("support", "billing", "accounts"):
        await call(
            "POST",
            "/v1/teams",
            admin,
            201,
            json={
                "key": team,
                "name": team.title(),
                "first_response_minutes": 60,
                "resolution_minutes": 1440,
            },
        )
    await call(
        "POST",
        "/v1/routing/rules",
        admin,
        201,
        json={
            "name": "Refunds to billing",
            "priority": 10,
            "team": "billing",
            "case_priority": "high",
            "conditions": {
                "field": "comment",
                "op": "contains_any",
                "value": ["reembolso", "退款"],
            },
        },
    )
    # Webhooks: every event, to a receiver on loopback
    endpoint = (
        await call(
            "POST",
            "/v1/webhooks/endpoints",
            admin,
            201,
            json={
                "url": hook_url,
                "event_types": ["*"],
            },
        )
    ).json()

    # Sending feedback: single, with identity and comments full of personal data
    sent = (
        await call(
            "POST",
            "/v1/feedback",
            writer,
            201,
            json={
                "source": "checkout-web",
                "channel": "web",
                "external_id": "resp-8812",
                "customer": {
                    "external_id": "cus_42",
                    "email": EMAILS[1],
                    "phone": PHONES[0],
                    "name": NAMES[0],
                    "locale": "pt-BR",
                },
                "metric": "nps",
                "score": 3,
                "comment": COMMENTS[0],
                "attributes": {"plan": "pro", "order_id": "A-1009"},
            },
        )
    ).json()
    await call(
        "POST",
        "/v1/feedback",
        writer,
        201,
        json={
            "source": "ios-app",
            "channel": "app",
            "metric": "csat",
            "score": 1,
            "customer": {"email": EMAILS[2], "phone": PHONES[2]},
            "comment": COMMENTS[1],
        },
        headers={"Idempotency-Key": "order-1009-survey"},
    )
    await call(
        "POST",
        "/v1/feedback",
        writer,
        200,
        json={
            "source": "ios-app",
            "channel": "app",
            "metric": "csat",
            "score": 1,
            "customer": {"email": EMAILS[2], "phone": PHONES[2]},
            "comment": COMMENTS[1],
        },
        headers={"Idempotency-Key": "order-1009-survey"},
    )
    await call(
        "POST",
        "/v1/feedback/batch",
        writer,
        200,
        json={
            "items": [
                {
                    "source": "call-center-eu",
                    "channel": "phone",
                    "external_id": "c-1",
                    "metric": "csat",
                    "score": 2,
                    "customer": {"phone": PHONES[1]},
                    "comment": COMMENTS[2],
                },
                {
                    "source": "call-center-eu",
                    "channel": "phone",
                    "external_id": "c-2",
                    "metric": "csat",
                    "score": 9,
                    "customer": {"email": EMAILS[3]},
                },
            ]
        },
    )
    # A body that is refused, with personal data in it
    await call(
        "POST",
        "/v1/feedback",
        writer,
        422,
        json={
            "customer": {"email": EMAILS[0], "phone": PHONES[3]},
            "metric": "nps",
            "score": 11,
            "comment": COMMENTS[0],
        },
    )
    # Reading feedback
    await call("GET", f"/v1/feedback/{sent['id']}", writer, 200)
    await call("GET", "/v1/feedback", writer, 200, params={"customer": EMAILS[1]})
    await call(
        "POST",
        "/v1/routing/evaluate",
        admin,
        200,
        json={
            "source": "ios-app",
            "channel": "app",
            "metric": "nps",
            "score": 2,
            "comment": COMMENTS[2],
        },
    )
    await call(
        "POST",
        "/v1/routing/backtest",
        admin,
        200,
        json={
            "from": "2020-01-01T00:00:00Z",
            "to": "2100-01-01T00:00:00Z",
            "rules": [
                {
                    "name": "All to accounts",
                    "priority": 1,
                    "team": "accounts",
                    "conditions": {"all": []},
                }
            ],
        },
    )

    # Cases: the lifecycle, the timeline, the customer view
    case_id = sent["case"]["id"]
    await call("GET", "/v1/cases", admin, 200, params={"customer": EMAILS[0], "status": "open"})
    etag = (await call("GET", f"/v1/cases/{case_id}", admin, 200)).headers["etag"]
    etag = (
        await call(
            "PATCH",
            f"/v1/cases/{case_id}",
            admin,
            200,
            headers={"If-Match": etag},
            json={"status": "in_progress", "assignee": "ana"},
        )
    ).headers["etag"]
    await call(
        "POST",
        f"/v1/cases/{case_id}/notes",
        admin,
        201,
        json={"body": f"Called {PHONES[0]}; wrote to {EMAILS[0]}."},
    )
    etag = (await call("GET", f"/v1/cases/{case_id}", admin, 200)).headers["etag"]
    resolved = await call(
        "POST",
        f"/v1/cases/{case_id}/resolve",
        admin,
        200,
        headers={"If-Match": etag},
        json={
            "code": "refunded",
            "summary": "Lost by carrier",
            "customer_message": "We refunded your order.",
            "notify_customer": True,
        },
    )
    await call("GET", f"/v1/cases/{case_id}/events", admin, 200)
    await call("GET", f"/v1/customers/{EMAILS[1]}", admin, 200)
    await call("GET", f"/v1/customers/{PHONES[0]}", admin, 200)
    await call("GET", f"/v1/customers/{EMAILS[0]}/nothing-here", admin, 404)
    await call("POST", f"/v1/webhooks/endpoints/{endpoint['id']}/rotate-secret", admin, 200)

    # Closing the loop: case.resolved arrives with its follow-up token, and the answer lands
    async def resolved_message() -> dict[str, Any] | None:
        for received in receiver.received:
            message: dict[str, Any] = json.loads(received.body)
            if message["type"] == "case.resolved":
                return message
        return None

    message = await eventually(resolved_message, within=30)
    assert message is not None
    token = message["data"]["followup"]["token"]
    await call(
        "POST",
        "/v1/feedback",
        writer,
        201,
        json={
            "source": "checkout-web",
            "channel": "web",
            "metric": "csat",
            "score": 5,
            "comment": f"Thanks, reach me at {EMAILS[0]}",
            "in_reply_to": {"case_id": case_id, "token": token},
        },
    )
    assert resolved.json()["status"] == "resolved"


async def test_the_tour_writes_no_personal_data_to_the_logs(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    async with own_database(pg_server) as url, connected(url) as database:
        admin = await make_api_key(database, "admin")
        async with running_receiver() as receiver:
            settings = {
                "log_level": "debug",
                "webhook_allow_http": "true",
                "webhook_allowed_networks": "127.0.0.0/8",
            }
            with serve(url, tmp_path / "serve.log", **settings) as served:
                async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
                    await ready(http, served)
                    await _tour(http, admin, receiver.url("/ok"), receiver)
            lines = served.log_lines()
    assert any('"path": "/v1/customers/{key}"' in line for line in lines), lines[-20:]
    assert any('"level": "debug"' in line for line in lines)
    for secret in (*EMAILS, *PHONES, *STORED_PHONES, *COMMENTS, *NAMES):
        found = [line for line in lines if secret.casefold() in line.casefold()]
        assert not found, (secret, found)
