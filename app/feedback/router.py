"""HTTP for feedback: ingest one, ingest a batch, replace one, read one, list; and the
sources' identity secrets. (Routing rules tried on feedback: app/feedback/trials.py.)"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import ValidationError

from app.core.auth import Admin, FeedbackBatchWriter, FeedbackReader, FeedbackWriter, count_items
from app.core.config import Settings
from app.core.crypto import secret_box
from app.core.db import RawDep, SessionDep, session_transaction
from app.core.errors import FieldError, Forbidden, ValidationFailed, validation_problem
from app.core.routes import answers, creates, keyed_errors
from app.core.schemas import SLUG_PATTERN, Page, PageDep, json_bytes
from app.feedback import schemas
from app.feedback.batch import ingest_batch
from app.feedback.identity import IdentitySecrets, rotate_identity_secret
from app.feedback.ingest import ingest_feedback, ingest_followup
from app.feedback.ingest import put_feedback as put_feedback_item
from app.feedback.reads import get_feedback as read_one
from app.feedback.reads import list_feedback as read_page

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])
sources = APIRouter(prefix="/v1/sources", tags=["sources"])

SourcePath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]
ExternalIdPath = Annotated[str, Path(min_length=1, max_length=200)]

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


def _identities(request: Request) -> IdentitySecrets:
    identities: IdentitySecrets = request.app.state.identities
    return identities


def _json(document: bytes, status_code: int, **headers: str) -> Response:
    return Response(
        document, status_code=status_code, media_type="application/json", headers=headers or None
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.FeedbackRead,
    responses={
        200: {
            "model": schemas.FeedbackRead | schemas.FeedbackReplayed,
            "description": "A replay: the item sent earlier, or only its id to a key that may "
            "not read it back (a publishable key, or one that neither stored it nor has "
            "feedback:read).",
        },
        **keyed_errors(400, 409, 413, 415, 422, 429),
    },
    openapi_extra=_IDEMPOTENCY_KEY_DOC,
)
async def create_feedback(
    payload: schemas.FeedbackCreate,
    request: Request,
    principal: FeedbackWriter,
) -> Response:
    """Send one piece of feedback: a score, a comment, or both.

    Sending the same content again under the same `(source, external_id)` or `Idempotency-Key`
    answers 200 with `Idempotent-Replayed: true` (and the item, to a trusted key that stored it
    or may read feedback; else only its id). Other content under the same `(source,
    external_id)` is a 409 `conflict` naming the existing item (change it with PUT); the same
    Idempotency-Key with another body is a 409 `idempotency_key_reused`.
    """
    if payload.in_reply_to is not None:
        # A session of its own, committed before the answer as get_session would: not a
        # dependency of every ingest, which would hold a test's one connection while the
        # item waits for its group.
        async with session_transaction(request.app.state.database) as session:
            result = await ingest_followup(
                session,
                payload,
                principal=principal,
                idempotency_key=_idempotency_key(request),
                settings=_settings(request),
                identities=_identities(request),
            )
    else:
        # Written by the process's group commit, in its own transaction (app/feedback/group.py).
        result = await ingest_feedback(
            payload,
            principal=principal,
            idempotency_key=_idempotency_key(request),
            settings=_settings(request),
            groups=request.app.state.ingest_groups,
        )
    document = json_bytes(result.feedback)
    if result.created:
        return _json(document, status.HTTP_201_CREATED)
    return _json(document, status.HTTP_200_OK, **{"Idempotent-Replayed": "true"})


@router.post("/batch", **answers(schemas.BatchOut, 400, 413, 415, 422, 429))
async def create_feedback_batch(
    batch: schemas.BatchIn, request: Request, principal: FeedbackBatchWriter, raw: RawDep
) -> Response:
    """Send up to 1,000 items at once. Each is answered on its own, in order: `created`,
    `replayed` (its `(source, external_id)` was seen before, with the same content) or `error`
    with its problem (a 409 `conflict` for other content under a `(source, external_id)` seen
    before). Valid items are stored even when others fail. For a key that can only ingest,
    every item counts against the rate limit."""
    if principal.ingest_only:
        count_items(request, principal, len(batch.items))
    results = await ingest_batch(
        raw,
        batch.items,
        principal=principal,
        settings=_settings(request),
        routing=request.app.state.routing,
        identities=_identities(request),
    )
    return _json(schemas.BatchOut(results=results).model_dump_json(exclude_none=True).encode(), 200)


@router.put(
    "/{source}/{external_id:path}",
    response_model=schemas.FeedbackRead,
    responses={
        201: {
            "model": schemas.FeedbackRead,
            "description": "There was no such item: it is stored.",
        },
        **keyed_errors(400, 404, 413, 415, 422, 429),
    },
)
async def put_feedback(
    source: SourcePath,
    external_id: ExternalIdPath,
    content: schemas.FeedbackContent,
    request: Request,
    principal: FeedbackWriter,
    raw: RawDep,
) -> Response:
    """Store or replace the item `(source, external_id)`: its score, comment, tags,
    attributes, touchpoint, journey stage and customer, with category, sentiment and routing
    derived again. A change that makes it negative opens or joins a case; a change to an item
    on a case shows on the case's timeline (`feedback_updated`) and leaves the case open.

    Only for trusted keys (a publishable key is refused), and only the key that stored the item
    or an admin may replace it: to any other key it does not exist (404).
    """
    if principal.publishable:
        raise Forbidden(
            "A publishable key may only add feedback; replace it from your server.",
            code="publishable_key",
        )
    try:
        payload = schemas.FeedbackCreate.model_validate(
            {**content.model_dump(exclude_unset=True), "source": source, "external_id": external_id}
        )
    except ValidationError as exc:
        raise validation_problem(exc) from None
    result = await put_feedback_item(
        raw,
        payload,
        principal=principal,
        settings=_settings(request),
        routing=request.app.state.routing,
    )
    return _json(json_bytes(result.feedback), 201 if result.created else 200)


@router.get("/{feedback_id}", **answers(schemas.FeedbackRead, 404, 422))
async def get_feedback(feedback_id: uuid.UUID, principal: FeedbackReader, raw: RawDep) -> Response:
    """Read one item, with what was derived from it."""
    document = await read_one(await raw.connection(), feedback_id, principal)
    return _json(json_bytes(document), 200)


@router.get("", **answers(Page[schemas.FeedbackRead], 400, 422))
async def list_feedback(
    principal: FeedbackReader,
    raw: RawDep,
    filters: Annotated[schemas.FeedbackFilter, Depends()],
    page: PageDep,
) -> Response:
    """List feedback, newest submitted first, a page at a time (of the sources the key may
    read, when it is limited to some)."""
    items, next_cursor = await read_page(
        await raw.connection(), filters, principal=principal, limit=page.limit, cursor=page.cursor
    )
    return _json(json_bytes({"items": items, "next_cursor": next_cursor}), 200)


@sources.post("/{source}/identity-secret", **creates(schemas.IdentitySecretCreated, 422))
async def create_identity_secret(
    source: SourcePath, request: Request, session: SessionDep, principal: Admin
) -> schemas.IdentitySecretCreated:
    """Make the source's identity secret, or a new one (the previous one keeps verifying for
    FEEDBACK_IDENTITY_SECRET_GRACE_HOURS). Shown this once; keep it on your servers.

    Your server signs each customer it puts in a page: `customer.signature` = hex
    HMAC-SHA256(secret, customer.external_id). Feedback sent with a publishable key carries a
    verified identity only with it."""
    settings = _settings(request)
    row, secret = await rotate_identity_secret(
        session,
        source,
        actor=principal.name,
        box=secret_box(settings.secret_key),
        grace=timedelta(hours=settings.identity_secret_grace_hours),
    )
    _identities(request).forget(source)
    return schemas.IdentitySecretCreated(
        source=row.source,
        secret=secret,
        created_at=row.created_at,
        previous_expires_at=row.previous_secret_expires_at,
    )
