"""A tool's delivery taken through the one ingest path, and the replay of kept payloads.

A delivery is checked (signature), read (the tool's format, the mapping) and then stored by
the same functions as `POST /v1/feedback` (a new response) and `PUT /v1/feedback/{source}/
{external_id}` (a later event of a response already stored), under a trusted principal of the
connector's own: the tool signed it, as a server of yours would with its key.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.connectors.events import State, ToolEvent, parse_body
from app.connectors.mapping import (
    ConnectorMapping,
    feedback_body,
    identity_claimed,
    read_time,
)
from app.connectors.models import Connector
from app.connectors.schemas import (
    Received,
    ReplayFailure,
    ReplayOut,
)
from app.connectors.service import connector_key_id
from app.connectors.signatures import Tool, signature_holds
from app.connectors.tools import read_event
from app.core.auth import Principal, Scope
from app.core.config import Settings
from app.core.crypto import SecretBox
from app.core.db import Database, raw_transaction, utcnow, uuid7
from app.core.errors import (
    AppError,
    Conflict,
    NotFound,
    Unauthorized,
    validation_problem,
)
from app.feedback import ingest as feedback
from app.feedback.identity import IdentitySecrets
from app.feedback.ingest import IngestGroups
from app.feedback.schemas import FeedbackCreate
from app.routing.evaluation import RoutingCache

REPLAY_MAX_RESPONSES = 10_000
PENDING_NOTE = (
    "The tool sent only ids: the answers are in its API (fetching them is not enabled), "
    "so nothing is stored as feedback yet."
)


class SignatureInvalid(Unauthorized):
    code, title = "signature_invalid", "Missing or invalid signature"


def _mapping(stored: str | dict[str, Any]) -> ConnectorMapping:
    # A raw connection may hand jsonb back as text (no codec on a pooled connection).
    if isinstance(stored, str):
        return ConnectorMapping.model_validate_json(stored)
    return ConnectorMapping.model_validate(stored)


def _principal(tool: str, source: str, *, claimed: bool = False) -> Principal:
    """The connector as the ingest sees it: a trusted key, so the customer it names is
    verified, unless the respondent typed that identity into the form (`claimed`): a public
    form is in strangers' hands as a publishable key is, and what it says is a claim."""
    return Principal(
        key_id=connector_key_id(tool, source),
        name=f"connector {tool}/{source}",
        scopes=frozenset({Scope.FEEDBACK_WRITE}),
        allowed_sources=frozenset({source}),
        allowed_origins=None,
        publishable=claimed,
    )


@dataclass(frozen=True, slots=True)
class IngestPath:
    """What the ingest functions need besides the database."""

    settings: Settings
    routing: RoutingCache
    identities: IdentitySecrets
    groups: IngestGroups


def tool_of(tool_name: str) -> Tool:
    try:
        return Tool(tool_name)
    except ValueError:
        raise NotFound(f"No tool is called `{tool_name}`.", code="unknown_tool") from None


async def receive(
    database: Database,
    path: IngestPath,
    *,
    tool_name: str,
    source: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
    token: str | None,
    box: SecretBox,
) -> Received:
    """One delivery of a tool: checked over its raw bytes, then read and stored."""
    tool = tool_of(tool_name)
    async with database.raw() as conn:
        row = await conn.fetchrow(
            "SELECT id, secret, mapping FROM connector WHERE tool = $1 AND source = $2",
            tool.value,
            source,
        )
    if row is None:
        raise NotFound(
            f"The source `{source}` has no {tool.value} connector.", code="connector_not_found"
        )
    if not signature_holds(tool, box.open(row["secret"]), body, headers, token, time.time()):
        raise SignatureInvalid(
            f"The delivery does not carry a valid {tool.value} signature for this connector.",
            headers={},
        )
    event = read_event(tool, parse_body(body, content_type), headers)
    return await _apply(
        database,
        path,
        row["id"],
        tool,
        source,
        _mapping(row["mapping"]),
        event,
        body=body,
        content_type=content_type,
    )


async def _apply(
    database: Database,
    path: IngestPath,
    connector_id: uuid.UUID,
    tool: Tool,
    source: str,
    mapping: ConnectorMapping,
    event: ToolEvent,
    *,
    body: bytes,
    content_type: str,
) -> Received:
    if event.state is State.IGNORED:
        return Received(status="ignored", response_id=event.response_id)
    async with database.raw() as conn:
        if event.delivery_id is not None and await conn.fetchval(
            "SELECT 1 FROM connector_delivery WHERE connector_id = $1 AND delivery_id = $2",
            connector_id,
            event.delivery_id,
        ):
            return Received(status="duplicate", response_id=event.response_id)
        known = await conn.fetchrow(
            "SELECT state, feedback_id, version_at FROM connector_response "
            "WHERE connector_id = $1 AND response_id = $2",
            connector_id,
            event.response_id,
        )
    version = _version(event)
    stored: dict[str, Any] | None = None
    if known is not None and _older(version, known["version_at"]):
        # The tool changed the response since this event (deliveries out of order): stale.
        status = "ignored"
    elif event.state is State.COMPLETE:
        payload = _payload(event, mapping, tool, source)
        claimed = identity_claimed(event, mapping)
        principal = _principal(tool.value, source, claimed=claimed)
        status, stored = await _store(database, path, principal, payload)
    elif known is not None and known["state"] == State.COMPLETE:
        # A partial event after the finished response (deliveries out of order): stale.
        status = "ignored"
    else:
        status = event.state.value
    note = PENDING_NOTE if event.state is State.PENDING else event.note
    async with database.raw() as conn, conn.transaction():
        if event.delivery_id is not None:
            await conn.execute(
                "INSERT INTO connector_delivery (connector_id, delivery_id, received_at) "
                "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                connector_id,
                event.delivery_id,
                utcnow(),
            )
        if status != "ignored":
            await _record_response(
                conn,
                connector_id,
                event,
                None if stored is None else uuid.UUID(stored["id"]),
                note,
                body,
                content_type,
                version,
            )
    return Received(status=status, response_id=event.response_id, feedback=stored, note=note)


def _payload(
    event: ToolEvent, mapping: ConnectorMapping, tool: Tool, source: str
) -> FeedbackCreate:
    try:
        return FeedbackCreate.model_validate(
            feedback_body(event, mapping, tool=tool, source=source)
        )
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def _store(
    database: Database,
    path: IngestPath,
    principal: Principal,
    payload: FeedbackCreate,
) -> tuple[str, dict[str, Any]]:
    """Through the ingest of POST /v1/feedback: a new response is stored, the same content
    again replays; a later event that says something else (`updated`, or the comment that
    follows the score) replaces the item through PUT's path."""
    try:
        result = await feedback.ingest_feedback(
            payload,
            principal=principal,
            idempotency_key=None,
            settings=path.settings,
            groups=path.groups,
        )
    except Conflict as exc:
        if exc.code != "conflict":
            raise
    else:
        return ("created" if result.created else "replayed"), result.feedback
    async with raw_transaction(database) as raw:
        result = await feedback.put_feedback(
            raw, payload, principal=principal, settings=path.settings, routing=path.routing
        )
    return ("created" if result.created else "updated"), result.feedback


async def _record_response(
    conn: Any,
    connector_id: uuid.UUID,
    event: ToolEvent,
    feedback_id: uuid.UUID | None,
    note: str | None,
    body: bytes,
    content_type: str,
    version: datetime | None,
) -> None:
    now = utcnow()
    await conn.execute(
        "INSERT INTO connector_response (id, connector_id, response_id, state, feedback_id, "
        "note, content_type, payload, received_at, updated_at, version_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) "
        "ON CONFLICT (connector_id, response_id) DO UPDATE SET state = excluded.state, "
        "feedback_id = COALESCE(excluded.feedback_id, connector_response.feedback_id), "
        "note = excluded.note, content_type = excluded.content_type, "
        "payload = excluded.payload, updated_at = excluded.updated_at, "
        "version_at = GREATEST(excluded.version_at, connector_response.version_at)",
        uuid7(),
        connector_id,
        event.response_id,
        event.state.value,
        feedback_id,
        note,
        content_type[:200],
        body,
        now,
        version,
    )


def _version(event: ToolEvent) -> datetime | None:
    """The event's version time, or None when the tool sent none it could read (a time it
    cannot read is no reason to refuse the answers)."""
    try:
        at, _ = read_time(event.version_at, "version_at")
    except AppError:
        return None
    return at


def _older(version: datetime | None, stored: datetime | None) -> bool:
    return version is not None and stored is not None and version < stored


async def list_responses(
    database: Database, connector_id: uuid.UUID, *, state: str | None, limit: int
) -> list[dict[str, Any]]:
    async with database.raw() as conn:
        rows = await conn.fetch(
            "SELECT response_id, state, feedback_id, note, received_at, updated_at "
            "FROM connector_response WHERE connector_id = $1 AND ($2::text IS NULL OR state = $2) "
            "ORDER BY updated_at DESC LIMIT $3",
            connector_id,
            state,
            limit,
        )
    return [dict(r) for r in rows]


async def replay(database: Database, path: IngestPath, connector: Connector) -> ReplayOut:
    """Read every finished response's kept payload again with the connector's mapping as it is
    now, and store each through PUT (an unchanged item stays as it is)."""
    tool = Tool(connector.tool)
    mapping = ConnectorMapping.model_validate(connector.mapping)
    async with database.raw() as conn:
        rows = await conn.fetch(
            "SELECT response_id, content_type, payload FROM connector_response "
            "WHERE connector_id = $1 AND state = 'complete' ORDER BY received_at LIMIT $2",
            connector.id,
            REPLAY_MAX_RESPONSES,
        )
    replayed = 0
    failed = []
    for row in rows:
        try:
            event = read_event(tool, parse_body(row["payload"], row["content_type"]), {})
            payload = _payload(event, mapping, tool, connector.source)
            principal = _principal(
                connector.tool, connector.source, claimed=identity_claimed(event, mapping)
            )
            async with raw_transaction(database) as raw:
                await feedback.put_feedback(
                    raw, payload, principal=principal, settings=path.settings, routing=path.routing
                )
        except AppError as exc:
            failed.append(
                ReplayFailure(
                    response_id=row["response_id"],
                    problem=exc.to_problem().model_dump(mode="json", exclude_none=True),
                )
            )
            continue
        replayed += 1
    return ReplayOut(replayed=replayed, failed=failed)
