"""The feedback table: one row per answer or comment, from any channel."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, SmallInteger, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow, uuid7


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # Idempotency-Key values are scoped to the API key that sent them.
        UniqueConstraint("api_key_id", "idempotency_key"),
        Index("ix_feedback_submitted_at_id", "submitted_at", "id"),
        Index(
            "ix_feedback_customer_external_id",
            "customer_external_id",
            postgresql_where=text("customer_external_id IS NOT NULL"),
        ),
        Index(
            "ix_feedback_customer_email",
            "customer_email",
            postgresql_where=text("customer_email IS NOT NULL"),
        ),
        Index(
            "ix_feedback_customer_phone",
            "customer_phone",
            postgresql_where=text("customer_phone IS NOT NULL"),
        ),
        # The reports' covering indexes (app/reports/): they never read the table itself.
        Index(
            "ix_feedback_report_scores",
            "metric",
            "submitted_at",
            postgresql_include=[
                "score",
                "channel",
                "source",
                "routing_team",
                "touchpoint",
                "journey_stage",
            ],
        ),
        Index(
            "ix_feedback_report_negative",
            "submitted_at",
            postgresql_include=[
                "id",
                "channel",
                "source",
                "routing_team",
                "journey_stage",
                "contact_consent",
                "received_at",
            ],
            postgresql_where=text("sentiment = 'negative'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    source: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text)
    api_key_id: Mapped[uuid.UUID | None]
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    # SHA-256 of the canonical request, to tell a replay from a reuse of the key.
    request_hash: Mapped[str | None] = mapped_column(Text)

    customer_external_id: Mapped[str | None] = mapped_column(Text)
    customer_email: Mapped[str | None] = mapped_column(Text)
    customer_phone: Mapped[str | None] = mapped_column(Text)
    customer_name: Mapped[str | None] = mapped_column(Text)
    customer_locale: Mapped[str | None] = mapped_column(Text)
    contact_consent: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # False when a publishable key sent the identity without the source's signature: a claim,
    # which joins no case and changes no contact.
    customer_verified: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    metric: Mapped[str | None] = mapped_column(Text)
    score: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    touchpoint: Mapped[str | None] = mapped_column(Text)
    journey_stage: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))

    category: Mapped[str | None] = mapped_column(Text)
    sentiment: Mapped[str] = mapped_column(Text)
    # What the classifier read in the comment (`app.feedback.classify.read_comment`); empty when
    # a score gave the sentiment.
    sentiment_cues: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))

    # Where routing sent it (negative feedback only): the rule and its version, or no rule
    # when the default team caught it.
    routing_rule_id: Mapped[uuid.UUID | None]
    routing_rule_version: Mapped[int | None]
    routing_team: Mapped[str | None] = mapped_column(Text)

    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SourceIdentitySecret(Base):
    """A source's identity secret: a customer id signed with it (HMAC-SHA256) is verified.

    Sealed at rest (app/core/crypto.py). After a rotation the previous secret still verifies
    until it expires, so pages that sign with it keep working while they are updated.
    """

    __tablename__ = "source_identity_secret"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
