"""API keys: the table, hashing, the per-process key cache and the scope and rate dependency.

Keys are random, so a plain SHA-256 is enough to store them: nothing can be guessed from it, and
checking costs microseconds on every request. A process caches what a key may do for one second,
which bounds how long a revoked key keeps working elsewhere; the process that revokes forgets it
at once.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Boolean, DateTime, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Database, utcnow, uuid7
from app.core.errors import Forbidden, TooManyRequests, Unauthorized
from app.core.ratelimit import RateLimiter

KEY_PREFIX = "cl_"
KEY_CACHE_SECONDS = 1.0


class Scope(StrEnum):
    FEEDBACK_WRITE = "feedback:write"
    FEEDBACK_READ = "feedback:read"
    CASES_READ = "cases:read"
    CASES_WRITE = "cases:write"
    REPORTS_READ = "reports:read"
    ADMIN = "admin"


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(Text)
    # The first characters of the key, kept so people can tell their keys apart.
    prefix: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    allowed_sources: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    allowed_origins: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # A key meant for a web page or an app in strangers' hands (so are keys with origins).
    publishable: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, name and what it may do."""

    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    allowed_sources: frozenset[str] | None
    allowed_origins: frozenset[str] | None
    # In strangers' hands (SPEC §7 "Trust"): it may only ingest, reads back nothing, and the
    # identity it sends is a claim unless signed.
    publishable: bool = False

    def has(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    @property
    def ingest_only(self) -> bool:
        return self.scopes == {Scope.FEEDBACK_WRITE}


@dataclass
class KeyCache:
    entries: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)
    origins: tuple[float, frozenset[str]] | None = None

    async def lookup(self, database: Database, key_hash: str) -> Principal | None:
        now = time.monotonic()
        cached = self.entries.get(key_hash)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        async with database.raw() as conn:
            row = await conn.fetchrow(
                "SELECT id, name, scopes, allowed_sources, allowed_origins, publishable "
                "FROM api_key WHERE key_hash = $1 AND revoked_at IS NULL",
                key_hash,
            )
        principal = None
        if row is not None:
            publishable = row["publishable"] or bool(row["allowed_origins"])
            scopes = frozenset(row["scopes"])
            principal = Principal(
                key_id=row["id"],
                name=row["name"],
                # Keys are made so, but a publishable key never holds more, whatever its row says.
                scopes=scopes & {Scope.FEEDBACK_WRITE} if publishable else scopes,
                allowed_sources=_optional_set(row["allowed_sources"]),
                allowed_origins=_optional_set(row["allowed_origins"]),
                publishable=publishable,
            )
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[key_hash] = (now, principal)
        return principal

    async def browser_origins(self, database: Database) -> frozenset[str]:
        """Every origin some live ingest key allows: what a CORS preflight may be told yes to."""
        now = time.monotonic()
        if self.origins is not None and now - self.origins[0] < KEY_CACHE_SECONDS:
            return self.origins[1]
        async with database.raw() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT unnest(allowed_origins) AS origin FROM api_key "
                "WHERE revoked_at IS NULL AND scopes && $1::text[]",
                [Scope.FEEDBACK_WRITE.value, Scope.ADMIN.value],
            )
        origins = frozenset(row["origin"] for row in rows)
        self.origins = (now, origins)
        return origins

    def forget_all(self) -> None:
        self.entries.clear()
        self.origins = None


def _optional_set(values: list[str] | None) -> frozenset[str] | None:
    return frozenset(values) if values else None


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Send the API key as `Authorization: Bearer <key>`.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the API key as `Authorization: Bearer <key>`.")
    return token.strip()


async def authenticate(request: Request) -> Principal:
    token = _bearer(request)
    cache: KeyCache = request.app.state.key_cache
    principal = await cache.lookup(request.app.state.database, hash_key(token))
    if principal is None:
        raise Unauthorized("The API key is unknown or revoked.", code="invalid_api_key")
    return principal


def require(scope: Scope, *, items_counted_by_route: bool = False) -> Any:
    """A dependency that lets a request through when its key holds `scope` (or admin) and is
    within its rate limit. With `items_counted_by_route`, the route counts an ingest-only key's
    items itself once it has parsed them (`count_items`)."""

    async def dependency(request: Request) -> Principal:
        return await authorize(request, scope, items_counted_by_route=items_counted_by_route)

    return Depends(dependency)


async def authorize(
    request: Request, scope: Scope, *, items_counted_by_route: bool = False
) -> Principal:
    """The request's key, when it holds `scope` (or admin) and is within its rate limit; else
    the 401, 403 or 429 to answer. What `require` makes a dependency of."""
    principal = await authenticate(request)
    if not principal.has(scope):
        raise Forbidden(f"This API key lacks the scope `{scope}`.", code="insufficient_scope")
    if scope is Scope.FEEDBACK_WRITE:
        _check_origin(request, principal)
    if not (items_counted_by_route and principal.ingest_only):
        count_items(request, principal, 1)
    return principal


def _check_origin(request: Request, principal: Principal) -> None:
    """Keys that ingest may live in a web page: only their own origins may use them."""
    origin = request.headers.get("origin")
    if origin is not None and principal.allowed_origins is not None:
        if origin not in principal.allowed_origins:
            raise Forbidden("This API key may not be used from this origin.", code="origin_denied")
        # Read by the CORS middleware, which adds the Access-Control headers to the answer.
        request.state.cors_origin = origin


def count_items(request: Request, principal: Principal, items: int) -> None:
    """Count a request against its key's rate limit, or answer 429.

    An ingest-only key counts items (a batch of 1,000 uses 1,000) per client address; any other
    key counts requests, per key.
    """
    limiter: RateLimiter = request.app.state.rate_limiter
    if principal.ingest_only:
        limit = limiter.ingest_per_minute
        wait = limiter.take((principal.key_id, limiter.client_address(request)), items, limit)
    else:
        limit = limiter.per_minute
        wait = limiter.take((principal.key_id, ""), items, limit)
    if wait is None:
        return
    per = "items a minute from one address" if principal.ingest_only else "requests a minute"
    if items > limit:
        detail = f"This key may send {limit} {per}: send these {items} in smaller batches."
    else:
        detail = f"This key may send {limit} {per}; retry after `Retry-After` seconds."
    raise TooManyRequests(detail, headers={"Retry-After": str(max(1, math.ceil(wait)))})


FeedbackWriter = Annotated[Principal, require(Scope.FEEDBACK_WRITE)]
FeedbackBatchWriter = Annotated[
    Principal, require(Scope.FEEDBACK_WRITE, items_counted_by_route=True)
]
FeedbackReader = Annotated[Principal, require(Scope.FEEDBACK_READ)]
CasesReader = Annotated[Principal, require(Scope.CASES_READ)]
CasesWriter = Annotated[Principal, require(Scope.CASES_WRITE)]
ReportsReader = Annotated[Principal, require(Scope.REPORTS_READ)]
Admin = Annotated[Principal, require(Scope.ADMIN)]
