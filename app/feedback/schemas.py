"""Feedback as the API takes it and gives it back (SPEC §2)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.cases.schemas import CaseCustomer
from app.core.schemas import (
    LOCALE_PATTERN,
    SLUG_PATTERN,
    CustomerQuery,
    RangeFrom,
    RangeTo,
    ShortText,
    Tag,
    Timestamp,
    email_address,
    phone_number,
)
from app.core.vocabulary import SCALES, Category, Channel, JourneyStage, Metric, Sentiment

MAX_COMMENT_LENGTH = 10_000
MAX_TAGS = 50
MAX_ATTRIBUTES = 50
MAX_BATCH_ITEMS = 1_000


def _source(value: str) -> str:
    if len(value) > 64 or not re.match(SLUG_PATTERN, value):
        raise PydanticCustomError(
            "slug_invalid",
            "must be a slug: lowercase letters and digits, joined by - or _ (e.g. checkout-web)",
        )
    return value


SourceSlug = Annotated[StrictStr, AfterValidator(_source)]
ExternalId = ShortText


def _flat_value(value: Any) -> str | int | float | bool:
    if isinstance(value, str):
        if len(value) > 1000:
            raise PydanticCustomError("attribute_too_long", "at most 1,000 characters")
        return value
    if isinstance(value, bool | int | float):
        return value
    raise PydanticCustomError(
        "attribute_not_flat", "an attribute value is a string, a number or a boolean"
    )


AttributeValue = Annotated[Any, AfterValidator(_flat_value)]


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: ShortText | None = Field(default=None, description="Your id for the customer.")
    email: Annotated[StrictStr, AfterValidator(email_address)] | None = None
    phone: Annotated[StrictStr, AfterValidator(phone_number)] | None = None
    name: ShortText | None = None
    locale: Annotated[StrictStr, Field(pattern=LOCALE_PATTERN)] | None = None
    contact_consent: StrictBool = Field(
        default=True, description="May the customer be told the outcome? No means no notification."
    )
    signature: Annotated[StrictStr, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = Field(
        default=None,
        description="Hex HMAC-SHA256 of `external_id` under the source's identity secret "
        "(`POST /v1/sources/{source}/identity-secret`). Feedback sent with a publishable key "
        "carries a verified identity only with it.",
    )


class InReplyTo(BaseModel):
    """The follow-up link from a case.resolved webhook: this feedback answers that case."""

    model_config = ConfigDict(extra="forbid")

    case_id: uuid.UUID
    token: ShortText


class FeedbackContent(BaseModel):
    """What a piece of feedback says: the body of `PUT /v1/feedback/{source}/{external_id}`, and
    with its source and id the body of `POST /v1/feedback`."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    customer: Customer | None = None
    metric: Metric | None = None
    score: StrictInt | None = Field(
        default=None,
        validate_default=True,
        description="nps 0-10, csat 1-5, ces 1-7 (higher is easier), star 1-5.",
    )
    comment: Annotated[StrictStr, Field(max_length=MAX_COMMENT_LENGTH)] | None = Field(
        default=None, validate_default=True
    )
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    touchpoint: ShortText | None = None
    journey_stage: JourneyStage | None = None
    attributes: dict[Annotated[str, Field(min_length=1, max_length=100)], AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="A flat map of string to string, number or boolean.",
    )
    submitted_at: Timestamp | None = Field(
        default=None, description="When the customer gave it (RFC 3339); default: now."
    )

    @field_validator("score")
    @classmethod
    def _score_fits_metric(cls, score: int | None, info: ValidationInfo) -> int | None:
        if "metric" not in info.data:
            return score  # the metric itself failed; its error says so
        metric: Metric | None = info.data["metric"]
        if score is None:
            if metric is not None:
                raise PydanticCustomError("score_missing", "a metric needs a score")
            return None
        if metric is None:
            raise PydanticCustomError(
                "metric_missing", "a score needs a metric (nps, csat, ces, star)"
            )
        low, high = SCALES[metric]
        if not low <= score <= high:
            raise PydanticCustomError(
                "score_out_of_range",
                "{metric} scores run from {low} to {high}",
                {"metric": metric.value, "low": low, "high": high},
            )
        return score

    @field_validator("comment")
    @classmethod
    def _score_or_comment(cls, comment: str | None, info: ValidationInfo) -> str | None:
        has_comment = comment is not None and comment.strip() != ""
        if not has_comment and info.data.get("score") is None and "score" in info.data:
            raise PydanticCustomError("score_or_comment", "give a score, a comment, or both")
        return comment

    @field_validator("submitted_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # A time without a zone is taken as UTC: survey tools often send them so.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class FeedbackCreate(FeedbackContent):
    """One piece of feedback: a score, a comment, or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "source": "checkout-web",
                "channel": "web",
                "external_id": "resp-8812",
                "customer": {
                    "external_id": "cus_42",
                    "email": "ana@example.com",
                    "locale": "pt-BR",
                },
                "metric": "nps",
                "score": 3,
                "comment": "Entrega atrasada e ninguém respondeu",
                "tags": ["delivery"],
                "touchpoint": "order-tracking",
                "journey_stage": "delivery",
                "attributes": {"plan": "pro", "order_id": "A-1009"},
            }
        },
    )

    source: SourceSlug = Field(description="Where it came from, as a slug: `checkout-web`.")
    external_id: ExternalId | None = Field(
        default=None, description="Your id for this item; `(source, external_id)` is unique."
    )
    in_reply_to: InReplyTo | None = Field(
        default=None,
        description="The answer to a resolved case's follow-up question: it is added to that "
        "case (a negative answer reopens it) instead of opening a new one. The token works once.",
    )


# A case's customer under its own schema name, with `verified` described for one item (no
# docstring: it would become the schema's description and move the contract).
class CustomerRead(CaseCustomer):
    verified: bool = Field(
        description="False when a publishable key sent the identity unsigned: a claim, which "
        "joins no existing case and changes no contact."
    )


class RoutingRead(BaseModel):
    rule_id: uuid.UUID | None
    rule_version: int | None
    team: str


class CaseSummary(BaseModel):
    id: uuid.UUID
    number: str
    team: str
    status: str


class FeedbackRead(BaseModel):
    id: uuid.UUID
    source: str
    channel: Channel
    external_id: str | None
    customer: CustomerRead
    metric: Metric | None
    score: int | None
    comment: str | None
    tags: list[str]
    touchpoint: str | None
    journey_stage: JourneyStage | None
    attributes: dict[str, Any]
    category: Category | None = Field(description="Derived from the score; null without one.")
    sentiment: Sentiment
    sentiment_cues: list[str] = Field(
        description="What the classifier read in a comment without a score, `kind:term` in the "
        "order met: `praise:fast`, `negated praise:not good`, `criticism:late`, "
        "`complaint:refund`, `problem:stopped working`, `unmet:arrived` (an expectation "
        "negated), `negation:never`, `intensity:very`, `contrast:but`, `sarcasm:great`, "
        "`question:?`, `emoji:😡`; at most 12. Traditional Chinese is reported in simplified "
        "characters. Empty when a score gave the sentiment."
    )
    submitted_at: datetime
    received_at: datetime
    routing: RoutingRead | None = Field(
        description="Which rule sent it to which team; null unless the feedback is negative."
    )
    case: CaseSummary | None = Field(description="The case it opened or joined, if any.")


class FeedbackReplayed(BaseModel):
    """A replay seen by a key that may not read the item back: only its id."""

    id: uuid.UUID
    status: Literal["replayed"]


class IdentitySecretCreated(BaseModel):
    source: str
    secret: str = Field(
        description="Sign `customer.external_id` with it (hex HMAC-SHA256). Shown this once."
    )
    created_at: datetime
    previous_expires_at: datetime | None = Field(
        description="Until when the secret it replaced still verifies; null for a first one."
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH_ITEMS,
        description="Up to 1,000 feedback items, each as for `POST /v1/feedback`.",
    )


class BatchItemResult(BaseModel):
    status: Literal["created", "replayed", "error"]
    id: uuid.UUID | None = None
    problem: dict[str, Any] | None = Field(
        default=None, description="The item's error as a problem document."
    )


class BatchOut(BaseModel):
    results: list[BatchItemResult]


class EvaluateIn(FeedbackCreate):
    """A feedback body, as for `POST /v1/feedback`; nothing is stored."""


@dataclass(frozen=True, slots=True)
class FeedbackFilter:
    """What a list of feedback is narrowed to: the list route's query parameters (Depends()) and
    what reads.list_feedback takes."""

    source: str | None = None
    channel: Channel | None = None
    metric: Metric | None = None
    category: Category | None = None
    sentiment: Sentiment | None = None
    customer: CustomerQuery = None
    submitted_from: RangeFrom = None
    submitted_to: RangeTo = None
