"""What follows from a feedback body alone: the row it is stored as, before routing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from app.cases.identity import normalize_phone
from app.core.auth import Principal
from app.core.config import Settings
from app.core.db import uuid7
from app.core.errors import Forbidden
from app.feedback.classify import categorize, read_comment, sentiment_of
from app.feedback.redact import redact_personal_data
from app.feedback.schemas import FeedbackCreate
from app.routing.conditions import Item

_NOT_CANONICAL = {"attributes"}


def content_hash(payload: FeedbackCreate) -> str:
    """SHA-256 of what an item says, to tell a replay (same content) from a conflict.

    pydantic writes fields in a fixed order; attributes are a map, so their keys are sorted.
    (The serializer is called directly: model_dump_json's wrapper cost a quarter of it, on
    every ingest; the bytes are the same.)
    """
    serializer = type(payload).__pydantic_serializer__
    canonical = serializer.to_json(payload, exclude=_NOT_CANONICAL) + orjson.dumps(
        payload.attributes, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


def check_source(principal: Principal, source: str) -> None:
    if principal.allowed_sources is not None and source not in principal.allowed_sources:
        raise Forbidden(
            f"This API key may not send feedback for the source `{source}`.",
            code="source_denied",
        )


def derive(payload: FeedbackCreate, settings: Settings, now: datetime) -> dict[str, Any]:
    """The stored columns that follow from a payload alone: what it says and what it means."""
    if payload.metric is not None and payload.score is not None:
        category = categorize(payload.metric, payload.score, settings)
        sentiment = sentiment_of(category).value
        category_value: str | None = category.value
        cues: list[str] = []
    else:
        category_value = None
        reading = read_comment(payload.comment or "")
        sentiment, cues = reading.sentiment.value, reading.cues
    comment = payload.comment
    if comment is not None and settings.redact_comments:
        comment = redact_personal_data(comment)
    customer = payload.customer
    return {
        "id": uuid7(),
        "source": payload.source,
        "channel": payload.channel.value,
        "external_id": payload.external_id,
        "customer_external_id": customer.external_id if customer else None,
        "customer_email": customer.email.lower() if customer and customer.email else None,
        "customer_phone": normalize_phone(customer.phone) if customer and customer.phone else None,
        "customer_name": customer.name if customer else None,
        "customer_locale": customer.locale if customer else None,
        "contact_consent": customer.contact_consent if customer else True,
        "customer_verified": True,
        "metric": payload.metric.value if payload.metric else None,
        "score": payload.score,
        "comment": comment,
        "tags": payload.tags,
        "touchpoint": payload.touchpoint,
        "journey_stage": payload.journey_stage.value if payload.journey_stage else None,
        "attributes": payload.attributes,
        "category": category_value,
        "sentiment": sentiment,
        "sentiment_cues": cues,
        "routing_rule_id": None,
        "routing_rule_version": None,
        "routing_team": None,
        "submitted_at": payload.submitted_at or now,
        "received_at": now,
    }


def new_row(
    payload: FeedbackCreate,
    principal: Principal,
    idempotency_key: str | None,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    """The row a key's item is stored as: derived, with who sent it and its content hash."""
    row = derive(payload, settings, now)
    row["api_key_id"] = principal.key_id
    row["idempotency_key"] = idempotency_key
    row["request_hash"] = content_hash(payload)
    return row


def routing_item(row: Mapping[str, Any] | asyncpg.Record) -> Item:
    """A feedback row (stored column names) as the fields rules name."""
    attributes = row["attributes"]
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    item = {
        "source": row["source"],
        "channel": row["channel"],
        "external_id": row["external_id"],
        "metric": row["metric"],
        "score": row["score"],
        "category": row["category"],
        "sentiment": row["sentiment"],
        "comment": row["comment"],
        "tags": row["tags"],
        "touchpoint": row["touchpoint"],
        "journey_stage": row["journey_stage"],
        "submitted_at": row["submitted_at"],
        "customer.external_id": row["customer_external_id"],
        "customer.email": row["customer_email"],
        "customer.phone": row["customer_phone"],
        "customer.name": row["customer_name"],
        "customer.locale": row["customer_locale"],
        "customer.contact_consent": row["contact_consent"],
    }
    for key, value in (attributes or {}).items():
        item[f"attributes.{key}"] = value
    return item
