"""Connectors as the API takes and gives them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from app.connectors.mapping import ConnectorMapping
from app.connectors.signatures import Tool
from app.core.schemas import SLUG_PATTERN

Secret = Annotated[StrictStr, Field(min_length=8, max_length=500)]


class ConnectorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: Tool
    source: Annotated[StrictStr, Field(pattern=SLUG_PATTERN, max_length=64)] = Field(
        description="The source its feedback is stored under."
    )
    secret: Secret | None = Field(
        default=None,
        description="The tool's signing secret (Zendesk's, SurveyMonkey's `api_key&api_secret`) "
        "or the one you will give the tool. Without it one is made and shown once.",
    )
    mapping: ConnectorMapping = Field(default_factory=ConnectorMapping)


class ConnectorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: Secret | None = None
    mapping: ConnectorMapping | None = None


class ConnectorRead(BaseModel):
    id: uuid.UUID
    tool: Tool
    source: str
    url: str = Field(description="Where the tool must post.")
    mapping: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime


class ConnectorCreated(ConnectorRead):
    secret: str | None = Field(
        description="The secret made for this connector, shown this once (null when you gave one)."
    )


class Received(BaseModel):
    status: Literal["created", "replayed", "updated", "partial", "pending", "duplicate", "ignored"]
    response_id: str
    feedback: dict[str, Any] | None = Field(
        default=None, description="The item as stored, when the response is one."
    )
    note: str | None = None


class ConnectorResponseRead(BaseModel):
    response_id: str
    state: Literal["complete", "partial", "pending"]
    feedback_id: uuid.UUID | None
    note: str | None
    received_at: datetime
    updated_at: datetime


class ReplayFailure(BaseModel):
    response_id: str
    problem: dict[str, Any]


class ReplayOut(BaseModel):
    replayed: int = Field(description="Responses normalized again and stored through PUT.")
    failed: list[ReplayFailure]
