"""The web room's tests: the follow-up page and the widget, through HTTP and in a real browser.

Resolving a case with a notice needs a webhook endpoint that takes case.resolved (else nobody
is given the link, and the case keeps no token); these tests register one on 127.0.0.1, and
read the token from the message the outbox holds for it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from app.core.config import Settings
from app.core.db import Database
from app.main import create_app
from tests.builders import (
    auth,
    change_case,
    make_api_key,
    open_case,
    register_endpoint,
    webhooks_on_loopback,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, ViewportSize

HOOK = "http://127.0.0.1:9/hook"
NOTICE = {"code": "refunded", "customer_message": "We refunded your order."}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return webhooks_on_loopback(settings)


async def take_case_resolved(client: httpx.AsyncClient) -> None:
    """Register an endpoint that takes case.resolved, so resolutions hand out links."""
    await register_endpoint(client, "case.resolved", url=HOOK)


async def resolved_link(
    client: httpx.AsyncClient, database: Database, **overrides: Any
) -> tuple[dict[str, Any], str]:
    """A case opened by negative feedback (feedback_body with overrides) and resolved with a
    notice, and the follow-up token its case.resolved message carries. The customer speaks
    English unless told otherwise."""
    overrides.setdefault("customer", {"external_id": "cus_42", "locale": "en"})
    case = await open_case(client, **overrides)
    response = await change_case(client, case, "resolve", NOTICE)
    assert response.status_code == 200, response.text
    async with database.raw() as conn:
        token = await conn.fetchval(
            "SELECT convert_from(body, 'UTF8')::jsonb -> 'data' -> 'followup' ->> 'token' "
            "FROM outbox_message WHERE event_type = 'case.resolved' AND case_id = $1 "
            "ORDER BY created_at DESC LIMIT 1",
            uuid.UUID(case["id"]),
        )
    assert isinstance(token, str), "no case.resolved message: is an endpoint registered?"
    return response.json(), token


# -- in a real browser --------------------------------------------------------------------------

# Debian's chromium package; never a browser Playwright downloads.
CHROMIUM = Path(os.environ.get("CLOSELOOP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# Each test run writes a screenshot of every page here (git ignores it).
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 360, "height": 760}


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return (
            f"the browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium; "
            "or set CLOSELOOP_CHROMIUM)"
        )
    if importlib.util.find_spec("playwright") is None:
        return "the browser tests need Playwright: pip install -e '.[dev]'"
    return None


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One headless Chromium for the run (each launch has a fresh temporary profile; each test
    a fresh context). Without one the browser tests skip, saying why; in CI they fail."""
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {missing}", pytrace=False)
        pytest.skip(missing)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def origin_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def serving(app: ASGIApp, sock: socket.socket) -> AsyncIterator[str]:
    """A real uvicorn serving `app` on `sock` in this event loop, for as long as the block."""
    config = uvicorn.Config(app, log_config=None, access_log=False, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                await asyncio.sleep(0.01)
        yield origin_of(sock)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@dataclass
class Live:
    """The service on a real port, on the committed database, and an admin client for it."""

    url: str
    admin: httpx.AsyncClient
    database: Database
    settings: Settings


@pytest.fixture
async def live(committed: Database, settings: Settings) -> AsyncIterator[Live]:
    sock = bound_socket()
    # Links handed out are this server's; the browser tests try many links from one address.
    live_settings = settings.model_copy(
        update={"public_url": origin_of(sock), "followup_attempts_per_minute": 0}
    )
    key = await make_api_key(committed, "admin", name="admin")
    app = create_app(live_settings, committed)
    async with (
        serving(app, sock) as url,
        httpx.AsyncClient(base_url=url, headers=auth(key)) as admin,
    ):
        yield Live(url, admin, committed, live_settings)


async def screenshot(page: Page, name: str) -> None:
    """The page as it looks now, at desktop width and on a 360 px phone (whole page)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    size = page.viewport_size
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(viewport)
        await page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    if size is not None:
        await page.set_viewport_size(size)
