"""Every error is problem+json: unknown routes, wrong methods, big bodies, non-JSON, crashes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.builders import feedback_body


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == f"urn:closeloop:problem:{code}"
    assert problem["title"]
    # Every problem names the request's path, the gate's own refusals (413, 415) too.
    assert problem["instance"] == response.request.url.path


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404, "route_not_found")


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/feedback", json={})
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_a_single_body_over_64_kib_is_a_413(writer: httpx.AsyncClient) -> None:
    body = feedback_body(attributes={f"k{i}": "é" * 999 for i in range(50)})
    assert len(json.dumps(body, ensure_ascii=False).encode()) > 64 * 1024
    assert_problem(await writer.post("/v1/feedback", json=body), 413, "payload_too_large")


async def test_a_chunked_body_over_the_limit_is_a_413(writer: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    response = await writer.post(
        "/v1/feedback", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_a_batch_may_be_up_to_2_mib(writer: httpx.AsyncClient) -> None:
    items = [feedback_body(external_id=f"big-{i}", comment="z" * 1_500) for i in range(1000)]
    body = json.dumps({"items": items}).encode()
    assert 64 * 1024 < len(body) < 2 * 1024 * 1024
    response = await writer.post(
        "/v1/feedback/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert {r["status"] for r in response.json()["results"]} == {"created"}


async def test_a_batch_over_2_mib_is_a_413(writer: httpx.AsyncClient) -> None:
    items = [feedback_body(external_id=f"big-{i}", comment="z" * 2_500) for i in range(1000)]
    response = await writer.post("/v1/feedback/batch", json={"items": items})
    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_json_is_a_415(
    writer: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await writer.post("/v1/feedback", content=b"source=web", headers=headers)
    assert_problem(response, 415, "unsupported_media_type")


async def test_json_with_a_charset_is_accepted(writer: httpx.AsyncClient) -> None:
    response = await writer.post(
        "/v1/feedback",
        content=json.dumps(feedback_body()).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


async def test_an_unexpected_error_is_a_bare_500(app: FastAPI, admin_key: str) -> None:
    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert_problem(response, 500, "internal_error")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient) -> None:
    mine = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    fresh = await client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
