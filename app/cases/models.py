"""Cases, the feedback that belongs to them, and their timeline of events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Sequence,
    SmallInteger,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow, uuid7

# Case numbers are short and human (C-1042); a sequence keeps them unique under any concurrency.
case_number_seq = Sequence("case_number_seq", start=1001, metadata=Base.metadata)

ACTIVE_STATUSES = ("open", "in_progress", "waiting_on_customer")
_ACTIVE = "status IN ('open', 'in_progress', 'waiting_on_customer')"


class Case(Base):
    __tablename__ = "feedback_case"
    __table_args__ = (
        # One active case per customer and team: a further complaint joins it. The team here is
        # the one routing chose at opening, which escalation does not change.
        Index(
            "uq_feedback_case_active_customer",
            "opened_for_team",
            "customer_key",
            unique=True,
            postgresql_where=text(f"{_ACTIVE} AND customer_key IS NOT NULL"),
        ),
        # Queues: a team's cases by status, in each sort order, a page at a time.
        Index("ix_feedback_case_queue_due", "team", "status", "resolution_due_at", "id"),
        Index("ix_feedback_case_queue_created", "team", "status", "created_at", "id"),
        Index(
            "ix_feedback_case_queue_priority", "team", "status", "priority_rank", "created_at", "id"
        ),
        Index("ix_feedback_case_created", "created_at", "id"),
        Index("ix_feedback_case_customer_keys", "customer_keys", postgresql_using="gin"),
        # The SLA monitor's two questions: which active cases are past a due time.
        Index(
            "ix_feedback_case_first_response_due",
            "first_response_due_at",
            postgresql_where=text(
                "status = 'open' AND first_response_at IS NULL AND NOT first_response_breached"
            ),
        ),
        Index(
            "ix_feedback_case_resolution_due",
            "resolution_due_at",
            postgresql_where=text("status IN ('open', 'in_progress') AND NOT resolution_breached"),
        ),
        Index(
            "ix_feedback_case_resolved_at",
            "resolved_at",
            postgresql_where=text("status = 'resolved'"),
        ),
        # The follow-up page (/f/{token}) finds its case by the token's hash.
        Index(
            "ix_feedback_case_followup_token",
            "followup_token_hash",
            postgresql_where=text("followup_token_hash IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    number: Mapped[int] = mapped_column(
        BigInteger, case_number_seq, server_default=case_number_seq.next_value(), unique=True
    )
    status: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(Text)
    # urgent 0 .. low 3, so queues sort most urgent first with an index.
    priority_rank: Mapped[int] = mapped_column(SmallInteger)
    team: Mapped[str] = mapped_column(ForeignKey("team.key"))
    opened_for_team: Mapped[str] = mapped_column(Text)
    assignee: Mapped[str | None] = mapped_column(Text)

    # The customer: the key complaints join on (the id of their customer record, as text; null
    # for a claimed identity or none), every identity for lookups, and their contact details
    # as last given.
    customer_key: Mapped[str | None] = mapped_column(Text)
    customer_keys: Mapped[list[str]] = mapped_column(ARRAY(Text))
    customer_external_id: Mapped[str | None] = mapped_column(Text)
    customer_email: Mapped[str | None] = mapped_column(Text)
    customer_phone: Mapped[str | None] = mapped_column(Text)
    customer_name: Mapped[str | None] = mapped_column(Text)
    customer_locale: Mapped[str | None] = mapped_column(Text)
    contact_consent: Mapped[bool] = mapped_column(Boolean)
    # False when the case was opened by a claimed identity (a publishable key, unsigned): such a
    # case has no customer_key, so nothing joins it and it joins nothing.
    customer_verified: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    can_notify: Mapped[bool] = mapped_column(Boolean)

    tags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    rule_id: Mapped[uuid.UUID | None]
    rule_version: Mapped[int | None] = mapped_column(Integer)

    first_response_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolution_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # While waiting on the customer the SLA clock stops; this is when it stopped.
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_response_breached: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    resolution_breached: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    resolution_code: Mapped[str | None] = mapped_column(Text)
    resolution_summary: Mapped[str | None] = mapped_column(Text)
    customer_message: Mapped[str | None] = mapped_column(Text)
    notify_customer: Mapped[bool | None] = mapped_column(Boolean)

    # The follow-up question's one-time token (its hash), sent with case.resolved.
    followup_token_hash: Mapped[str | None] = mapped_column(Text)
    followup_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaseFeedback(Base):
    """Which case a feedback item belongs to: the one it opened or joined, or answered."""

    __tablename__ = "case_feedback"
    __table_args__ = (Index("ix_case_feedback_case", "case_id", "added_at"),)

    feedback_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("feedback.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("feedback_case.id", ondelete="CASCADE"))
    # opened, joined, or followup (an answer to the follow-up question).
    kind: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The item's source and external id (fixed at ingest), which the case's webhook messages
    # name (app/cases/messages.py): kept on the link, so that cases read no feedback table.
    source: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text)


class CaseEvent(Base):
    """The case's timeline: who did what, when."""

    __tablename__ = "case_event"
    __table_args__ = (Index("ix_case_event_case", "case_id", "at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("feedback_case.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))


class CustomerErasure(Base):
    """A customer erased: who did it, when and how much, without anything that names them.

    The identities are kept only as SHA-256 hashes, so that erasing the same customer again is
    recognised (and answered as done) while nobody can read them back.
    """

    __tablename__ = "customer_erasure"
    __table_args__ = (Index("ix_customer_erasure_keys", "key_hashes", postgresql_using="gin"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    key_hashes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    feedback_items: Mapped[int] = mapped_column(Integer)
    case_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid))
    notes: Mapped[int] = mapped_column(Integer)
    messages: Mapped[int] = mapped_column(Integer)


class Customer(Base):
    """One customer, across every channel: the record their identities belong to
    (app/cases/linking.py). Complaints join a case by it (`feedback_case.customer_key`)."""

    __tablename__ = "customer"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CustomerIdentity(Base):
    """An external id, e-mail or phone (E.164) of a customer, and where it was first learned."""

    __tablename__ = "customer_identity"
    __table_args__ = (
        # One owner per identity; lookups go by value (a key may be any kind).
        UniqueConstraint("value", "kind"),
        Index("ix_customer_identity_customer", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    # external_id, email or phone, stored as feedback stores them (e-mail lower case, phone E.164).
    kind: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
    # Verified when an item that carried it was (signed, or from a trusted key); a claimed
    # identity stays alone in a record of its own and links nothing.
    verified: Mapped[bool] = mapped_column(Boolean)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where it was learned: the first stored item that carried it.
    source: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    feedback_id: Mapped[uuid.UUID | None]
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # An admin undid a link: it was moved to a record of its own, which items never merge again.
    detached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detached_by: Mapped[str | None] = mapped_column(Text)
