"""The connectors' tables: a survey tool's webhook per (tool, source), the responses it
delivered (their raw payloads kept for audit and replay), and the deliveries already seen."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, LargeBinary, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow, uuid7


class Connector(Base):
    """Where one survey tool posts for one source, with the secret its deliveries are checked
    with (sealed at rest, app/core/crypto.py) and the mapping of its answers to feedback."""

    __tablename__ = "connector"
    __table_args__ = (UniqueConstraint("tool", "source"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    tool: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConnectorResponse(Base):
    """One response of a tool (its own response id), as last delivered.

    `state` is `complete` (stored as feedback, `feedback_id`), `partial` (the respondent has not
    finished: kept here, no feedback and so no case yet) or `pending` (the tool sent only ids:
    its API must be asked for the answers). The raw body is kept, so a mapping change can be
    replayed over it.
    """

    __tablename__ = "connector_response"
    __table_args__ = (UniqueConstraint("connector_id", "response_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    connector_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("connector.id", ondelete="CASCADE"))
    response_id: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    feedback_id: Mapped[uuid.UUID | None]
    note: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # The latest version of the response stored, in the tool's own time (ToolEvent.version_at);
    # null for tools that send none.
    version_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConnectorDelivery(Base):
    """A delivery id already taken: the tool's retry of it is dropped."""

    __tablename__ = "connector_delivery"

    connector_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connector.id", ondelete="CASCADE"), primary_key=True
    )
    delivery_id: Mapped[str] = mapped_column(Text, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
