"""Connectors: their CRUD (a connector is where one tool posts for one source, with its secret
and mapping). What a delivery does is app/connectors/receiving.py.
"""

from __future__ import annotations

import base64
import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.connectors.models import Connector
from app.connectors.schemas import ConnectorCreate, ConnectorUpdate
from app.connectors.signatures import Tool, secret_unusable
from app.core.config import Settings
from app.core.crypto import SecretBox
from app.core.db import get_or_404, utcnow
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed


def new_secret(tool: Tool) -> str:
    if tool in (Tool.STANDARD, Tool.FORMBRICKS):
        return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    return secrets.token_urlsafe(32)


def _check_secret(tool: Tool, secret: str) -> None:
    problem = secret_unusable(tool, secret)
    if problem is not None:
        raise ValidationFailed(
            "This secret cannot check the tool's deliveries.",
            errors=[FieldError(field="secret", message=problem, type="secret_unusable")],
        )


def connector_url(settings: Settings, tool: str, source: str) -> str:
    return f"{settings.public_url.rstrip('/')}/v1/connectors/{tool}/{source}"


def _not_found() -> NotFound:
    return NotFound("No connector has this id.", code="connector_not_found")


async def create_connector(
    session: AsyncSession, data: ConnectorCreate, *, actor: str, box: SecretBox
) -> tuple[Connector, str | None]:
    """Store the connector; answer the secret made for it (None when one was given)."""
    if data.secret is not None:
        _check_secret(data.tool, data.secret)
    secret = data.secret or new_secret(data.tool)
    connector = Connector(
        tool=data.tool.value,
        source=data.source,
        secret=box.seal(secret),
        mapping=data.mapping.model_dump(mode="json", exclude_defaults=True),
        created_by=actor,
    )
    session.add(connector)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            f"The source `{data.source}` has a {data.tool.value} connector already.",
            code="connector_exists",
        ) from None
    return connector, None if data.secret else secret


async def list_connectors(session: AsyncSession) -> list[Connector]:
    return list((await session.scalars(select(Connector).order_by(Connector.created_at))).all())


async def get_connector(session: AsyncSession, connector_id: uuid.UUID) -> Connector:
    return await get_or_404(session, Connector, connector_id, _not_found())


async def update_connector(
    session: AsyncSession, connector_id: uuid.UUID, data: ConnectorUpdate, *, box: SecretBox
) -> Connector:
    connector = await get_connector(session, connector_id)
    if data.secret is not None:
        _check_secret(Tool(connector.tool), data.secret)
        connector.secret = box.seal(data.secret)
    if data.mapping is not None:
        connector.mapping = data.mapping.model_dump(mode="json", exclude_defaults=True)
    connector.updated_at = utcnow()
    await session.flush()
    return connector


async def delete_connector(session: AsyncSession, connector_id: uuid.UUID) -> None:
    """The connector and its kept payloads go; the feedback it stored stays."""
    await session.delete(await get_connector(session, connector_id))
    await session.flush()


def connector_key_id(tool: str, source: str) -> uuid.UUID:
    """Who stored a connector's items: the same for every connector of a tool and source, so one
    deleted and made again (a new secret) still updates the responses its predecessor stored,
    and `closeloop import --connector` rows are the items the webhooks update."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"closeloop:connector:{tool}/{source}")
