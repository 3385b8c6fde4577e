"""API key management: create (the key is shown once), list, revoke."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Admin, ApiKey, KeyCache, Scope, hash_key, new_key
from app.core.db import SessionDep, get_or_404, utcnow
from app.core.errors import NotFound
from app.core.routes import answers, creates
from app.core.schemas import SLUG_PATTERN, Page

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def _origin(value: str) -> str:
    if not _ORIGIN.match(value):
        raise ValueError("an origin is scheme://host[:port], e.g. https://shop.example.com")
    return value.lower()


Origin = Annotated[str, AfterValidator(_origin)]
Source = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=6)
    # An empty list is refused, not read as "no limit": it would open every source (or make a
    # key meant for a web page a trusted one) to an admin who meant to allow none.
    allowed_sources: list[Source] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Only these sources may be ingested with it (leave it out for any source).",
    )
    allowed_origins: list[Origin] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Browser origins allowed to ingest with it (CORS); for keys in web pages. "
        "A key with origins is publishable.",
    )
    publishable: StrictBool = Field(
        default=False,
        description="For a key that lives where strangers can read it (a web page, a mobile "
        "app): it may only send feedback, a replay answers it only the id, and the customer "
        "identity it sends is unverified unless signed with the source's identity secret.",
    )

    @model_validator(mode="after")
    def _publishable_keys_only_ingest(self) -> ApiKeyCreate:
        if (self.publishable or self.allowed_origins) and set(self.scopes) != {
            Scope.FEEDBACK_WRITE
        }:
            raise PydanticCustomError(
                "publishable_scopes",
                "a publishable key (one with allowed_origins, or publishable: true) may only "
                "have the scope feedback:write",
            )
        return self


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the key, to tell keys apart.")
    scopes: list[str]
    allowed_sources: list[str] | None
    allowed_origins: list[str] | None
    publishable: bool = Field(description="It lives in strangers' hands: it may only ingest.")
    created_at: datetime
    revoked_at: datetime | None

    @field_validator("publishable", mode="before")
    @classmethod
    def _with_origins(cls, value: bool, info: ValidationInfo) -> bool:
        return bool(value or info.data.get("allowed_origins"))


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself. It is shown this once and cannot be recovered.")


async def create_api_key(session: AsyncSession, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    key = new_key()
    row = ApiKey(
        name=data.name,
        prefix=key[:10],
        key_hash=hash_key(key),
        scopes=sorted({s.value for s in data.scopes}),
        allowed_sources=sorted(set(data.allowed_sources)) if data.allowed_sources else None,
        allowed_origins=sorted(set(data.allowed_origins)) if data.allowed_origins else None,
        publishable=data.publishable or bool(data.allowed_origins),
    )
    session.add(row)
    await session.flush()
    return row, key


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    missing = NotFound("No API key has this id.", code="api_key_not_found")
    row = await get_or_404(session, ApiKey, key_id, missing, with_for_update=True)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])


@router.post("", **creates(ApiKeyCreated, 422))
async def create_key(data: ApiKeyCreate, session: SessionDep, _: Admin) -> ApiKeyCreated:
    """Create an API key. The key is in `key`, shown this once; only its hash is stored."""
    row, key = await create_api_key(session, data)
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(row).model_dump(), "key": key})


@router.get("", **answers(Page[ApiKeyRead]))
async def list_keys(session: SessionDep, _: Admin) -> Page[ApiKeyRead]:
    """List the API keys, newest first, revoked ones too. The keys themselves are never shown."""
    rows = await session.scalars(
        select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    return Page(items=[ApiKeyRead.model_validate(r) for r in rows], next_cursor=None)


@router.delete("/{key_id}", **answers(ApiKeyRead, 404))
async def revoke_key(
    key_id: uuid.UUID, request: Request, session: SessionDep, _: Admin
) -> ApiKeyRead:
    """Revoke an API key: from now on it is answered 401 (within a second on every replica)."""
    row = await revoke_api_key(session, key_id)
    cache: KeyCache = request.app.state.key_cache
    cache.forget_all()
    return ApiKeyRead.model_validate(row)
