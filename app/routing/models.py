"""Teams, routing rules and their history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow, uuid7


class Team(Base):
    __tablename__ = "team"
    __table_args__ = (
        # Exactly one default team: at most one by this index, at least one by the service.
        Index("uq_team_default", "is_default", unique=True, postgresql_where=text("is_default")),
    )

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    escalation_team: Mapped[str | None] = mapped_column(ForeignKey("team.key"))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class RoutingRule(Base):
    __tablename__ = "routing_rule"
    __table_args__ = (Index("ix_routing_rule_order", "priority", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONB)
    team: Mapped[str] = mapped_column(ForeignKey("team.key"))
    case_priority: Mapped[str] = mapped_column(Text)
    add_tags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # A literal assignee (a JSON string) or {"from": "<field>"}.
    assignee: Mapped[Any | None] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RoutingRuleVersion(Base):
    """Every state a rule has been in, kept after the rule is deleted (so no foreign key)."""

    __tablename__ = "routing_rule_version"

    rule_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    change: Mapped[str] = mapped_column(Text)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    changed_by: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RoutingGeneration(Base):
    """One row, bumped by every change to teams or rules; processes poll it to reload."""

    __tablename__ = "routing_generation"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
