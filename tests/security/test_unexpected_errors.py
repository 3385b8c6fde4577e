"""An unexpected error, through a real server: its 500 problem is answered once, logged once,
and the keep-alive connection it came on serves the next request (issue 9, point 6).

Starlette's error middleware raises the exception again after answering, so that servers log
it: uvicorn then logged it a second time and closed the connection. RequestContext answers it
and raises nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from tests.builders import auth
from tests.processes import free_port


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The test's app behind a real uvicorn on a free loopback port, with two extra routes: one
    that fails as a bug would, one that tells the client which port it came from."""

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("a bug, with SELECT secret FROM internals in its message")

    @app.get("/test/peer")
    async def peer(request: Request) -> dict[str, int]:
        assert request.client is not None
        return {"port": request.client.port}

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, no event
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_a_500_is_answered_once_logged_once_and_keeps_the_connection(
    served: str, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=served, limits=limits, timeout=10) as client:
        before = (await client.get("/test/peer")).json()["port"]
        failed = await client.get("/test/boom", headers=auth(admin_key))
        after = (await client.get("/test/peer")).json()["port"]

    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["code"] == "internal_error"
    assert "secret" not in failed.text
    assert failed.headers.get("connection", "").lower() != "close"
    assert after == before, "the connection was dropped after the 500"

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["unhandled error on GET /test/boom"]
    assert errors[0].exc_info is not None
