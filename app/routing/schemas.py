"""Teams and routing rules as the API takes and gives them (SPEC §3)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from app.core.schemas import SLUG_PATTERN, ShortText, Tag, Timestamp

TeamKey = Annotated[StrictStr, Field(pattern=SLUG_PATTERN, min_length=1, max_length=64)]
Minutes = Annotated[StrictInt, Field(ge=1, le=525_600)]
Priority = Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000)]


class CasePriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


# Most urgent first: queues sort by this ascending, with an index (feedback_case.priority_rank).
PRIORITY_RANK: Mapping[str, int] = {
    CasePriority.URGENT: 0,
    CasePriority.HIGH: 1,
    CasePriority.NORMAL: 2,
    CasePriority.LOW: 3,
}


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: TeamKey = Field(description="A slug naming the team: `billing`.")
    name: ShortText
    first_response_minutes: Minutes = Field(description="SLA: first response within.")
    resolution_minutes: Minutes = Field(description="SLA: resolved within.")
    escalation_team: TeamKey | None = Field(
        default=None, description="Where a case goes when it breaches its SLA."
    )
    is_default: StrictBool = Field(
        default=False,
        description="Negative feedback no rule matches goes to the default team. The first team "
        "is the default until another is marked.",
    )


class TeamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    first_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None
    escalation_team: TeamKey | None = None
    is_default: StrictBool | None = Field(
        default=None, description="Only `true`: the default moves to this team."
    )


class TeamRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    name: str
    first_response_minutes: int
    resolution_minutes: int
    escalation_team: str | None
    is_default: bool
    created_at: datetime
    updated_at: datetime


class AssigneeFrom(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: StrictStr = Field(
        alias="from", description="A feedback field: `attributes.account_owner`."
    )


Assignee = ShortText | AssigneeFrom


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    priority: Priority = Field(description="Lower runs first; ties by creation.")
    enabled: StrictBool = True
    conditions: dict[str, Any] = Field(
        description="The condition tree: all / any / not over {field, op, value} leaves."
    )
    team: TeamKey
    case_priority: CasePriority = CasePriority.NORMAL
    add_tags: list[Tag] = Field(default_factory=list, max_length=50)
    assignee: Assignee | None = Field(
        default=None,
        description='A literal assignee, or {"from": "attributes.account_owner"} to take it '
        "from the feedback.",
    )


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    priority: Priority | None = None
    enabled: StrictBool | None = None
    conditions: dict[str, Any] | None = None
    team: TeamKey | None = None
    case_priority: CasePriority | None = None
    add_tags: list[Tag] | None = Field(default=None, max_length=50)
    assignee: Assignee | None = None


class RuleRead(BaseModel):
    id: uuid.UUID
    name: str
    priority: int
    enabled: bool
    conditions: dict[str, Any]
    team: str
    case_priority: CasePriority
    add_tags: list[str]
    assignee: Any | None = Field(description='A literal, or {"from": "<field>"}.')
    version: int
    created_at: datetime
    updated_at: datetime


class RuleVersionRead(BaseModel):
    version: int
    change: str = Field(description="created, updated or deleted")
    rule: dict[str, Any] = Field(description="The whole rule as it stood after this change.")
    changed_by: str = Field(description="The name of the API key that made the change.")
    changed_at: datetime


class RuleRef(BaseModel):
    id: uuid.UUID
    name: str
    version: int


class TraceStep(BaseModel):
    rule_id: uuid.UUID
    name: str
    matched: bool
    failed_at: str | None = Field(
        description="Path of the condition that failed: `conditions.all[1].any`."
    )


class EvaluateOut(BaseModel):
    rule: RuleRef | None = Field(description="The rule that wins; null: the default team.")
    team: str | None
    case_priority: CasePriority
    assignee: str | None
    add_tags: list[str]
    routed: bool = Field(
        description="Whether this feedback would be routed at all: only negative feedback is."
    )
    sentiment: str
    sentiment_cues: list[str] = Field(
        description="What the classifier read in the comment, as in the feedback item."
    )
    category: str | None
    trace: list[TraceStep] = Field(description="Each enabled rule tried, in order, until one won.")


class BacktestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleCreate] = Field(max_length=5_000, description="The proposed rule table.")
    from_: Timestamp = Field(alias="from", description="Feedback submitted from (inclusive).")
    to: Timestamp = Field(description="Feedback submitted before (exclusive).")


class MovedItem(BaseModel):
    feedback_id: uuid.UUID
    submitted_at: datetime
    source: str
    from_team: str | None
    to_team: str | None
    from_rule: str | None = Field(description="The name of the rule in force that routes it.")
    to_rule: str | None = Field(description="The name of the proposed rule that would.")


class BacktestOut(BaseModel):
    negative_feedback: int = Field(description="Negative items in the range: the would-be cases.")
    current: dict[str, int] = Field(description="Cases per team under the rules in force.")
    proposed: dict[str, int] = Field(description="Cases per team under the proposed rules.")
    moved: int = Field(description="Items that would change team.")
    examples: list[MovedItem] = Field(description="Up to 20 items that would move.")
    complete: bool = Field(description="Every item of the range was routed.")
    stopped_by: Literal["max_rows", "max_seconds"] | None = Field(
        description="Why it stopped early: the item or the time limit; null when complete."
    )
    stopped_at: datetime | None = Field(
        description="When it stopped early: the submit time of the first item left out, so the "
        "figures cover [from, stopped_at); null when complete."
    )
