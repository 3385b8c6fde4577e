"""A connector's mapping (what a tool's payload does not say) and the reading of a tool's
event into a feedback body, as `POST /v1/feedback` takes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from app.connectors.events import ScoreField, ToolEvent, payload_problem
from app.connectors.signatures import Tool
from app.core.errors import ValidationFailed
from app.core.vocabulary import SCALES, Channel, JourneyStage, Metric
from app.feedback.schemas import MAX_ATTRIBUTES

FieldKey = Annotated[str, Field(min_length=1, max_length=200)]

# Where each tool's respondents answer, unless the mapping says otherwise.
DEFAULT_CHANNELS = {
    Tool.DELIGHTED: Channel.EMAIL,
    Tool.ZENDESK: Channel.EMAIL,
}
_GOOD = frozenset({"1", "true", "yes", "up", "thumbs_up", "positive"})
_BAD = frozenset({"0", "false", "no", "down", "thumbs_down", "negative"})


class MappingSet(BaseModel):
    """Values every item of the connector gets, whatever the payload says."""

    model_config = ConfigDict(extra="forbid")

    touchpoint: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    journey_stage: JourneyStage | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20
    )


class ConnectorMapping(BaseModel):
    """Which field of the tool's payload is what. Field keys are the tool's own (a Typeform
    field's `ref`, a Tally field's key or label, a Jotform `q3_name`; nested values by dotted
    path: `person.email`, `hidden.customer_id`)."""

    model_config = ConfigDict(extra="forbid")

    metric: Metric | None = Field(
        default=None, description="The metric of the score field (with `field`)."
    )
    field: FieldKey | None = Field(default=None, description="The field holding the score.")
    scale: list[StrictInt] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="[low, high] of the question as asked, e.g. [1, 10]; scores are checked "
        "against it and stored on the metric's own scale (the raw score is kept in attributes).",
    )
    choices: dict[Annotated[str, Field(max_length=200)], StrictInt] | None = Field(
        default=None,
        max_length=100,
        description="Choice id or label -> score, for scores asked as choices.",
    )
    binary: StrictBool = Field(
        default=False, description="The score is good/bad: a CSAT on its own scale."
    )
    comment: FieldKey | None = None
    customer_id: FieldKey | None = None
    email: FieldKey | None = None
    phone: FieldKey | None = None
    name: FieldKey | None = None
    locale: FieldKey | None = None
    touchpoint: FieldKey | None = None
    journey_stage: FieldKey | None = None
    submitted_at: FieldKey | None = Field(
        default=None, description="The field holding the answer's time (else the tool's)."
    )
    response_id: FieldKey | None = Field(
        default=None,
        description="For `closeloop import`: the column holding the tool's response id.",
    )
    attributes: list[FieldKey] = Field(default_factory=list, max_length=MAX_ATTRIBUTES - 5)
    channel: Channel | None = None
    set: MappingSet = Field(default_factory=MappingSet)

    @model_validator(mode="after")
    def _coherent(self) -> ConnectorMapping:
        if self.field is not None and self.metric is None and not self.binary:
            raise ValueError("a score `field` needs its `metric`")
        if self.scale is not None and self.scale[0] >= self.scale[1]:
            raise ValueError("`scale` is [low, high] with low < high")
        return self


def _score_field(event: ToolEvent, mapping: ConnectorMapping) -> ScoreField | None:
    default = event.score
    if mapping.field is not None:
        metric = mapping.metric or Metric.CSAT
        scale = tuple(mapping.scale) if mapping.scale else None
        return ScoreField(metric, mapping.field, scale, mapping.binary)  # type: ignore[arg-type]
    if default is None:
        return None
    return ScoreField(
        mapping.metric or default.metric,
        default.key,
        tuple(mapping.scale) if mapping.scale else default.scale,  # type: ignore[arg-type]
        default.binary or mapping.binary,
    )


def _problem(key: str, message: str, kind: str) -> ValidationFailed:
    return payload_problem(key, message, kind)


def read_score(
    event: ToolEvent, spec: ScoreField, choices: dict[str, int] | None
) -> tuple[Metric, int, dict[str, Any]] | None:
    """The score as the metric's own scale has it, and what to keep of the raw answer; None
    when the question was not answered. 0 is a score."""
    raw = event.fields.get(spec.key)
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    if spec.binary:
        text = str(raw).strip().lower()
        if raw is True or text in _GOOD or text.startswith("good"):
            return Metric.CSAT, 5, {"rating": "good", "score_scale": "good/bad"}
        if raw is False or text in _BAD or text.startswith("bad"):
            return Metric.CSAT, 1, {"rating": "bad", "score_scale": "good/bad"}
        raise _problem(spec.key, f"`{raw}` is neither good nor bad", "rating_invalid")
    value = None
    if choices:
        for candidate in [*event.choice_ids.get(spec.key, []), str(raw).strip()]:
            if candidate in choices:
                value = choices[candidate]
                break
    if value is None:
        value = _number(raw)
    if value is None:
        raise _problem(
            spec.key,
            f"`{str(raw)[:50]}` is not a score: a whole number, or a choice the mapping's "
            "`choices` lists",
            "score_not_a_number",
        )
    canonical = SCALES[spec.metric]
    low, high = spec.scale or canonical
    if not low <= value <= high:
        hint = "" if spec.scale else " (no scale is configured: set `scale` in the mapping)"
        raise _problem(
            spec.key,
            f"{spec.metric.value} scores here run from {low} to {high}; {value} is outside" + hint,
            "score_out_of_range",
        )
    if (low, high) == canonical:
        return spec.metric, value, {}
    c_low, c_high = canonical
    scaled = round(c_low + (value - low) * (c_high - c_low) / (high - low))
    return spec.metric, scaled, {"score_raw": value, "score_scale": f"{low}-{high}"}


def _number(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            number = float(text)
        except ValueError:
            # "4 - Satisfied": a label that starts with its number. Decimal digits only:
            # "²" is a digit to str.isdigit but no number to int().
            head = text.split(" ", 1)[0]
            return int(head) if head.isdecimal() else None
        return int(number) if number.is_integer() else None
    return None


def read_time(raw: Any, key: str) -> tuple[datetime | None, bool]:
    """A tool's time (ISO 8601, or Unix seconds); the flag says it had no zone (read as
    UTC)."""
    if raw is None or raw == "":
        return None, False
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            return datetime.fromtimestamp(raw, UTC), False
        except (OverflowError, OSError, ValueError):
            raise _problem(key, "Unix seconds within the years 1 to 9999", "time_invalid") from None
    if isinstance(raw, str):
        try:
            at = datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
        except ValueError:
            pass
        else:
            if at.tzinfo is None:
                return at.replace(tzinfo=UTC), True
            return at, False
    raise _problem(key, "a time: ISO 8601 (RFC 3339) or Unix seconds", "time_invalid")


def _text(event: ToolEvent, key: str | None) -> str | None:
    if key is None:
        return None
    value = event.fields.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def external_id_of(tool: Tool | None, response_id: str) -> str:
    """One response is one item: the tool's response id, named by its tool (a file import
    with no connector, and our own Standard Webhooks, use the id as it is)."""
    if tool is None or tool is Tool.STANDARD:
        return response_id
    return f"{tool.value}:{response_id}"


def identity_claimed(event: ToolEvent, mapping: ConnectorMapping) -> bool:
    """Whether the item names a customer by an identity the respondent typed (a form's e-mail
    question), which the mapping did not vouch for by naming that field itself."""
    return any(
        getattr(mapping, role) is None and _text(event, event.roles.get(role)) is not None
        for role in event.claimed
    )


def feedback_body(
    event: ToolEvent, mapping: ConnectorMapping, *, tool: Tool | None, source: str
) -> dict[str, Any]:
    """The item the event says, as a `POST /v1/feedback` body (validated by the caller)."""
    external_id = external_id_of(tool, event.response_id)
    if event.content is not None:
        return {**event.content, "source": source, "external_id": external_id}
    roles = {**event.roles}
    for role in ("comment", "customer_id", "email", "phone", "name", "locale"):
        chosen = getattr(mapping, role)
        if chosen is not None:
            roles[role] = chosen
    attributes: dict[str, Any] = {}
    body: dict[str, Any] = {
        "source": source,
        "external_id": external_id,
        "channel": (
            mapping.channel or (DEFAULT_CHANNELS.get(tool, Channel.WEB) if tool else Channel.WEB)
        ).value,
        "comment": _text(event, roles.get("comment")),
        "tags": list(mapping.set.tags),
    }
    spec = _score_field(event, mapping)
    if spec is not None:
        read = read_score(event, spec, mapping.choices)
        if read is not None:
            body["metric"], body["score"], kept = read
            attributes.update(kept)
    customer = {
        "external_id": _text(event, roles.get("customer_id")),
        "email": _text(event, roles.get("email")),
        "phone": _text(event, roles.get("phone")),
        "name": _text(event, roles.get("name")),
        "locale": _text(event, roles.get("locale")),
    }
    customer = {key: value[:200] for key, value in customer.items() if value is not None}
    if customer:
        body["customer"] = customer
    touchpoint = _text(event, mapping.touchpoint) or mapping.set.touchpoint
    if touchpoint is not None:
        body["touchpoint"] = touchpoint[:200]
    stage = _text(event, mapping.journey_stage)
    if stage is not None:
        body["journey_stage"] = stage.lower()
    elif mapping.set.journey_stage is not None:
        body["journey_stage"] = mapping.set.journey_stage.value
    for key in mapping.attributes:
        value = event.fields.get(key)
        if isinstance(value, str | int | float | bool):
            attributes[key.rsplit(".", 1)[-1][:100]] = (
                value[:1000] if isinstance(value, str) else value
            )
    if mapping.submitted_at is not None:
        submitted_at, zoneless = read_time(
            event.fields.get(mapping.submitted_at), mapping.submitted_at
        )
    else:
        submitted_at, zoneless = read_time(event.submitted_at, "submitted_at")
    if submitted_at is not None:
        body["submitted_at"] = submitted_at.isoformat()
    if zoneless:
        attributes["time_zone_assumed"] = "UTC"
    body["attributes"] = attributes
    return body
