"""Webhook endpoints and messages as the API takes and gives them (SPEC §5)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from app.core.schemas import SLUG_PATTERN, Timestamp
from app.notifications.outbox import EVENT_TYPES

EventType = Annotated[StrictStr, Field(description="An event type, or `*` for all.")]
Source = Annotated[StrictStr, Field(pattern=SLUG_PATTERN, max_length=64)]
Url = Annotated[StrictStr, Field(min_length=1, max_length=2000)]


def _event_types(values: list[str]) -> list[str]:
    unknown = [v for v in values if v != "*" and v not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; one of {', '.join(EVENT_TYPES)}, *")
    return list(dict.fromkeys(values))


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url = Field(description="Where to POST events: https, reachable from the internet.")
    event_types: list[EventType] = Field(min_length=1, max_length=20)
    sources: list[Source] | None = Field(
        default=None, max_length=100, description="Only events about feedback from these sources."
    )
    description: Annotated[StrictStr, Field(max_length=500)] | None = None

    _check_types = field_validator("event_types")(_event_types)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=20)
    sources: list[Source] | None = Field(default=None, max_length=100)
    description: Annotated[StrictStr, Field(max_length=500)] | None = None
    enabled: StrictBool | None = None
    disabled_reason: Annotated[StrictStr, Field(max_length=500)] | None = None

    @field_validator("event_types")
    @classmethod
    def _check_types(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _event_types(values)


class EndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    event_types: list[str]
    sources: list[str] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    last_success_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointRead):
    secret: str = Field(
        description="The signing secret (`whsec_...`). Shown at creation and rotation only."
    )


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: Timestamp = Field(description="Requeue the failed messages created since this time.")


class RecoverOut(BaseModel):
    requeued: int


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    status_code: int | None
    duration_ms: int
    response_excerpt: str | None = Field(description="The start of the response, up to 2 KiB.")
    error: str | None


MessageStatus = Literal["pending", "delivered", "failed"]


class MessageRead(BaseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    endpoint_id: uuid.UUID
    event_type: str
    status: MessageStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_error: str | None
    case_id: uuid.UUID | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


class MessageDetail(MessageRead):
    payload: dict[str, object] = Field(description="The body sent, as JSON.")
    attempts: list[AttemptRead] = Field(description="Every attempt, oldest first.")


class NotificationRead(BaseModel):
    """A customer notification (case.resolved) and what became of it."""

    case_id: uuid.UUID
    case_number: str
    outcome: Literal["pending", "delivered", "failed", "not_sent"]
    reason: str | None = Field(description="Why it was not sent, when it was not.")
    message_id: uuid.UUID | None
    endpoint_id: uuid.UUID | None
    attempts: int
    at: datetime
