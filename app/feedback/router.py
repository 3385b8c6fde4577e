"""HTTP for feedback: ingest one, ingest a batch, read one, list."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.core.auth import FeedbackBatchWriter, FeedbackReader, FeedbackWriter, count_items
from app.core.config import Settings
from app.core.db import DatabaseDep
from app.core.errors import FieldError, ValidationFailed, problem_responses
from app.core.schemas import MAX_PAGE_SIZE, Page, json_bytes
from app.feedback import service
from app.feedback.schemas import (
    BatchIn,
    BatchOut,
    Category,
    Channel,
    FeedbackCreate,
    FeedbackRead,
    Metric,
    Sentiment,
)

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

# Read by hand rather than declared as a Header parameter: FastAPI's per-parameter validation
# cost 4% of an ingest request. The OpenAPI document still describes it.
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_IDEMPOTENCY_KEY_DOC = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Send the same key again to get the first answer back instead of "
            "a new item. Up to 255 printable ASCII characters; scoped to the API key.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ]
}


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None or _IDEMPOTENCY_KEY.match(value):
        return value
    raise ValidationFailed(
        "One or more fields are not valid.",
        errors=[
            FieldError(
                field="Idempotency-Key",
                message="1 to 255 printable ASCII characters",
                type="idempotency_key_invalid",
            )
        ],
    )


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _json(document: bytes, status_code: int, **headers: str) -> Response:
    return Response(
        document, status_code=status_code, media_type="application/json", headers=headers or None
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackRead,
    responses={
        200: {"model": FeedbackRead, "description": "A replay: the item sent earlier."},
        **problem_responses(400, 401, 403, 409, 413, 415, 422, 429),
    },
    openapi_extra=_IDEMPOTENCY_KEY_DOC,
)
async def create_feedback(
    payload: FeedbackCreate, request: Request, principal: FeedbackWriter
) -> Response:
    """Send one piece of feedback: a score, a comment, or both.

    Sending the same `(source, external_id)` or the same `Idempotency-Key` again answers 200 with
    the first item and `Idempotent-Replayed: true`; the same key with another body is a 409.
    """
    result = await service.ingest_feedback(
        request.app.state.database,
        payload,
        principal=principal,
        idempotency_key=_idempotency_key(request),
        settings=_settings(request),
        routing=request.app.state.routing,
    )
    document = json_bytes(result.feedback)
    if result.created:
        return _json(document, status.HTTP_201_CREATED)
    return _json(document, status.HTTP_200_OK, **{"Idempotent-Replayed": "true"})


@router.post(
    "/batch",
    response_model=BatchOut,
    responses=problem_responses(400, 401, 403, 413, 415, 422, 429),
)
async def create_feedback_batch(
    batch: BatchIn, request: Request, principal: FeedbackBatchWriter, database: DatabaseDep
) -> Response:
    """Send up to 1,000 items at once. Each is answered on its own, in order: `created`,
    `replayed` (its `(source, external_id)` was seen before) or `error` with its problem. Valid
    items are stored even when others fail. For a key that can only ingest, every item counts
    against the rate limit."""
    if principal.ingest_only:
        count_items(request, principal, len(batch.items))
    results = await service.ingest_batch(
        database,
        batch.items,
        principal=principal,
        settings=_settings(request),
        routing=request.app.state.routing,
    )
    return _json(BatchOut(results=results).model_dump_json(exclude_none=True).encode(), 200)


@router.get(
    "/{feedback_id}", response_model=FeedbackRead, responses=problem_responses(401, 403, 404, 422)
)
async def get_feedback(
    feedback_id: uuid.UUID, _: FeedbackReader, database: DatabaseDep
) -> Response:
    """Read one item, with what was derived from it."""
    return _json(json_bytes(await service.get_feedback(database, feedback_id)), 200)


@router.get("", response_model=Page[FeedbackRead], responses=problem_responses(400, 401, 403, 422))
async def list_feedback(
    _: FeedbackReader,
    database: DatabaseDep,
    source: str | None = None,
    channel: Channel | None = None,
    metric: Metric | None = None,
    category: Category | None = None,
    sentiment: Sentiment | None = None,
    customer: Annotated[
        str | None, Query(description="The customer's external id, e-mail or phone.")
    ] = None,
    submitted_from: Annotated[datetime | None, Query(description="Inclusive.")] = None,
    submitted_to: Annotated[datetime | None, Query(description="Exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: str | None = None,
) -> Response:
    """List feedback, newest submitted first, a page at a time."""
    filters = service.FeedbackFilter(
        source=source,
        channel=channel,
        metric=metric,
        category=category,
        sentiment=sentiment,
        customer=customer,
        submitted_from=submitted_from,
        submitted_to=submitted_to,
    )
    items, next_cursor = await service.list_feedback(database, filters, limit=limit, cursor=cursor)
    return _json(json_bytes({"items": items, "next_cursor": next_cursor}), 200)
