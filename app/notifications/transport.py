"""Sending one webhook message: the signed request, the SSRF guard, the connection slots, and
what came of it (an Outcome, which the dispatcher's loop records and schedules)."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from app.core.config import Settings
from app.core.crypto import SecretKeyError, secret_box
from app.core.db import utcnow
from app.notifications.addresses import AddressPolicy, AddressRefused, Resolver
from app.notifications.signing import message_id, signature_header

# The dispatcher's logger: sending is its work, and operators filter its logs by that name.
logger = logging.getLogger("app.notifications.dispatcher")

EXCERPT_BYTES = 2048
MAX_RETRY_AFTER = 86_400.0
USER_AGENT = "Closeloop-Webhooks/0.1"
SLOT_EXTENSION = "closeloop.slot"
ERROR_CHARS = 500
_DELAY_SECONDS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    body: bytes
    tries: int
    url: str
    # As stored (sealed when FEEDBACK_SECRET_KEY is set); the previous one while it is valid.
    secret: str
    previous_secret: str | None
    lease_token: uuid.UUID


@dataclass(frozen=True, slots=True)
class Outcome:
    message: Claimed
    at: datetime
    status_code: int | None
    duration_ms: int
    excerpt: str | None
    error: str | None
    retry_after: float | None
    slow: bool  # a timeout or a 429: retry no sooner than a minute

    @property
    def success(self) -> bool:
        # A 2xx whose answer then broke off is a failure: sending again is the safe side.
        code = self.status_code
        return self.error is None and code is not None and 200 <= code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds (at most a day) or as an HTTP date; None when absent or not
    understood. An HTTP date is in GMT (RFC 9110 §5.6.7): one without a zone is read as UTC."""
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        seconds = float(value)  # inf when too long for a float
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


class Transport:
    """Sends one message as a signed POST, through the SSRF guard, within the total timeout;
    whatever happens is an Outcome, never an exception."""

    def __init__(self, settings: Settings, *, client: httpx.AsyncClient | None = None) -> None:
        self.total_timeout = settings.webhook_timeout_seconds
        self.resolver = Resolver(
            AddressPolicy.from_settings(
                settings.webhook_allow_http, settings.webhook_allowed_networks
            )
        )
        self.client = client or httpx.AsyncClient(
            transport=ConnectionSlots(),
            timeout=httpx.Timeout(self.total_timeout, connect=5.0),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        self.box = secret_box(settings.secret_key)
        # Per endpoint: its secrets as stored, and opened.
        self.opened: dict[uuid.UUID, tuple[tuple[str, str | None], list[str]]] = {}

    def _signing_secrets(self, message: Claimed) -> list[str]:
        """The endpoint's secrets in clear, opened once per stored value: a Fernet decrypt
        per message would cost more than the rest of the signing."""
        stored = (message.secret, message.previous_secret)
        cached = self.opened.get(message.endpoint_id)
        if cached is None or cached[0] != stored:
            opened = [self.box.open(s) for s in stored if s]
            cached = self.opened[message.endpoint_id] = (stored, opened)
        return cached[1]

    def _request(
        self, message: Claimed, host: str, port: int, address: Any, scheme: str
    ) -> httpx.Request:
        timestamp = int(time.time())
        webhook_id = message_id(message.id.hex)
        url = httpx.URL(message.url).copy_with(host=str(address))
        default_port = 443 if scheme == "https" else 80
        authority = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
        headers = {
            "host": authority if port == default_port else f"{authority}:{port}",
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                self._signing_secrets(message), webhook_id, timestamp, message.body
            ),
        }
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        return self.client.build_request(
            "POST", url, content=message.body, headers=headers, extensions=extensions
        )

    async def send(self, message: Claimed, slot: int = 0) -> Outcome:
        started = time.perf_counter()
        at = utcnow()
        status_code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        retry_after: float | None = None
        slow = False
        try:
            async with asyncio.timeout(self.total_timeout):
                scheme, host, port, address = await self.resolver.checked_address(message.url)
                request = self._request(message, host, port, address, scheme)
                request.extensions[SLOT_EXTENSION] = (message.endpoint_id, slot)
                response = await self.client.send(request, stream=True)
                try:
                    status_code = response.status_code
                    excerpt = await _excerpt(response)
                    retry_after = retry_after_seconds(response.headers.get("retry-after"), at)
                finally:
                    await response.aclose()
            if status_code is not None and not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
                slow = status_code == 429
        except AddressRefused as exc:
            error = f"address refused: {exc}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {self.total_timeout:g} s"
            slow = True
        except (httpx.HTTPError, SecretKeyError) as exc:
            error = describe(exc)
        except Exception as exc:
            # A bug, or a fault nobody foresaw: it is this attempt's error like any other, so
            # the message is retried on the schedule rather than sent again, unrecorded, when
            # its lease runs out.
            logger.exception("sending webhook message %s failed unexpectedly", message.id)
            error = describe(exc)
        return Outcome(
            message=message,
            at=at,
            status_code=status_code,
            duration_ms=round((time.perf_counter() - started) * 1000),
            excerpt=excerpt,
            error=error,
            retry_after=retry_after,
            slow=slow,
        )


class ConnectionSlots(httpx.AsyncBaseTransport):
    """The shared client's connections: one per (endpoint, slot), each its own tiny pool.

    httpcore matches requests to connections by scanning its whole pool, and checking each
    connection's socket, on every request and every answer; with one pool of dozens of
    connections that scan took most of a delivery's time (measured: 280 against 760
    deliveries/s at 16 in flight). A request says which slot it holds (extension
    `closeloop.slot`), and each slot keeps one connection alive to its endpoint.
    """

    def __init__(self) -> None:
        # One TLS context for all: making one per pool costs milliseconds.
        self.ssl_context = httpx.create_ssl_context()
        self.limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.pools: dict[Any, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        slot = request.extensions.get(SLOT_EXTENSION)
        pool = self.pools.get(slot)
        if pool is None:
            pool = httpx.AsyncHTTPTransport(verify=self.ssl_context, limits=self.limits)
            self.pools[slot] = pool
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()


async def _excerpt(response: httpx.Response) -> str:
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= EXCERPT_BYTES:
            break
    # PostgreSQL text takes any character but NUL.
    return data[:EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def describe(exc: Exception) -> str:
    """An exception as an attempt's error: short, and text PostgreSQL takes (no NUL, no lone
    surrogate)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = text[:ERROR_CHARS].replace("\x00", "\ufffd")
    return text.encode("utf-8", errors="replace").decode()
