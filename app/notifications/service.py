"""Keeping webhook endpoints, and reading and replaying their messages."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import null, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import SEALED_PREFIX, SecretBox
from app.core.db import apply_patch, get_or_404, utcnow
from app.core.errors import FieldError, NotFound, ValidationFailed
from app.core.schemas import cursor_id, cursor_time, decode_cursor, encode_cursor
from app.notifications.addresses import AddressRefused, Resolver
from app.notifications.models import DeliveryAttempt, OutboxMessage, WebhookEndpoint
from app.notifications.schemas import (
    AttemptRead,
    EndpointCreate,
    EndpointUpdate,
    MessageDetail,
    MessageRead,
)
from app.notifications.signing import message_id, new_secret


async def check_url(resolver: Resolver, url: str) -> None:
    """422 when webhooks may not be sent to this URL (its form, scheme or addresses)."""
    try:
        await resolver.checked_address(url)
    except AddressRefused as exc:
        raise ValidationFailed(
            "This URL cannot receive webhooks.",
            errors=[FieldError(field="url", message=str(exc), type="url_refused")],
        ) from None


def _sealed(box: SecretBox, stored: str) -> str:
    """A stored secret as it is to be stored now: one kept in clear from before the key was
    set is sealed, a sealed one stays as it is."""
    return stored if stored.startswith(SEALED_PREFIX) else box.seal(stored)


async def create_endpoint(
    session: AsyncSession, data: EndpointCreate, resolver: Resolver, box: SecretBox
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint, and its secret in clear (stored sealed when a key is set)."""
    await check_url(resolver, data.url)
    secret = new_secret()
    # EndpointCreate holds exactly the row's own fields.
    endpoint = WebhookEndpoint(**data.model_dump(), enabled=True, secret=box.seal(secret))
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint:
    missing = NotFound("No webhook endpoint has this id.", code="endpoint_not_found")
    return await get_or_404(
        session, WebhookEndpoint, endpoint_id, missing, with_for_update=for_update
    )


async def list_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    return list(
        await session.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


async def update_endpoint(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    data: EndpointUpdate,
    resolver: Resolver,
    box: SecretBox,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    endpoint.secret = _sealed(box, endpoint.secret)
    if endpoint.previous_secret is not None:
        endpoint.previous_secret = _sealed(box, endpoint.previous_secret)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        await check_url(resolver, changes["url"])
    if changes.get("enabled") is True:
        # Enabled again: a fresh start, so the days-without-success clock starts over.
        changes.setdefault("disabled_reason", None)
        endpoint.failing_since = None
    elif changes.get("enabled") is False:
        changes.setdefault("disabled_reason", "disabled by an admin")
    apply_patch(endpoint, changes, clears=("sources", "description", "disabled_reason"))
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    await session.delete(await get_endpoint(session, endpoint_id))
    await session.flush()


async def rotate_secret(
    session: AsyncSession, endpoint_id: uuid.UUID, grace: timedelta, box: SecretBox
) -> tuple[WebhookEndpoint, str]:
    """The endpoint with a new secret, and that secret in clear; the old one signs beside it
    until `grace` has passed (then the dispatcher deletes it)."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    now = utcnow()
    secret = new_secret()
    endpoint.previous_secret = _sealed(box, endpoint.secret)
    endpoint.previous_secret_expires_at = now + grace
    endpoint.secret = box.seal(secret)
    endpoint.updated_at = now
    await session.flush()
    return endpoint, secret


def message_read(message: OutboxMessage) -> MessageRead:
    return MessageRead(
        id=message.id,
        webhook_id=message_id(message.id.hex),
        endpoint_id=message.endpoint_id,
        event_type=message.event_type,
        status=message.status,
        attempt_count=message.attempts,
        next_attempt_at=message.next_attempt_at if message.status == "pending" else None,
        last_error=message.last_error,
        case_id=message.case_id,
        created_at=message.created_at,
        delivered_at=message.delivered_at,
        failed_at=message.failed_at,
    )


async def list_messages(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[MessageRead], str | None]:
    """Newest first."""
    await get_endpoint(session, endpoint_id)
    query = select(OutboxMessage).where(OutboxMessage.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    if cursor is not None:
        at, last = decode_cursor(cursor, 2)
        query = query.where(
            tuple_(OutboxMessage.created_at, OutboxMessage.id)
            < tuple_(cursor_time(at), cursor_id(last))
        )
    query = query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    messages = list(await session.scalars(query.limit(limit + 1)))
    next_cursor = None
    if len(messages) > limit:
        last_message = messages[limit - 1]
        next_cursor = encode_cursor(last_message.created_at.isoformat(), str(last_message.id))
    return [message_read(m) for m in messages[:limit]], next_cursor


def _message_not_found() -> NotFound:
    return NotFound("No webhook message has this id.", code="message_not_found")


async def get_message(session: AsyncSession, message_uuid: uuid.UUID) -> OutboxMessage:
    return await get_or_404(session, OutboxMessage, message_uuid, _message_not_found())


async def message_detail(session: AsyncSession, message: OutboxMessage) -> MessageDetail:
    attempts = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.message_id == message.id)
        .order_by(DeliveryAttempt.at, DeliveryAttempt.id)
    )
    return MessageDetail(
        **message_read(message).model_dump(),
        payload=orjson.loads(message.body),
        attempts=[AttemptRead.model_validate(a) for a in attempts],
    )


async def retry_message(session: AsyncSession, message_uuid: uuid.UUID) -> OutboxMessage:
    """Send a message again now, delivered or failed before: a new round of the schedule."""
    message = await get_or_404(
        session, OutboxMessage, message_uuid, _message_not_found(), with_for_update=True
    )
    message.status = "pending"
    message.tries = 0
    message.next_attempt_at = utcnow()
    message.lease_token = None
    message.failed_at = None
    await session.flush()
    return message


async def recover_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, since: datetime) -> int:
    """Requeue the endpoint's failed messages created since `since`."""
    await get_endpoint(session, endpoint_id)
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.endpoint_id == endpoint_id,
            OutboxMessage.status == "failed",
            OutboxMessage.created_at >= since,
        )
        .values(
            status="pending", tries=0, next_attempt_at=utcnow(), lease_token=None, failed_at=None
        )
        .returning(OutboxMessage.id)
    )
    return len(result.all())


async def customer_notifications(
    session: AsyncSession, case_ids: list[uuid.UUID]
) -> list[dict[str, Any]]:
    """The messages that were to tell these cases' customers the outcome (case.resolved), and
    what became of each, as NotificationRead shows them but for the case number (the case's)."""
    rows = await session.execute(
        select(
            OutboxMessage.case_id,
            OutboxMessage.status.label("outcome"),
            null().label("reason"),
            OutboxMessage.id.label("message_id"),
            OutboxMessage.endpoint_id,
            OutboxMessage.attempts,
            OutboxMessage.created_at.label("at"),
        ).where(OutboxMessage.case_id.in_(case_ids), OutboxMessage.event_type == "case.resolved")
    )
    return [dict(row) for row in rows.mappings()]
