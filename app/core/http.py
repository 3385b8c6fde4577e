"""Plain ASGI middleware: request ids and access logs, body limits and types, ingest CORS.

Plain ASGI rather than BaseHTTPMiddleware because these run on every request, ingest included,
and a BaseHTTPMiddleware layer costs a task and a memory stream each time.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import (
    AppError,
    PayloadTooLarge,
    UnsupportedMediaType,
    error_response,
    unexpected_error,
)
from app.core.logging import logged_path, request_id_var
from app.core.metrics import observe_request

access_logger = logging.getLogger("closeloop.access")

DEFAULT_BODY_LIMIT = 64 * 1024
_BODY_METHODS = {"POST", "PUT", "PATCH"}


async def _send_error(error: AppError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(error)(scope, receive, send)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


class RequestContext:
    """Gives every request an id (X-Request-ID, taken from the caller when sane) and logs it."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if 0 < len(given) <= 100 and given.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        answering = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if answering:  # the answer is broken off: the server closes the connection
                raise
            await unexpected_error(scope, exc)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # A path no route took is one label, not one each: strangers choose paths.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            observe_request(scope["method"], route, status, elapsed)
            if self.access_log:
                access_logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": logged_path(scope),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)


class RequestGuard:
    """413 for a body over its route's limit, 415 for a body that is not JSON (or, under the
    path prefixes in `forms`, not a plain HTML form either).

    `foreign_bodies` names path prefixes (survey tools' webhooks) that take bodies of any
    type, the tool's own, up to its limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: dict[str, int],
        forms: tuple[str, ...] = (),
        foreign_bodies: tuple[tuple[str, ...], int] = ((), DEFAULT_BODY_LIMIT),
    ) -> None:
        self.app = app
        self.limits = limits
        self.forms = forms
        self.foreign_prefixes, self.foreign_limit = foreign_bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        foreign = scope["path"].startswith(self.foreign_prefixes)
        limit = (
            self.foreign_limit if foreign else self.limits.get(scope["path"], DEFAULT_BODY_LIMIT)
        )
        length_header = headers.get("content-length")
        try:
            length = int(length_header) if length_header is not None else None
        except ValueError:
            length = None
        if length is not None and length > limit:
            await _send_error(_too_large(limit), scope, receive, send)
            return
        has_body = (length or 0) > 0 or "chunked" in headers.get("transfer-encoding", "")
        content_type = headers.get("content-type", "")
        if (
            has_body
            and not foreign
            and not (
                _is_json(content_type)
                or (scope["path"].startswith(self.forms) and _is_form(content_type))
            )
        ):
            error = UnsupportedMediaType(
                "Send the body as JSON, with `Content-Type: application/json`.",
                code="unsupported_media_type",
            )
            await _send_error(error, scope, receive, send)
            return
        received = 0

        async def receive_with_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through FastAPI's body reading unchanged and
                    # reaches the problem handler as a 413.
                    raise HTTPException(413, _too_large(limit).detail)
            return message

        await self.app(scope, receive_with_limit, send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The body is over this route's limit of {limit // 1024} KiB.")


OriginLookup = Callable[[Scope], Awaitable[frozenset[str]]]


class IngestCors:
    """CORS for the ingest routes, for keys that live in a web page.

    A preflight carries no key, so it is answered yes for any origin that some live ingest key
    allows. The request itself is then checked against its own key's origins (app/core/auth.py),
    and only then does the answer carry `Access-Control-Allow-Origin`.
    """

    def __init__(self, app: ASGIApp, *, paths: set[str], origins: OriginLookup) -> None:
        self.app = app
        self.paths = paths
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(scope, receive, send, origin, headers)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                allowed = scope.get("state", {}).get("cors_origin")
                response_headers = MutableHeaders(scope=message)
                response_headers.append("Vary", "Origin")
                if allowed == origin:
                    response_headers["Access-Control-Allow-Origin"] = origin
                    response_headers["Access-Control-Expose-Headers"] = (
                        "Idempotent-Replayed, Retry-After, X-Request-ID"
                    )
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, origin: str, headers: Headers
    ) -> None:
        from starlette.responses import Response

        allowed = origin in await self.origins(scope)
        method = headers.get("access-control-request-method", "")
        if not allowed or method != "POST":
            response = Response(status_code=403, headers={"Vary": "Origin"})
        else:
            response = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "POST",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key",
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        await response(scope, receive, send)
