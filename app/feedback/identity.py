"""Verified customer identities (SPEC §7 "Trust").

Feedback sent with a publishable key comes from a web page or an app anyone can copy the key
from, so the customer it names is only a claim, unless it carries `customer.signature`: the hex
HMAC-SHA256 of the customer's external id under the source's identity secret, which only the
company's own servers know (the pattern of Intercom's identity verification). A claimed identity
is stored and shown as `verified: false`; it never joins an existing case, never changes any
contact or consent, and never links identities. Feedback from a trusted key is verified.

Each process keeps the opened secrets for a second, as it does API keys: a rotation reaches every
replica within that second, and a signed item costs no query when the cache is warm.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import SecretBox
from app.core.db import session_sql, utcnow
from app.core.errors import FieldError, ValidationFailed
from app.feedback.models import SourceIdentitySecret
from app.feedback.schemas import Customer

IDENTITY_CACHE_SECONDS = 1.0
_SECRETS = (
    "SELECT secret, previous_secret, previous_secret_expires_at "
    "FROM source_identity_secret WHERE source = $1"
)


def new_identity_secret() -> str:
    return secrets.token_hex(32)


def identity_signature(secret: str, external_id: str) -> str:
    """What a company's server puts in `customer.signature` for this customer."""
    return hmac.new(secret.encode(), external_id.encode(), hashlib.sha256).hexdigest()


def _signature_problem(message: str, type_: str) -> ValidationFailed:
    return ValidationFailed(
        "The customer's signature cannot be checked.",
        errors=[FieldError(field="customer.signature", message=message, type=type_)],
    )


@dataclass
class IdentitySecrets:
    """This process's view of the sources' identity secrets (opened), for a second at a time."""

    box: SecretBox
    entries: dict[str, tuple[float, tuple[str, ...]]] = field(default_factory=dict)

    async def secrets_of(
        self, conn: asyncpg.Connection | AsyncSession, source: str
    ) -> tuple[str, ...]:
        """The secrets that verify a signature for this source now: the current one, and the
        previous one while its grace period lasts."""
        now = time.monotonic()
        cached = self.entries.get(source)
        if cached is not None and now - cached[0] < IDENTITY_CACHE_SECONDS:
            return cached[1]
        if isinstance(conn, AsyncSession):  # a follow-up, which runs in a session
            row: Any = (await session_sql(conn, _SECRETS, source)).mappings().first()
        else:
            row = await conn.fetchrow(_SECRETS, source)
        found: tuple[str, ...] = ()
        if row is not None:
            found = (self.box.open(row["secret"]),)
            expires = row["previous_secret_expires_at"]
            if row["previous_secret"] is not None and expires is not None and expires > utcnow():
                found += (self.box.open(row["previous_secret"]),)
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[source] = (now, found)
        return found

    async def verified(
        self,
        conn: asyncpg.Connection | AsyncSession,
        principal: Principal,
        source: str,
        customer: Customer | None,
    ) -> bool:
        """Whether the identity an item names is verified; a signature that does not hold is a
        422, so a page with a stale secret is told rather than quietly downgraded."""
        signature = customer.signature if customer is not None else None
        if signature is None:
            return not principal.publishable
        assert customer is not None
        if customer.external_id is None:
            raise _signature_problem(
                "a signature signs `customer.external_id`: send it too", "signature_without_id"
            )
        known = await self.secrets_of(conn, source)
        if not known:
            raise _signature_problem(
                f"the source `{source}` has no identity secret; an admin makes one with "
                f"POST /v1/sources/{source}/identity-secret",
                "no_identity_secret",
            )
        expected = [identity_signature(secret, customer.external_id) for secret in known]
        if not any(hmac.compare_digest(e, signature.lower()) for e in expected):
            raise _signature_problem(
                "not the HMAC-SHA256 of `customer.external_id` under the source's identity secret",
                "signature_mismatch",
            )
        return True

    def forget(self, source: str) -> None:
        self.entries.pop(source, None)


async def rotate_identity_secret(
    session: AsyncSession, source: str, *, actor: str, box: SecretBox, grace: timedelta
) -> tuple[SourceIdentitySecret, str]:
    """A new identity secret for the source (the first, or one that replaces the current, which
    keeps verifying for `grace`); answers the row and the secret in clear, shown this once."""
    secret = new_identity_secret()
    row = await session.get(SourceIdentitySecret, source, with_for_update=True)
    now: datetime = utcnow()
    if row is None:
        row = SourceIdentitySecret(source=source, secret=box.seal(secret), created_by=actor)
        session.add(row)
    else:
        row.previous_secret = row.secret
        row.previous_secret_expires_at = now + grace
        row.secret = box.seal(secret)
        row.created_by = actor
        row.created_at = now
    await session.flush()
    return row, secret
