"""Shapes shared by every feature: pages of a list and their cursors, slugs."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StrictStr
from pydantic_core import PydanticCustomError

from app.core.errors import BadRequest

SLUG_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
LOCALE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
MAX_PAGE_SIZE = 200
# The `limit` of every list route (each route gives its own default).
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


@dataclass(frozen=True, slots=True)
class PageQuery:
    """A list route's page: `limit` (50 unless given) and `cursor`, a page's `next_cursor` passed
    back. Taken with Depends() after the route's filters (themselves a dependency), so they stay
    its last parameters. A route with parameters of its own declares limit and cursor among them:
    FastAPI validates a dependency's first, and a 422 would list their errors first."""

    limit: PageLimit = 50
    cursor: str | None = None


PageDep = Annotated[PageQuery, Depends()]

# A pragmatic address check: one @, no spaces, a dotted domain. (email-validator's full check
# cost a tenth of an ingest request's time, and a mailer verifies deliverability anyway.)
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f.]+(\.[^@\s\x00-\x1f.]+)+$")


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _written_as_a_date(value: Any) -> Any:
    """Pydantic would also read a number, or a string of one, as Unix time; the contract says an
    ISO 8601 date-time, and a number there is a mistake more often than a time."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise PydanticCustomError("datetime_format", "a date and time, e.g. 2026-12-07T10:00:00Z")
    return value


def _held_in_utc(value: datetime) -> datetime:
    """A time whose offset takes it before year 1 or past year 9999 in UTC
    (`0001-01-01T00:00:00+03:00`) is no time PostgreSQL or Python holds: refused here, not a 500
    where it is converted."""
    try:
        if value.tzinfo is not None:
            value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range", "a date and time between the years 1 and 9999 in UTC"
        ) from None
    return value


Timestamp = Annotated[datetime, BeforeValidator(_written_as_a_date), AfterValidator(_held_in_utc)]

# The query parameters the list routes share: a time range of the rows, and a customer.
RangeFrom = Annotated[Timestamp | None, Query(description="Inclusive.")]
RangeTo = Annotated[Timestamp | None, Query(description="Exclusive.")]
CustomerQuery = Annotated[
    str | None, Query(description="The customer's external id, e-mail or phone.")
]

# The text fields every room takes: a name, an id someone else made, an assignee; a tag.
ShortText = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Tag = Annotated[StrictStr, Field(min_length=1, max_length=100)]


def email_address(value: str) -> str:
    if len(value) > 320 or not _EMAIL.match(value):
        raise PydanticCustomError("email_invalid", "an e-mail address is name@domain.tld")
    return value


_PHONE = re.compile(r"^\+?[0-9][0-9 ().\-]{4,30}$")


def phone_number(value: str) -> str:
    if not _PHONE.match(value) or sum(c.isdigit() for c in value) < 5:
        raise PydanticCustomError(
            "phone_invalid", "a phone number is digits, spaces and ()+.- (e.g. +351 912 345 678)"
        )
    return value


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


def json_bytes(document: Any) -> bytes:
    """JSON for an answer built by hand: UUIDs as strings, times as RFC 3339 in UTC."""
    return orjson.dumps(document, default=_uuid_text, option=orjson.OPT_UTC_Z)


def _uuid_text(value: Any) -> str:
    # asyncpg's UUIDs subclass uuid.UUID, which orjson only knows exactly.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The values an `encode_cursor` packed; a cursor that is not one is a 400 problem."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != arity:
        raise invalid_cursor()
    return values


def invalid_cursor() -> BadRequest:
    return BadRequest("The cursor is not valid; start again without it.", code="invalid_cursor")


def cursor_time(value: Any) -> datetime:
    """A time packed in a cursor; anything else makes the cursor invalid."""
    if not isinstance(value, str):
        raise invalid_cursor()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid_cursor() from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cursor_id(value: Any) -> uuid.UUID:
    """An id packed in a cursor; anything else makes the cursor invalid."""
    if not isinstance(value, str):
        raise invalid_cursor()
    try:
        return uuid.UUID(value)
    except ValueError:
        raise invalid_cursor() from None
