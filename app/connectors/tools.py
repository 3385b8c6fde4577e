"""Each tool's payload, read into one shape: which response it is, in what state, and its
answers as flat `key -> value` fields, with what the tool's format says on its own (an NPS
question is an NPS question). What the format leaves open, the connector's mapping says
(app/connectors/mapping.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

import orjson

from app.connectors.signatures import Tool
from app.core.errors import BadRequest, FieldError, ValidationFailed
from app.feedback.schemas import Metric

MAX_DEPTH = 8


class State(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    PENDING = "pending"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class ScoreField:
    """Where the score is and how to read it."""

    metric: Metric
    key: str
    scale: tuple[int, int] | None = None
    # Good/bad: a CSAT on its own scale (good is 5, bad is 1; the rating itself is kept).
    binary: bool = False


@dataclass
class ToolEvent:
    response_id: str
    delivery_id: str | None
    state: State
    fields: dict[str, Any] = field(default_factory=dict)
    # The ids of the choices picked in a choice field, for mappings that score by choice id.
    choice_ids: dict[str, list[str]] = field(default_factory=dict)
    # What the tool's format says by itself: role (comment, email, ...) -> field key.
    roles: dict[str, str] = field(default_factory=dict)
    score: ScoreField | None = None
    submitted_at: Any = None
    note: str | None = None
    # Standard Webhooks deliveries carry feedback content as the API takes it.
    content: dict[str, Any] | None = None


def payload_problem(path: str, message: str, kind: str = "payload_invalid") -> ValidationFailed:
    return ValidationFailed(
        "The payload is not what the tool sends.",
        errors=[FieldError(field=path, message=message, type=kind)],
    )


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The body as a JSON object, a form (url-encoded or multipart) as a map of strings."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media == "application/x-www-form-urlencoded":
            return dict(parse_qsl(body.decode(), keep_blank_values=True))
        if media == "multipart/form-data":
            return _multipart(body, content_type)
        document = orjson.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            "The body cannot be read as the content type it names.", code="malformed_payload"
        ) from None
    if not isinstance(document, dict):
        raise payload_problem("body", "a JSON object")
    return document


def _multipart(body: bytes, content_type: str) -> dict[str, Any]:
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("not multipart")
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and part.get_filename() is None:
            content = part.get_payload(decode=True)
            form[name] = content.decode() if isinstance(content, bytes) else ""
    return form


def flatten(value: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """`{"person": {"email": x}}` -> `{"person.email": x}`; lists by index."""
    if depth > MAX_DEPTH:
        return {}
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value} if prefix else {}
    flat: dict[str, Any] = {}
    for key, inner in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(inner, dict | list):
            flat.update(flatten(inner, path, depth + 1))
        else:
            flat[path] = inner
    return flat


def _required(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict) or value.get(part) in (None, ""):
            raise payload_problem(path, "missing", "payload_field_missing")
        value = value[part]
    return value


def _object(document: dict[str, Any], path: str) -> dict[str, Any]:
    value = _required(document, path)
    if not isinstance(value, dict):
        raise payload_problem(path, "an object")
    return value


def _list(document: dict[str, Any], key: str, path: str) -> list[Any]:
    value = document.get(key) or []
    if not isinstance(value, list):
        raise payload_problem(path, "a list")
    return value


def _id(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise payload_problem(path, "an id (a string or a number)")
    text = str(value)
    if len(text) > 150:
        raise payload_problem(path, "at most 150 characters")
    return text


def read_event(tool: Tool, document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """The tool's payload in the one shape; a payload of the wrong shape is a 422 naming the
    field."""
    return _READERS[tool](document, headers)


def _standard(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """Our own format: `{"type": "feedback.submitted" | "feedback.updated" |
    "feedback.partial", "timestamp", "data": {feedback content with external_id}}`."""
    kind = _required(document, "type")
    data = _object(document, "data")
    states = {
        "feedback.submitted": State.COMPLETE,
        "feedback.updated": State.COMPLETE,
        "feedback.partial": State.PARTIAL,
    }
    if kind not in states:
        raise payload_problem("type", "one of " + ", ".join(states))
    content = {key: value for key, value in data.items() if key not in ("source", "external_id")}
    return ToolEvent(
        response_id=_id(data.get("external_id"), "data.external_id"),
        delivery_id=headers.get("webhook-id"),
        state=states[kind],
        content=content,
    )


def _typeform(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """`form_response` (finished) or `form_response_partial`: answers by field ref, hidden
    fields as `hidden.<name>`, variables as `variables.<key>`."""
    kind = _required(document, "event_type")
    if kind not in ("form_response", "form_response_partial"):
        return ToolEvent(_id(document.get("event_id"), "event_id"), None, State.IGNORED)
    response = _object(document, "form_response")
    event = ToolEvent(
        response_id=_id(
            response.get("token") or response.get("response_id"), "form_response.token"
        ),
        delivery_id=None if document.get("event_id") is None else str(document["event_id"]),
        state=State.COMPLETE if kind == "form_response" else State.PARTIAL,
        submitted_at=response.get("submitted_at") or response.get("landed_at"),
    )
    steps: dict[str, tuple[int, int]] = {}
    definition = response.get("definition")
    for spec in _list(definition if isinstance(definition, dict) else {}, "fields", "fields"):
        if isinstance(spec, dict) and isinstance(spec.get("properties"), dict):
            count = spec["properties"].get("steps")
            if isinstance(count, int) and not isinstance(count, bool):
                low = 0 if spec["properties"].get("start_at_one") is False else 1
                steps[str(spec.get("ref") or spec.get("id"))] = (low, low + count - 1)
    for index, answer in enumerate(_list(response, "answers", "form_response.answers")):
        path = f"form_response.answers[{index}]"
        if not isinstance(answer, dict) or not isinstance(answer.get("field"), dict):
            raise payload_problem(path, "an answer with its field")
        spec = answer["field"]
        key = str(spec.get("ref") or _id(spec.get("id"), f"{path}.field.id"))
        kind = answer.get("type")
        value = answer.get(kind) if isinstance(kind, str) else None
        if kind == "choice" and isinstance(value, dict):
            event.choice_ids[key] = [str(v) for v in (value.get("id"), value.get("ref")) if v]
            value = value.get("label") or value.get("other")
        elif kind == "choices" and isinstance(value, dict):
            event.choice_ids[key] = [str(v) for v in value.get("ids") or []]
            value = ", ".join(str(v) for v in value.get("labels") or [])
        event.fields[key] = value
        field_type = spec.get("type")
        if field_type == "nps" and event.score is None:
            event.score = ScoreField(Metric.NPS, key, (0, 10))
        elif field_type == "rating" and event.score is None:
            event.score = ScoreField(Metric.STAR, key, steps.get(key, (1, 5)))
        elif field_type == "long_text":
            event.roles.setdefault("comment", key)
        elif field_type == "email":
            event.roles.setdefault("email", key)
        elif field_type == "phone_number":
            event.roles.setdefault("phone", key)
    hidden = response.get("hidden")
    for name, value in (hidden if isinstance(hidden, dict) else {}).items():
        event.fields[f"hidden.{name}"] = value
    for variable in _list(response, "variables", "form_response.variables"):
        if isinstance(variable, dict) and "key" in variable:
            event.fields[f"variables.{variable['key']}"] = variable.get(
                variable.get("type", "text")
            )
    for role, names in _HIDDEN_ROLES.items():
        for name in names:
            if f"hidden.{name}" in event.fields:
                event.roles.setdefault(role, f"hidden.{name}")
    return event


_HIDDEN_ROLES = {
    "customer_id": ("customer_id", "user_id", "external_id"),
    "email": ("email",),
    "name": ("name",),
}

# Delighted's survey types: the metric, its scale, and whether it is good/bad.
_DELIGHTED = {
    "nps": (Metric.NPS, (0, 10), False),
    "enps": (Metric.NPS, (0, 10), False),
    "csat": (Metric.CSAT, (1, 5), False),
    "smileys": (Metric.CSAT, (1, 5), False),
    "ces": (Metric.CES, (1, 7), False),
    "5star": (Metric.STAR, (1, 5), False),
    "thumbs": (Metric.CSAT, (0, 1), True),
}


def _delighted(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """`survey_response.created` (a score, seldom a comment yet) and `survey_response.updated`
    (usually the comment): one response, updated in place."""
    kind = _required(document, "event_type")
    delivery = None if document.get("event_id") is None else str(document["event_id"])
    if kind not in ("survey_response.created", "survey_response.updated"):
        return ToolEvent(delivery or "-", delivery, State.IGNORED)
    data = _object(document, "event_data")
    event = ToolEvent(
        response_id=_id(data.get("id"), "event_data.id"),
        delivery_id=delivery,
        state=State.COMPLETE,
        fields=flatten(data),
        submitted_at=data.get("created_at"),
        roles={
            "comment": "comment",
            "email": "person.email",
            "name": "person.name",
            "phone": "person.phone_number",
        },
    )
    survey_type = data.get("survey_type") or "nps"
    if survey_type not in _DELIGHTED:
        raise payload_problem("event_data.survey_type", "one of " + ", ".join(_DELIGHTED))
    metric, scale, binary = _DELIGHTED[survey_type]
    event.score = ScoreField(metric, "score", scale, binary)
    return event


def _zendesk(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """The body of a Zendesk trigger's webhook action (docs/connectors.md gives the JSON to
    paste): the ticket's satisfaction rating, good or bad, and its comment. A rating that is
    only `offered` is the respondent not having answered yet."""
    fields = flatten(document)
    rating = str(_required(document, "rating")).strip().lower()
    if rating.startswith(("offered", "unoffered")):
        state = State.PARTIAL
    elif rating.startswith(("good", "bad")):
        state = State.COMPLETE
    else:
        raise payload_problem("rating", "good or bad (Zendesk's satisfaction rating)")
    return ToolEvent(
        response_id=_id(document.get("ticket_id"), "ticket_id"),
        delivery_id=headers.get("x-zendesk-webhook-invocation-id")
        or (None if document.get("id") is None else str(document["id"])),
        state=state,
        fields=fields,
        roles={
            "comment": "comment",
            "email": "requester_email",
            "customer_id": "requester_external_id",
            "name": "requester_name",
        },
        score=ScoreField(Metric.CSAT, "rating", None, binary=True),
        submitted_at=document.get("updated_at"),
    )


_TALLY_ROLES = {
    "TEXTAREA": "comment",
    "INPUT_EMAIL": "email",
    "INPUT_PHONE_NUMBER": "phone",
}


def _tally(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """`FORM_RESPONSE`: fields by key and by label; choices arrive as option ids."""
    kind = _required(document, "eventType")
    delivery = None if document.get("eventId") is None else str(document["eventId"])
    if kind != "FORM_RESPONSE":
        return ToolEvent(delivery or "-", delivery, State.IGNORED)
    data = _object(document, "data")
    event = ToolEvent(
        response_id=_id(data.get("responseId") or data.get("submissionId"), "data.responseId"),
        delivery_id=delivery,
        state=State.COMPLETE,
        submitted_at=data.get("createdAt") or document.get("createdAt"),
    )
    for index, spec in enumerate(_list(data, "fields", "data.fields")):
        path = f"data.fields[{index}]"
        if not isinstance(spec, dict):
            raise payload_problem(path, "a field")
        key = _id(spec.get("key"), f"{path}.key")
        value = spec.get("value")
        options = {
            str(o.get("id")): o.get("text")
            for o in spec.get("options") or []
            if isinstance(o, dict)
        }
        if isinstance(value, list) and options:
            event.choice_ids[key] = [str(v) for v in value]
            value = ", ".join(str(options.get(str(v), v)) for v in value)
        event.fields[key] = value
        label = spec.get("label")
        if isinstance(label, str) and label and label not in event.fields:
            event.fields[label] = value
            if key in event.choice_ids:
                event.choice_ids[label] = event.choice_ids[key]
        field_type = spec.get("type")
        if field_type == "RATING" and event.score is None:
            event.score = ScoreField(Metric.STAR, key, None)
        elif field_type in _TALLY_ROLES:
            event.roles.setdefault(_TALLY_ROLES[field_type], key)
        elif field_type == "HIDDEN_FIELDS" and label in _HIDDEN_ROLES["customer_id"]:
            event.roles.setdefault("customer_id", key)
    return event


_READERS = {
    Tool.STANDARD: _standard,
    Tool.TYPEFORM: _typeform,
    Tool.DELIGHTED: _delighted,
    Tool.ZENDESK: _zendesk,
    Tool.TALLY: _tally,
}
