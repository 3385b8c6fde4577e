"""API keys: the table, hashing, the per-process key cache and the scope dependency.

Keys are random, so a plain SHA-256 is enough to store them: nothing can be guessed from it, and
checking costs microseconds on every request. A process caches what a key may do for one second,
which bounds how long a revoked key keeps working elsewhere; the process that revokes forgets it
at once.
"""

from __future__ import annotations

import hashlib
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


@dataclass
class RateLimiter:
    """A token bucket per (key, client address), in this process."""

    per_minute: int
    buckets: dict[tuple[uuid.UUID, str], tuple[float, float]] = field(default_factory=dict)

    def take(self, key_id: uuid.UUID, client: str) -> float | None:
        """Take one token; None when allowed, else the seconds until one is free."""
        if self.per_minute <= 0:
            return None
        now = time.monotonic()
        rate = self.per_minute / 60.0
        tokens, last = self.buckets.get((key_id, client), (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self.buckets[(key_id, client)] = (tokens, now)
            return (1.0 - tokens) / rate
        if len(self.buckets) > 100_000:
            self.buckets.clear()
        self.buckets[(key_id, client)] = (tokens - 1.0, now)
        return None


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


def require(scope: Scope) -> Any:
    """A dependency that lets a request through when its key holds `scope` (or admin)."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.has(scope):
            raise Forbidden(f"This API key lacks the scope `{scope}`.", code="insufficient_scope")
        if scope is Scope.FEEDBACK_WRITE:
            _check_browser_use(request, principal)
        return principal

    return Depends(dependency)


def _check_browser_use(request: Request, principal: Principal) -> None:
    """Origin and rate checks for keys that ingest, which may live in a web page."""
    origin = request.headers.get("origin")
    if origin is not None and principal.allowed_origins is not None:
        if origin not in principal.allowed_origins:
            raise Forbidden("This API key may not be used from this origin.", code="origin_denied")
        # Read by the CORS middleware, which adds the Access-Control headers to the answer.
        request.state.cors_origin = origin
    if principal.ingest_only:
        limiter: RateLimiter = request.app.state.rate_limiter
        client = request.client.host if request.client else "-"
        wait = limiter.take(principal.key_id, client)
        if wait is not None:
            raise TooManyRequests(
                "Too many requests for this key; retry later.",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )


FeedbackWriter = Annotated[Principal, require(Scope.FEEDBACK_WRITE)]
FeedbackReader = Annotated[Principal, require(Scope.FEEDBACK_READ)]
CasesReader = Annotated[Principal, require(Scope.CASES_READ)]
CasesWriter = Annotated[Principal, require(Scope.CASES_WRITE)]
ReportsReader = Annotated[Principal, require(Scope.REPORTS_READ)]
Admin = Annotated[Principal, require(Scope.ADMIN)]
