"""Input PostgreSQL cannot take, refused before any route sees it, naming the field.

PostgreSQL text holds no NUL character, its JSON no lone surrogate, no NaN or Infinity, and its
integer columns no more than 64 bits. Pydantic checks the fields it types; free-form values
(attributes, rule conditions, batch items) would reach the database unchecked, and a query
string or a path segment the same. The request gate (app/core/http.py) answers such a request
with a 422 naming the field (`items[3].comment`, `assignee`) before the route runs.

A JSON body is walked only when its bytes could hold such a value (a `\\u0000` or surrogate
escape, `NaN`, `Infinity`, a long run of digits, a large exponent): ordinary bodies pass after
a few byte scans, so ingest pays next to nothing.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from app.core.errors import (
    FieldError,
    ValidationFailed,
    path_templates,
    problem_response,
)

INT64 = (-(2**63), 2**63 - 1)
MAX_FIELD_ERRORS = 20
_ESCAPES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")  # NUL, and either half of a surrogate
# Digits as 0, exponent marks as e, signs as +, the rest as spaces: then a 64-bit overflow is a
# run of 19 zeros and a float overflow an e with three digits, found with `in` (no regular
# expression over every byte: this runs on every ingest).
_NUMBER_SHAPES = bytes(
    ord("0") if c in b"0123456789" else ord("e") if c in b"eE" else ord("+") if c in b"+-" else 32
    for c in range(256)
)


def unstorable(value: str) -> str | None:
    """Why PostgreSQL cannot store this text, or None."""
    if "\x00" in value:
        return "NUL characters are not allowed"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogates are not allowed"
    return None


def json_problems(document: Any, path: str = "") -> list[FieldError]:
    """Every value in a parsed JSON document that PostgreSQL cannot store, by field path."""
    problems: list[FieldError] = []

    def add(where: str, message: str, kind: str) -> None:
        if len(problems) < MAX_FIELD_ERRORS:
            problems.append(FieldError(field=where or "body", message=message, type=kind))

    # Iterative, so a deep document costs no Python stack.
    stack: list[tuple[str, Any]] = [(path, document)]
    while stack and len(problems) < MAX_FIELD_ERRORS:
        where, value = stack.pop()
        if isinstance(value, str):
            reason = unstorable(value)
            if reason:
                add(where, reason, "string_unstorable")
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT64[0] <= value <= INT64[1]:
                add(where, "integers are at most 64 bits", "int_too_large")
        elif isinstance(value, float):
            if not math.isfinite(value):
                add(where, "numbers are finite (no NaN, no Infinity)", "float_not_finite")
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                reason = unstorable(key)
                child = f"{where}.{key}" if where else key
                if reason:
                    add(f"{where}.[key]" if where else "[key]", reason, "key_unstorable")
                    continue
                stack.append((child, item))
        elif isinstance(value, list):
            for index in reversed(range(len(value))):
                stack.append((f"{where}[{index}]", value[index]))
    return problems


def parameter_problems(scope: Scope) -> list[FieldError]:
    """NUL in the query string or in a path segment (lone surrogates cannot arrive there: the
    bytes are decoded as UTF-8 with replacement, or as Latin-1)."""
    problems = []
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                problems.append(
                    FieldError(
                        field=name.replace("\x00", "\ufffd"),
                        message="NUL characters are not allowed",
                        type="string_unstorable",
                    )
                )
    if "\x00" in scope["path"]:
        problems.append(
            FieldError(
                field=_path_parameter(scope),
                message="NUL characters are not allowed",
                type="string_unstorable",
            )
        )
    return problems


def _path_parameter(scope: Scope) -> str:
    """The name of the path parameter that holds the NUL."""
    segments = scope["path"].split("/")
    for template in path_templates(scope["app"], scope["path"]):
        for name, segment in zip(template.split("/"), segments, strict=True):
            if "\x00" in segment:
                return name.strip("{}")
    return "path"


def storage_problems(body: bytes) -> list[FieldError]:
    """The values of a JSON body PostgreSQL cannot store (none for a body that is not JSON: the
    route answers that, as it does for any body)."""
    if not _suspect(body):
        return []
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []
    return json_problems(document)


def _suspect(body: bytes) -> bool:
    """Whether the body could hold a value PostgreSQL cannot store (false alarms cost a walk)."""
    if b"NaN" in body or b"Infinity" in body:
        return True
    if b"\\u" in body and _ESCAPES.search(body) is not None:
        return True
    shapes = body.translate(_NUMBER_SHAPES)
    return b"0" * 19 in shapes or b"e000" in shapes or b"e+000" in shapes


async def refuse(problems: list[FieldError], scope: Scope, receive: Receive, send: Send) -> None:
    error = ValidationFailed("Some values cannot be stored.", errors=problems)
    await problem_response(error.to_problem(scope["path"]))(scope, receive, send)
