"""A tool's payload read into one shape: which response it is, in what state, and its
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

from app.core.errors import BadRequest, FieldError, ValidationFailed
from app.core.vocabulary import Metric

MAX_DEPTH = 8
# The identities an answer can claim (a typed name links nothing).
TYPED_IDENTITIES = frozenset({"customer_id", "email", "phone"})


class State(StrEnum):
    """Where a tool's response stands: complete is stored as feedback; partial is kept with no
    feedback until the finished event; pending carried only ids (the answers are in the tool's
    API); ignored is an event with no answer in it (a test ping, a form change)."""

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
    # Roles whose field is an identity the respondent typed into the form (an e-mail question):
    # a claim anyone can make, unlike one the tool knows (the survey's recipient, a hidden
    # field the company set), so the item is stored as unverified (app/feedback/identity.py).
    claimed: set[str] = field(default_factory=set)
    score: ScoreField | None = None
    submitted_at: Any = None
    # When the tool last changed the response, for tools that say (Delighted's and Zendesk's
    # `updated_at`, Formbricks' `updatedAt`, a Standard Webhooks `timestamp`): an event older
    # than the version stored arrived late, out of order, and changes nothing.
    version_at: Any = None
    note: str | None = None
    # Standard Webhooks deliveries carry feedback content as the API takes it.
    content: dict[str, Any] | None = None

    def typed(self, role: str, key: str) -> None:
        """The answer under `key` holds `role` (unless another field already does), as the
        respondent typed it: an identity there is a claim."""
        if role in self.roles:
            return
        self.roles[role] = key
        if role in TYPED_IDENTITIES:
            self.claimed.add(role)


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


def required(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict) or value.get(part) in (None, ""):
            raise payload_problem(path, "missing", "payload_field_missing")
        value = value[part]
    return value


def object_at(document: dict[str, Any], path: str) -> dict[str, Any]:
    value = required(document, path)
    if not isinstance(value, dict):
        raise payload_problem(path, "an object")
    return value


def list_at(document: dict[str, Any], key: str, path: str) -> list[Any]:
    value = document.get(key) or []
    if not isinstance(value, list):
        raise payload_problem(path, "a list")
    return value


def an_id(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise payload_problem(path, "an id (a string or a number)")
    text = str(value)
    if len(text) > 150:
        raise payload_problem(path, "at most 150 characters")
    return text
