"""The one plain ASGI middleware every request passes first (`RequestGate`): its request id and
access log, CORS for the ingest routes, body limits and types, and values PostgreSQL cannot
store (app/core/inputs.py).

One layer rather than one per concern, with one pass over the headers and one read of the body:
it runs on every request, ingest included, where each layer's coroutine, wrapped `receive` and
header lookups showed in the profile. Plain ASGI rather than BaseHTTPMiddleware for the same
reason (that costs a task and a memory stream each time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from secrets import token_hex

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import (
    AppError,
    PayloadTooLarge,
    UnsupportedMediaType,
    error_response,
    unexpected_error,
)
from app.core.inputs import parameter_problems, refuse, storage_problems
from app.core.logging import logged_path, request_id_var
from app.core.metrics import observe_request

access_logger = logging.getLogger("closeloop.access")

DEFAULT_BODY_LIMIT = 64 * 1024
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# The request headers the gate reads, taken in one pass (the first of each, as Headers.get).
_READ = {
    b"x-request-id",
    b"origin",
    b"access-control-request-method",
    b"content-length",
    b"content-type",
    b"transfer-encoding",
}
_EXPOSED = b"Idempotent-Replayed, Retry-After, X-Request-ID"

OriginLookup = Callable[[Scope], Awaitable[frozenset[str]]]
# A route the gate serves itself once the body has passed every check: it answers (True) or
# declines (False, before doing anything) and the app serves the request as usual.
DirectRoute = Callable[[Scope, Receive, Send, bytes], Awaitable[bool]]


async def _send_error(error: AppError, scope: Scope, receive: Receive, send: Send) -> None:
    # With its `instance` (the path), as every other problem has.
    await error_response(error, Request(scope))(scope, receive, send)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def _read_headers(scope: Scope) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _READ and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The body is over this route's limit of {limit // 1024} KiB.")


class RequestGate:
    """In order:

    - every request gets an id (X-Request-ID, taken from the caller when sane), echoed in the
      answer and in the log lines of the request, and one access log line and metric;
    - on the `cors_paths` (the ingest routes, for keys that live in a web page), a preflight is
      answered here: it carries no key, so it is told yes for any origin some live ingest key
      allows (`cors_origins`); the request itself is checked against its own key's origins
      (app/core/auth.py), and only then does the answer carry `Access-Control-Allow-Origin`;
    - 413 for a body over its route's limit (`limits`, else 64 KiB), 415 for a body that is not
      JSON (or, under the path prefixes in `forms`, not a plain HTML form either);
      `foreign_bodies` names path prefixes (survey tools' webhooks) that take bodies of any
      type, the tool's own, up to its limit;
    - 422 for a NUL, a lone surrogate or a number PostgreSQL cannot hold, in any field of the
      query, the path or the body (app/core/inputs.py);
    - the `direct` routes, by (method, path), are offered the body first.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log: bool,
        limits: dict[str, int],
        forms: tuple[str, ...] = (),
        foreign_bodies: tuple[tuple[str, ...], int] = ((), DEFAULT_BODY_LIMIT),
        cors_paths: frozenset[str] = frozenset(),
        cors_origins: OriginLookup | None = None,
        direct: Mapping[tuple[str, str], DirectRoute] | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.limits = limits
        self.forms = forms
        self.foreign_prefixes, self.foreign_limit = foreign_bodies
        self.cors_paths = cors_paths
        self.cors_origins = cors_origins
        self.direct = dict(direct or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _read_headers(scope)
        given = headers.get(b"x-request-id", "")
        # 32 hex digits as a uuid4's, from os.urandom without building a UUID.
        request_id = given if 0 < len(given) <= 100 and given.isprintable() else token_hex(16)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        answering = False
        origin = headers.get(b"origin") if scope["path"] in self.cors_paths else None
        preflight = (
            origin is not None
            and scope["method"] == "OPTIONS"
            and b"access-control-request-method" in headers
        )
        # A preflight's answer says its own CORS; any other answer on these paths gets them here.
        cors = origin if not preflight else None
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
                added = [id_header]
                if cors is not None:
                    added[:0] = self._cors_headers(scope, cors)
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        try:
            if preflight:
                assert origin is not None
                await self._preflight(scope, receive, send_with_id, origin, headers)
            else:
                await self._serve(scope, receive, send_with_id, headers)
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

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, str],
    ) -> None:
        method = scope["method"]
        if method not in _BODY_METHODS:
            problems = parameter_problems(scope)
            if problems:
                await refuse(problems, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        foreign = path.startswith(self.foreign_prefixes)
        limit = self.foreign_limit if foreign else self.limits.get(path, DEFAULT_BODY_LIMIT)
        length_header = headers.get(b"content-length")
        try:
            length = int(length_header) if length_header is not None else None
        except ValueError:
            length = None
        if length is not None and length > limit:
            await _send_error(_too_large(limit), scope, receive, send)
            return
        has_body = (length or 0) > 0 or "chunked" in headers.get(b"transfer-encoding", "")
        content_type = headers.get(b"content-type", "")
        form = path.startswith(self.forms) and _is_form(content_type)
        if has_body and not foreign and not (_is_json(content_type) or form):
            error = UnsupportedMediaType(
                "Send the body as JSON, with `Content-Type: application/json`.",
                code="unsupported_media_type",
            )
            await _send_error(error, scope, receive, send)
            return
        problems = parameter_problems(scope)
        if problems:
            await refuse(problems, scope, receive, send)
            return
        body, first = await _read_body(receive, limit)
        if body is None:
            await _send_error(_too_large(limit), scope, receive, send)
            return
        problems = storage_problems(body)
        if problems:
            await refuse(problems, scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed or first is None:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        direct = self.direct.get((method, path))
        if direct is not None and first is not None and await direct(scope, replay, send, body):
            return
        await self.app(scope, replay, send)

    @staticmethod
    def _cors_headers(scope: Scope, origin: str) -> list[tuple[bytes, bytes]]:
        added = [(b"vary", b"Origin")]
        if scope.get("state", {}).get("cors_origin") == origin:
            added += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", _EXPOSED),
            ]
        return added

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, origin: str, headers: dict[bytes, str]
    ) -> None:
        assert self.cors_origins is not None
        allowed = origin in await self.cors_origins(scope)
        method = headers.get(b"access-control-request-method", "")
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


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, Message | None]:
    """The whole body and its first message; None for the body once it is over `limit`. A
    client that leaves midway leaves the body it sent (the app then sees its disconnect)."""
    chunks: list[bytes] = []
    received = 0
    first = None
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), first
        first = first or message
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            return None, first
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), first
