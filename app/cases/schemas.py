"""Cases as the API takes and gives them (SPEC §4)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr

from app.core.schemas import (
    LOCALE_PATTERN,
    CustomerQuery,
    RangeFrom,
    RangeTo,
    ShortText,
    Tag,
    email_address,
    phone_number,
)
from app.notifications.schemas import NotificationRead
from app.routing.schemas import CasePriority


class CaseStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class CaseSort(StrEnum):
    RESOLUTION_DUE_AT = "resolution_due_at"
    CREATED_AT = "created_at"
    NEWEST = "-created_at"
    PRIORITY = "priority"


Assignee = ShortText


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """Which cases a queue lists, and in which order: the list route's query parameters
    (Depends()) and what reads.list_cases takes."""

    status: Annotated[list[CaseStatus] | None, Query(description="Repeat for several.")] = None
    team: str | None = None
    assignee: Annotated[str | None, Query(max_length=200)] = None
    priority: CasePriority | None = None
    breached: bool | None = None
    customer: CustomerQuery = None
    tag: str | None = None
    created_from: RangeFrom = None
    created_to: RangeTo = None
    sort: Annotated[
        CaseSort,
        Query(
            description="`resolution_due_at` (default: oldest due first), "
            "`created_at`, `-created_at`, or `priority` (most urgent, then oldest, first)."
        ),
    ] = CaseSort.RESOLUTION_DUE_AT


class CaseCustomer(BaseModel):
    external_id: str | None
    email: str | None
    phone: str | None
    name: str | None
    locale: str | None
    contact_consent: bool
    verified: bool = Field(
        description="False when the identity is only claimed (sent unsigned with a publishable "
        "key): such a case joins no other and is joined by none."
    )


class CustomerContactUpdate(BaseModel):
    """The case's contact details, as an agent corrects them; what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[StrictStr, AfterValidator(email_address)] | None = None
    phone: Annotated[StrictStr, AfterValidator(phone_number)] | None = None
    name: ShortText | None = None
    locale: Annotated[StrictStr, Field(pattern=LOCALE_PATTERN)] | None = None
    contact_consent: StrictBool | None = None


class CaseFeedbackItem(BaseModel):
    """A piece of feedback as a case (or a customer's history) shows it."""

    id: uuid.UUID
    case_id: uuid.UUID | None = Field(description="The case it belongs to, if any.")
    kind: str | None = Field(
        description="How it belongs to its case: opened (it opened it), joined, or followup."
    )
    source: str
    channel: str
    external_id: str | None
    metric: str | None
    score: int | None
    category: str | None
    sentiment: str
    comment: str | None
    tags: list[str]
    submitted_at: datetime
    added_at: datetime | None = Field(description="When it was added to its case.")
    verified: bool = Field(
        default=True, description="False when it came with a claimed (unsigned) identity."
    )


class CaseRule(BaseModel):
    id: uuid.UUID
    version: int


class Resolution(BaseModel):
    code: str
    summary: str | None
    customer_message: str | None
    notify_customer: bool


class CaseRead(BaseModel):
    id: uuid.UUID
    number: str = Field(description="Short and human: C-1042.")
    status: CaseStatus
    priority: CasePriority
    team: str
    assignee: str | None
    customer: CaseCustomer
    feedback: list[CaseFeedbackItem] = Field(description="Its feedback items, newest first.")
    tags: list[str]
    rule: CaseRule | None = Field(description="The routing rule, and its version, that sent it.")
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool
    breached: bool
    resolution: Resolution | None
    can_notify: bool = Field(
        description="Whether the customer can be told the outcome: they left a way to reach "
        "them, and it is theirs (a verified identity, or contact details an agent set)."
    )
    version: int = Field(description="Also the ETag; send it back in If-Match to change the case.")
    created_at: datetime
    updated_at: datetime


class CaseSummary(BaseModel):
    id: uuid.UUID
    number: str
    status: CaseStatus
    priority: CasePriority
    team: str
    assignee: str | None
    breached: bool
    created_at: datetime
    resolved_at: datetime | None
    verified: bool = Field(description="False when opened by a claimed (unsigned) identity.")


class CaseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = Field(
        default=None,
        description="open → in_progress, in_progress ↔ waiting_on_customer, resolved → closed. "
        "Resolve and reopen have their own routes (they take a message or a reason).",
    )
    assignee: Assignee | None = Field(default=None, description="null unassigns.")
    priority: CasePriority | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    customer: CustomerContactUpdate | None = Field(
        default=None,
        description="Correct the contact details the customer is told through (null clears "
        "one). The only way they change: feedback joining the case never overwrites them.",
    )


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[StrictStr, Field(min_length=1, max_length=100)] = Field(
        description="What was done: `refunded`, `replaced`, `fixed`, `no_action` ..."
    )
    summary: Annotated[StrictStr, Field(max_length=10_000)] | None = Field(
        default=None, description="Internal: never sent to the customer."
    )
    customer_message: Annotated[StrictStr, Field(min_length=1, max_length=5_000)] | None = Field(
        default=None, description="What the customer is told."
    )
    notify_customer: StrictBool = Field(
        default=True, description="Tell the customer (needs `customer_message`)."
    )


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[StrictStr, Field(min_length=1, max_length=2_000)]


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Annotated[StrictStr, Field(min_length=1, max_length=10_000)]


class CaseEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    actor: str = Field(description="The API key's name, or `system` / `routing`.")
    at: datetime
    data: dict[str, Any]


class IdentityKind(StrEnum):
    EXTERNAL_ID = "external_id"
    EMAIL = "email"
    PHONE = "phone"


class CustomerIdentityRead(BaseModel):
    """One of the customer's identities, and where it was learned."""

    model_config = ConfigDict(from_attributes=True)

    kind: IdentityKind
    value: str = Field(description="As stored: an e-mail in lower case, a phone in E.164.")
    verified: bool = Field(
        description="True once an item carried it verified (signed, or from a trusted key). A "
        "claimed identity links to nothing: it stays alone in a record of its own."
    )
    verified_at: datetime | None
    source: str = Field(description="The source of the first item that carried it.")
    channel: str = Field(description="That item's channel.")
    feedback_id: uuid.UUID | None = Field(description="That item.")
    first_seen_at: datetime = Field(description="When that item was received.")
    detached_at: datetime | None = Field(
        description="When an admin detached it from another customer: it is never linked again."
    )
    detached_by: str | None


class CustomerView(BaseModel):
    customer: CaseCustomer
    identities: list[CustomerIdentityRead] = Field(
        description="Every identity linked to the customer, and where each was learned, oldest "
        "first."
    )
    feedback: list[CaseFeedbackItem] = Field(description="Every item they gave, newest first.")
    cases: list[CaseSummary] = Field(description="Their cases, newest first.")
    notifications: list[NotificationRead] = Field(
        description="Each time they were to be told an outcome, and what came of it, newest first."
    )
