"""HTTP for webhook endpoints and their messages."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Request, Response

from app.core.auth import Admin
from app.core.crypto import SecretBox, secret_box
from app.core.db import SessionDep
from app.core.routes import answers, creates, empties
from app.core.schemas import Page, PageLimit
from app.notifications import service
from app.notifications.addresses import AddressPolicy, Resolver
from app.notifications.models import WebhookEndpoint
from app.notifications.schemas import (
    EndpointCreate,
    EndpointRead,
    EndpointUpdate,
    EndpointWithSecret,
    MessageDetail,
    MessageRead,
    MessageStatus,
    RecoverIn,
    RecoverOut,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _resolver(request: Request) -> Resolver:
    settings = request.app.state.settings
    return Resolver(
        AddressPolicy.from_settings(settings.webhook_allow_http, settings.webhook_allowed_networks)
    )


def _box(request: Request) -> SecretBox:
    return secret_box(request.app.state.settings.secret_key)


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecret:
    return EndpointWithSecret(**EndpointRead.model_validate(endpoint).model_dump(), secret=secret)


@router.post("/endpoints", **creates(EndpointWithSecret, 422))
async def create_endpoint(
    data: EndpointCreate, request: Request, session: SessionDep, _: Admin
) -> EndpointWithSecret:
    """Register an endpoint. Its signing secret is in `secret`, shown now and at rotation only.
    The URL must be https and reach a public address (checked now and at every delivery)."""
    endpoint, secret = await service.create_endpoint(
        session, data, _resolver(request), _box(request)
    )
    return _with_secret(endpoint, secret)


@router.get("/endpoints", **answers(Page[EndpointRead]))
async def list_endpoints(session: SessionDep, _: Admin) -> Page[EndpointRead]:
    """Every endpoint, oldest first (secrets are not shown)."""
    rows = await service.list_endpoints(session)
    return Page(items=[EndpointRead.model_validate(e) for e in rows], next_cursor=None)


@router.get("/endpoints/{endpoint_id}", **answers(EndpointRead, 404))
async def get_endpoint(endpoint_id: uuid.UUID, session: SessionDep, _: Admin) -> EndpointRead:
    """One endpoint, with whether it is enabled and why not."""
    return EndpointRead.model_validate(await service.get_endpoint(session, endpoint_id))


@router.patch("/endpoints/{endpoint_id}", **answers(EndpointRead, 404, 422))
async def update_endpoint(
    endpoint_id: uuid.UUID, data: EndpointUpdate, request: Request, session: SessionDep, _: Admin
) -> EndpointRead:
    """Change an endpoint, or disable and enable it (`enabled`, `disabled_reason`)."""
    endpoint = await service.update_endpoint(
        session, endpoint_id, data, _resolver(request), _box(request)
    )
    return EndpointRead.model_validate(endpoint)


@router.delete("/endpoints/{endpoint_id}", **empties(404))
async def delete_endpoint(endpoint_id: uuid.UUID, session: SessionDep, _: Admin) -> Response:
    """Delete an endpoint and its messages."""
    await service.delete_endpoint(session, endpoint_id)
    return Response(status_code=204)


@router.post("/endpoints/{endpoint_id}/rotate-secret", **answers(EndpointWithSecret, 404))
async def rotate_endpoint_secret(
    endpoint_id: uuid.UUID, request: Request, session: SessionDep, _: Admin
) -> EndpointWithSecret:
    """A new signing secret. The old one keeps signing beside it for the grace period
    (FEEDBACK_WEBHOOK_SECRET_GRACE_HOURS), so receivers can switch without losing messages."""
    grace = timedelta(hours=request.app.state.settings.webhook_secret_grace_hours)
    endpoint, secret = await service.rotate_secret(session, endpoint_id, grace, _box(request))
    return _with_secret(endpoint, secret)


@router.post("/endpoints/{endpoint_id}/recover", **answers(RecoverOut, 404, 422))
async def recover_endpoint(
    endpoint_id: uuid.UUID, data: RecoverIn, session: SessionDep, _: Admin
) -> RecoverOut:
    """Requeue the endpoint's failed messages created since `since`, to be sent again now."""
    return RecoverOut(requeued=await service.recover_endpoint(session, endpoint_id, data.since))


@router.get("/endpoints/{endpoint_id}/messages", **answers(Page[MessageRead], 400, 404, 422))
async def list_endpoint_messages(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    _: Admin,
    status: MessageStatus | None = None,
    limit: PageLimit = 50,
    cursor: str | None = None,
) -> Page[MessageRead]:
    """The endpoint's messages, newest first."""
    items, next_cursor = await service.list_messages(
        session, endpoint_id, status=status, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/messages/{message_id}", **answers(MessageDetail, 404))
async def get_message(message_id: uuid.UUID, session: SessionDep, _: Admin) -> MessageDetail:
    """One message: its body, its state, and every attempt to deliver it."""
    return await service.message_detail(session, await service.get_message(session, message_id))


@router.post("/messages/{message_id}/retry", **answers(MessageRead, 404))
async def retry_message(message_id: uuid.UUID, session: SessionDep, _: Admin) -> MessageRead:
    """Send a message again now, whatever became of it before."""
    return service.message_read(await service.retry_message(session, message_id))
