"""HTTP for connectors: their CRUD (admin), replay, and the address each tool posts to."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status

from app.connectors import receiving, service
from app.connectors.models import Connector
from app.connectors.schemas import (
    ConnectorCreate,
    ConnectorCreated,
    ConnectorRead,
    ConnectorResponseRead,
    ConnectorUpdate,
    Received,
    ReplayOut,
)
from app.connectors.signatures import Tool
from app.core.auth import Admin
from app.core.crypto import SecretBox, secret_box
from app.core.db import DatabaseDep, SessionDep
from app.core.errors import problem_responses
from app.core.routes import answers, creates, empties
from app.core.schemas import SLUG_PATTERN, PageLimit

router = APIRouter(prefix="/v1/connectors", tags=["connectors"])
# Survey tools' deliveries come in their own formats: JSON, url-encoded or multipart forms.
RECEIVE_PREFIXES = tuple(f"/v1/connectors/{tool.value}/" for tool in Tool)
RECEIVE_BODY_LIMIT = 256 * 1024


def _box(request: Request) -> SecretBox:
    return secret_box(request.app.state.settings.secret_key)


def _read(request: Request, connector: Connector) -> ConnectorRead:
    return ConnectorRead(
        id=connector.id,
        tool=Tool(connector.tool),
        source=connector.source,
        url=service.connector_url(request.app.state.settings, connector.tool, connector.source),
        mapping=connector.mapping,
        created_by=connector.created_by,
        created_at=connector.created_at,
        updated_at=connector.updated_at,
    )


def _path(request: Request) -> receiving.IngestPath:
    state = request.app.state
    return receiving.IngestPath(
        state.settings, state.routing, state.identities, state.ingest_groups
    )


@router.post("", **creates(ConnectorCreated, 409, 422))
async def create_connector(
    data: ConnectorCreate, request: Request, session: SessionDep, principal: Admin
) -> ConnectorCreated:
    """Connect a survey tool to a source: `url` is where the tool must post. Without a
    `secret`, one is made and shown this once (give it to the tool)."""
    connector, secret = await service.create_connector(
        session, data, actor=principal.name, box=_box(request)
    )
    return ConnectorCreated(**_read(request, connector).model_dump(), secret=secret)


@router.get("", **answers(list[ConnectorRead]))
async def list_connectors(request: Request, session: SessionDep, _: Admin) -> list[ConnectorRead]:
    """Every connector, oldest first (their secrets are never shown again)."""
    return [_read(request, c) for c in await service.list_connectors(session)]


@router.get("/{connector_id}", **answers(ConnectorRead, 404))
async def get_connector(
    connector_id: uuid.UUID, request: Request, session: SessionDep, _: Admin
) -> ConnectorRead:
    """One connector."""
    return _read(request, await service.get_connector(session, connector_id))


@router.patch("/{connector_id}", **answers(ConnectorRead, 404, 422))
async def update_connector(
    connector_id: uuid.UUID,
    data: ConnectorUpdate,
    request: Request,
    session: SessionDep,
    _: Admin,
) -> ConnectorRead:
    """Change the secret or the mapping. A new mapping applies to deliveries from now on;
    `POST /v1/connectors/{id}/replay` applies it to the responses stored before."""
    connector = await service.update_connector(session, connector_id, data, box=_box(request))
    return _read(request, connector)


@router.delete("/{connector_id}", **empties(404))
async def delete_connector(connector_id: uuid.UUID, session: SessionDep, _: Admin) -> Response:
    """Remove the connector and the payloads it kept; the feedback it stored stays."""
    await service.delete_connector(session, connector_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Only an id matches here (`:uuid`): a connector whose source is `replay` receives its tool's
# deliveries at /v1/connectors/{tool}/replay, below.
@router.post("/{connector_id:uuid}/replay", **answers(ReplayOut, 404))
async def replay_connector(
    connector_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    database: DatabaseDep,
    _: Admin,
) -> ReplayOut:
    """Normalize every finished response's kept payload again with the mapping in force, and
    replace each item (`PUT` semantics: re-derived, re-routed; unchanged items stay).
    At most 10,000 responses a call, oldest first."""
    connector = await service.get_connector(session, connector_id)
    return await receiving.replay(database, _path(request), connector)


@router.get("/{connector_id}/responses", **answers(list[ConnectorResponseRead], 404, 422))
async def list_connector_responses(
    connector_id: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    _: Admin,
    state: Literal["complete", "partial", "pending"] | None = None,
    limit: PageLimit = 50,
) -> list[ConnectorResponseRead]:
    """The responses the tool delivered, last changed first: `partial` ones (no feedback, no
    case until finished) and `pending` ones (only ids were sent) included."""
    await service.get_connector(session, connector_id)
    rows = await receiving.list_responses(database, connector_id, state=state, limit=limit)
    return [ConnectorResponseRead.model_validate(r) for r in rows]


@router.head("/{tool}/{source}", response_class=Response, responses=problem_responses(404, 422))
async def check_delivery_url(
    tool: Annotated[str, Path(max_length=32)],
    source: Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)],
) -> Response:
    """What a tool may ask before it posts: SurveyMonkey checks a webhook's URL with `HEAD`
    when the webhook is made, and makes none unless it answers 200. Any tool's URL answers so,
    whether or not a connector has that source yet: it tells a stranger nothing."""
    receiving.tool_of(tool)
    return Response(status_code=status.HTTP_200_OK)


@router.post(
    "/{tool}/{source}",
    response_model=Received,
    responses=problem_responses(400, 401, 404, 409, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The tool's own payload, as it sends it: JSON, a url-encoded form "
            "(Qualtrics) or a multipart form (Jotform).",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "multipart/form-data": {"schema": {"type": "object"}},
            },
        }
    },
)
async def receive_delivery(
    tool: Annotated[str, Path(max_length=32)],
    source: Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)],
    request: Request,
    database: DatabaseDep,
    token: Annotated[
        str | None,
        Query(max_length=500, description="The connector's token, for tools that sign nothing."),
    ] = None,
) -> Received:
    """Where a survey tool posts. Authenticated by the tool's own scheme over the raw body
    (not with an API key); a missing or wrong signature is a 401 and nothing is stored.
    Answered 200 whatever became of it: `created`, `replayed`, `updated`, `partial`,
    `pending`, `duplicate` (a delivery seen before) or `ignored` (an event that is no
    answer)."""
    return await receiving.receive(
        database,
        _path(request),
        tool_name=tool,
        source=source,
        body=await request.body(),
        content_type=request.headers.get("content-type", ""),
        headers={k.lower(): v for k, v in request.headers.items()},
        token=token,
        box=_box(request),
    )
