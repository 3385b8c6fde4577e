"""Checking a condition tree on write (SPEC §3): every problem reported with a path into the
tree (`conditions.all[2].any[0].op`), so a client can point at it."""

from __future__ import annotations

from typing import Any

import re2

from app.core.errors import FieldError
from app.routing.conditions import (
    ALL_OPERATORS,
    ANY,
    BOOL,
    ENUM,
    ENUM_VALUES,
    LIST,
    MAX_DEPTH,
    MAX_LIST_VALUES,
    MAX_NODES,
    MAX_PATTERN_LENGTH,
    NUMBER,
    OPERATORS,
    TEXT,
    TIME,
    compile_pattern,
    field_kind,
    is_number,
    order_key,
    parse_time,
)


class _Validator:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.nodes = 0

    def error(self, path: str, message: str, kind: str) -> None:
        self.errors.append(FieldError(field=path, message=message, type=kind))

    def node(self, node: Any, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes == MAX_NODES + 1:
            self.error(path, f"a rule has at most {MAX_NODES} conditions", "too_many_conditions")
        if depth > MAX_DEPTH:
            self.error(path, f"conditions nest at most {MAX_DEPTH} deep", "too_deep")
            return
        if not isinstance(node, dict):
            self.error(path, "a condition is an object", "condition_type")
            return
        groups = [k for k in ("all", "any", "not") if k in node]
        if groups:
            if len(node) != 1:
                self.error(path, f"`{groups[0]}` stands alone in its object", "condition_shape")
                return
            key = groups[0]
            if key == "not":
                self.node(node["not"], f"{path}.not", depth + 1)
                return
            children = node[key]
            if not isinstance(children, list):
                self.error(f"{path}.{key}", "a list of conditions", "condition_type")
                return
            for i, child in enumerate(children):
                self.node(child, f"{path}.{key}[{i}]", depth + 1)
            return
        self.leaf(node, path)

    def leaf(self, node: dict[str, Any], path: str) -> None:
        unknown = set(node) - {"field", "op", "value"}
        for key in sorted(unknown):
            self.error(f"{path}.{key}", "unknown key; expected field, op and value", "unknown_key")
        field, op = node.get("field"), node.get("op")
        if not isinstance(field, str):
            self.error(f"{path}.field", "a field name is required", "field_missing")
            return
        kind = field_kind(field)
        if kind is None:
            self.error(f"{path}.field", f"unknown field `{field}`", "unknown_field")
            return
        if not isinstance(op, str) or op not in ALL_OPERATORS:
            self.error(f"{path}.op", f"unknown operator `{op}`", "unknown_operator")
            return
        if op not in OPERATORS[kind]:
            self.error(f"{path}.op", f"`{op}` does not apply to `{field}`", "operator_mismatch")
            return
        if op == "exists":
            if "value" in node and not isinstance(node["value"], bool):
                self.error(f"{path}.value", "true or false", "value_type")
            return
        if "value" not in node:
            self.error(f"{path}.value", "a value is required", "value_missing")
            return
        self.value(field, kind, op, node["value"], f"{path}.value")

    def value(self, field: str, kind: str, op: str, value: Any, path: str) -> None:
        if op in ("in", "not_in", "contains_any", "contains_all", "has_any", "has_all"):
            if not isinstance(value, list) or not value:
                self.error(path, "a non-empty list", "value_type")
                return
            if len(value) > MAX_LIST_VALUES:
                self.error(path, f"at most {MAX_LIST_VALUES} values", "too_many_values")
                return
            scalar_op = "eq" if op in ("in", "not_in") else "contains"
            for i, item in enumerate(value):
                self.scalar(field, kind, scalar_op, item, f"{path}[{i}]")
        elif op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.error(path, "a list of two bounds, [low, high]", "value_type")
                return
            errors_before = len(self.errors)
            for i, bound in enumerate(value):
                self.scalar(field, kind, "lt", bound, f"{path}[{i}]")
            bounds_valid = len(self.errors) == errors_before
            if bounds_valid and order_key(kind, value[0]) > order_key(kind, value[1]):
                self.error(path, "the low bound is above the high bound", "value_range")
        elif op == "matches":
            self.pattern(value, path)
        else:
            self.scalar(field, kind, op, value, path)

    def scalar(self, field: str, kind: str, op: str, value: Any, path: str) -> None:
        if op in ("lt", "lte", "gt", "gte"):
            if kind == TIME:
                if not isinstance(value, str) or parse_time(value) is None:
                    self.error(path, "an RFC 3339 time", "value_type")
            elif not is_number(value):
                self.error(path, "a number", "value_type")
            return
        if op == "contains" or kind in (TEXT, LIST):
            if not isinstance(value, str) or not value:
                self.error(path, "a non-empty string", "value_type")
        elif kind == ENUM:
            if not isinstance(value, str) or value not in ENUM_VALUES[field]:
                allowed = ", ".join(sorted(ENUM_VALUES[field]))
                self.error(path, f"one of {allowed}", "value_enum")
        elif kind == NUMBER:
            if not is_number(value):
                self.error(path, "a number", "value_type")
        elif kind == BOOL:
            if not isinstance(value, bool):
                self.error(path, "true or false", "value_type")
        elif kind == ANY and not (isinstance(value, str | bool) or is_number(value)):
            self.error(path, "a string, a number or a boolean", "value_type")

    def pattern(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or not value:
            self.error(path, "a regular expression", "value_type")
        elif len(value) > MAX_PATTERN_LENGTH:
            self.error(path, f"at most {MAX_PATTERN_LENGTH} characters", "pattern_too_long")
        else:
            try:
                compile_pattern(value)
            except re2.error:
                self.error(path, "not a regular expression RE2 can compile", "pattern_invalid")


def validate(conditions: Any, path: str = "conditions") -> list[FieldError]:
    """Every problem in a condition tree, each with its path; empty when it is valid."""
    validator = _Validator()
    validator.node(conditions, path, 1)
    return validator.errors
