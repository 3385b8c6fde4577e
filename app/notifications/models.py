"""Webhook endpoints, the outbox of messages to them, and every delivery attempt."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow, uuid7


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoint"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # Only events about feedback from these sources; null: every source.
    sources: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Signing needs them in clear, so they are encrypted, not hashed: sealed with
    # FEEDBACK_SECRET_KEY when it is set (app/core/crypto.py), else kept as they are. After a
    # rotation the previous secret signs too, until it expires; then the dispatcher deletes it.
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The first failure since the last success: an endpoint failing for days is disabled.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxMessage(Base):
    """One event for one endpoint, written in the transaction of the change that caused it.

    `next_attempt_at` is both the schedule and the lease: a dispatcher that claims a message
    moves it past the end of its lease, so if the dispatcher dies the message falls due again.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index(
            "ix_outbox_message_due",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_outbox_message_endpoint", "endpoint_id", "created_at", "id"),
        Index("ix_outbox_message_case", "case_id", postgresql_where=text("case_id IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(Text)
    # The exact bytes sent on every attempt (each attempt signs them with its own timestamp).
    body: Mapped[bytes] = mapped_column(LargeBinary)
    case_id: Mapped[uuid.UUID | None]
    # pending, delivered or failed.
    status: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Attempts in the current round of the retry schedule (a manual retry starts a new one).
    tries: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Who holds the lease: the claim's token, so a dispatcher whose lease ran out cannot
    # overwrite the result of the one that took over.
    lease_token: Mapped[uuid.UUID | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempt"
    __table_args__ = (Index("ix_delivery_attempt_message", "message_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("outbox_message.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
