"""Each tool's reader: its documented payload into a ToolEvent (app/connectors/events.py)."""

from __future__ import annotations

from typing import Any

import orjson

from app.connectors.events import (
    ScoreField,
    State,
    ToolEvent,
    an_id,
    flatten,
    list_at,
    object_at,
    payload_problem,
    required,
)
from app.connectors.signatures import Tool
from app.core.vocabulary import Metric


def read_event(tool: Tool, document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """The tool's payload in the one shape; a payload of the wrong shape is a 422 naming the
    field."""
    return _READERS[tool](document, headers)


def _standard(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """Our own format: `{"type": "feedback.submitted" | "feedback.updated" |
    "feedback.partial", "timestamp", "data": {feedback content with external_id}}`."""
    kind = required(document, "type")
    data = object_at(document, "data")
    states = {
        "feedback.submitted": State.COMPLETE,
        "feedback.updated": State.COMPLETE,
        "feedback.partial": State.PARTIAL,
    }
    if kind not in states:
        raise payload_problem("type", "one of " + ", ".join(states))
    content = {key: value for key, value in data.items() if key not in ("source", "external_id")}
    return ToolEvent(
        response_id=an_id(data.get("external_id"), "data.external_id"),
        delivery_id=headers.get("webhook-id"),
        state=states[kind],
        content=content,
        version_at=document.get("timestamp"),
    )


def _typeform(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """`form_response` (finished) or `form_response_partial`: answers by field ref, hidden
    fields as `hidden.<name>`, variables as `variables.<key>`."""
    kind = required(document, "event_type")
    if kind not in ("form_response", "form_response_partial"):
        return ToolEvent(an_id(document.get("event_id"), "event_id"), None, State.IGNORED)
    response = object_at(document, "form_response")
    event = ToolEvent(
        response_id=an_id(
            response.get("token") or response.get("response_id"), "form_response.token"
        ),
        delivery_id=None if document.get("event_id") is None else str(document["event_id"]),
        state=State.COMPLETE if kind == "form_response" else State.PARTIAL,
        submitted_at=response.get("submitted_at") or response.get("landed_at"),
    )
    steps: dict[str, tuple[int, int]] = {}
    definition = response.get("definition")
    for spec in list_at(definition if isinstance(definition, dict) else {}, "fields", "fields"):
        if isinstance(spec, dict) and isinstance(spec.get("properties"), dict):
            count = spec["properties"].get("steps")
            if isinstance(count, int) and not isinstance(count, bool):
                low = 0 if spec["properties"].get("start_at_one") is False else 1
                steps[str(spec.get("ref") or spec.get("id"))] = (low, low + count - 1)
    for index, answer in enumerate(list_at(response, "answers", "form_response.answers")):
        path = f"form_response.answers[{index}]"
        if not isinstance(answer, dict) or not isinstance(answer.get("field"), dict):
            raise payload_problem(path, "an answer with its field")
        spec = answer["field"]
        key = str(spec.get("ref") or an_id(spec.get("id"), f"{path}.field.id"))
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
            event.typed("comment", key)
        elif field_type == "email":
            event.typed("email", key)
        elif field_type == "phone_number":
            event.typed("phone", key)
    hidden = response.get("hidden")
    for name, value in (hidden if isinstance(hidden, dict) else {}).items():
        event.fields[f"hidden.{name}"] = value
    for variable in list_at(response, "variables", "form_response.variables"):
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
    kind = required(document, "event_type")
    delivery = None if document.get("event_id") is None else str(document["event_id"])
    if kind not in ("survey_response.created", "survey_response.updated"):
        return ToolEvent(delivery or "-", delivery, State.IGNORED)
    data = object_at(document, "event_data")
    event = ToolEvent(
        response_id=an_id(data.get("id"), "event_data.id"),
        delivery_id=delivery,
        state=State.COMPLETE,
        fields=flatten(data),
        submitted_at=data.get("created_at"),
        version_at=data.get("updated_at"),
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
    rating = str(required(document, "rating")).strip().lower()
    if rating.startswith(("offered", "unoffered")):
        state = State.PARTIAL
    elif rating.startswith(("good", "bad")):
        state = State.COMPLETE
    else:
        raise payload_problem("rating", "good or bad (Zendesk's satisfaction rating)")
    return ToolEvent(
        response_id=an_id(document.get("ticket_id"), "ticket_id"),
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
        version_at=document.get("updated_at"),
    )


_TALLY_ROLES = {
    "TEXTAREA": "comment",
    "INPUT_EMAIL": "email",
    "INPUT_PHONE_NUMBER": "phone",
}


def _tally(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """`FORM_RESPONSE`: fields by key and by label; choices arrive as option ids."""
    kind = required(document, "eventType")
    delivery = None if document.get("eventId") is None else str(document["eventId"])
    if kind != "FORM_RESPONSE":
        return ToolEvent(delivery or "-", delivery, State.IGNORED)
    data = object_at(document, "data")
    event = ToolEvent(
        response_id=an_id(data.get("responseId") or data.get("submissionId"), "data.responseId"),
        delivery_id=delivery,
        state=State.COMPLETE,
        submitted_at=data.get("createdAt") or document.get("createdAt"),
    )
    for index, spec in enumerate(list_at(data, "fields", "data.fields")):
        path = f"data.fields[{index}]"
        if not isinstance(spec, dict):
            raise payload_problem(path, "a field")
        key = an_id(spec.get("key"), f"{path}.key")
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
            event.typed(_TALLY_ROLES[field_type], key)
        elif field_type == "HIDDEN_FIELDS" and label in _HIDDEN_ROLES["customer_id"]:
            event.roles.setdefault("customer_id", key)
    return event


_SURVEYMONKEY_RESPONSE_EVENTS = (
    "response_created",
    "response_updated",
    "response_completed",
)


def _surveymonkey(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """SurveyMonkey's callbacks name the response and nothing of its answers: pending."""
    kind = required(document, "event_type")
    delivery = None if document.get("event_id") is None else str(document["event_id"])
    if kind not in _SURVEYMONKEY_RESPONSE_EVENTS:
        return ToolEvent(delivery or "-", delivery, State.IGNORED)
    return ToolEvent(
        response_id=an_id(document.get("object_id"), "object_id"),
        delivery_id=delivery,
        state=State.PENDING,
        fields=flatten(document),
    )


# What a Qualtrics event subscription posts: ids and a status, no answers.
_QUALTRICS_ID_KEYS = frozenset(
    {"Topic", "Status", "SurveyID", "ResponseID", "CompletedDate", "BrandID", "ResponseEventId"}
)


def _qualtrics(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """An event subscription's form (ids only: pending), or the JSON of a workflow's web
    service task, which carries the answers you put in it."""
    response_id = an_id(document.get("ResponseID") or document.get("responseId"), "ResponseID")
    if set(document) <= _QUALTRICS_ID_KEYS:
        return ToolEvent(response_id, None, State.PENDING, fields=dict(document))
    return ToolEvent(
        response_id=response_id,
        delivery_id=None,
        state=State.COMPLETE,
        fields=flatten(document),
        submitted_at=document.get("EndDate") or document.get("RecordedDate"),
        roles={"email": "RecipientEmail", "customer_id": "ExternalReference"},
    )


def _jotform(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """A multipart form whose `rawRequest` is the answers as a JSON string (`q3_name` keys)."""
    raw_request = required(document, "rawRequest")
    try:
        answers = orjson.loads(raw_request)
    except (orjson.JSONDecodeError, TypeError):
        raise payload_problem("rawRequest", "a JSON object, as a string") from None
    if not isinstance(answers, dict):
        raise payload_problem("rawRequest", "a JSON object, as a string")
    fields = {
        key: value
        for key, value in document.items()
        if key not in ("rawRequest", "pretty") and isinstance(value, str)
    }
    fields.update(flatten(answers))
    event = ToolEvent(
        response_id=an_id(document.get("submissionID"), "submissionID"),
        delivery_id=None,
        state=State.COMPLETE,
        fields=fields,
    )
    for key in answers:
        name = key.split("_", 1)[-1].lower()
        if "email" in name or "e-mail" in name:
            event.typed("email", key)
    return event


_FORMBRICKS_EVENTS = ("responseCreated", "responseUpdated", "responseFinished")


def _formbricks(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """`responseCreated` / `responseUpdated` while unfinished (partial), `responseFinished`;
    answers by question id, the contact's attributes as `contactAttributes.<key>`."""
    kind = required(document, "event")
    delivery = headers.get("webhook-id")
    if kind not in _FORMBRICKS_EVENTS:
        return ToolEvent(delivery or "-", delivery, State.IGNORED)
    data = object_at(document, "data")
    answers = data.get("data") or {}
    if not isinstance(answers, dict):
        raise payload_problem("data.data", "the answers, by question id")
    fields = {key: value for key, value in answers.items() if not isinstance(value, dict)}
    for part in ("contactAttributes", "meta", "contact"):
        if isinstance(data.get(part), dict):
            fields.update(flatten(data[part], part))
    finished = data.get("finished") is True or kind == "responseFinished"
    return ToolEvent(
        response_id=an_id(data.get("id"), "data.id"),
        delivery_id=delivery,
        state=State.COMPLETE if finished else State.PARTIAL,
        fields=fields,
        submitted_at=data.get("updatedAt") or data.get("createdAt"),
        version_at=data.get("updatedAt"),
        roles={"email": "contactAttributes.email", "customer_id": "contactAttributes.userId"},
    )


def _google_forms(document: dict[str, Any], headers: dict[str, str]) -> ToolEvent:
    """What the Apps Script in docs/connectors.md posts on each form submit: `responseId`,
    `timestamp`, `respondentEmail` and `answers` by question title."""
    answers = document.get("answers")
    if not isinstance(answers, dict):
        raise payload_problem("answers", "the answers, by question title")
    fields = {
        str(title): ", ".join(str(v) for v in value) if isinstance(value, list) else value
        for title, value in answers.items()
    }
    fields["respondentEmail"] = document.get("respondentEmail")
    event = ToolEvent(
        response_id=an_id(document.get("responseId"), "responseId"),
        delivery_id=None,
        state=State.COMPLETE,
        fields=fields,
        submitted_at=document.get("timestamp"),
    )
    # Typed by the respondent unless the form collects verified (signed-in) addresses, which
    # the post does not say: a mapping that names `respondentEmail` vouches for it.
    event.typed("email", "respondentEmail")
    return event


_READERS = {
    Tool.STANDARD: _standard,
    Tool.TYPEFORM: _typeform,
    Tool.DELIGHTED: _delighted,
    Tool.ZENDESK: _zendesk,
    Tool.TALLY: _tally,
    Tool.SURVEYMONKEY: _surveymonkey,
    Tool.QUALTRICS: _qualtrics,
    Tool.JOTFORM: _jotform,
    Tool.FORMBRICKS: _formbricks,
    Tool.GOOGLE_FORMS: _google_forms,
}
