"""The condition language of routing rules (SPEC §3): validated on write, compiled once.

A condition is a JSON tree: `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}` or a leaf
`{"field": ..., "op": ..., "value": ...}`. `validate` (app/routing/validation.py) checks a
tree and reports every problem with a path into it (`conditions.all[2].any[0].op`);
`compile_conditions` turns a valid tree into a closure that answers None when the tree holds
for an item, else the path of the condition that failed. The same closure serves routing at
ingest and the trace of /evaluate, so the two cannot disagree.

Text is compared folded (Unicode NFKC, then casefold): `ＲＥＦＵＮＤ`, `Refund` and `refund`
are one word, and full-width forms of Chinese punctuation match their plain forms. Traditional
Chinese is read as simplified (`app.core.hanzi`), so a rule with 退款 matches 退款 and a
condition written 發票 matches 发票. Regular expressions run on RE2, which works in linear time,
and match case-insensitively on NFKC text, Chinese likewise in simplified characters.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import re2

from app.core.hanzi import to_simplified
from app.core.vocabulary import Category, Channel, JourneyStage, Metric, Sentiment

MAX_DEPTH = 8
MAX_NODES = 200
MAX_PATTERN_LENGTH = 1_000
MAX_LIST_VALUES = 500

# What each field holds, which decides the operators it takes.
TEXT, ENUM, NUMBER, BOOL, LIST, TIME, ANY = "text", "enum", "number", "bool", "list", "time", "any"
FIELDS: dict[str, str] = {
    "source": TEXT,
    "channel": ENUM,
    "external_id": TEXT,
    "metric": ENUM,
    "score": NUMBER,
    "category": ENUM,
    "sentiment": ENUM,
    "comment": TEXT,
    "tags": LIST,
    "touchpoint": TEXT,
    "journey_stage": ENUM,
    "submitted_at": TIME,
    "customer.external_id": TEXT,
    "customer.email": TEXT,
    "customer.phone": TEXT,
    "customer.name": TEXT,
    "customer.locale": TEXT,
    "customer.contact_consent": BOOL,
}
ENUM_VALUES: dict[str, frozenset[str]] = {
    "channel": frozenset(Channel),
    "metric": frozenset(Metric),
    "category": frozenset(Category),
    "sentiment": frozenset(Sentiment),
    "journey_stage": frozenset(JourneyStage),
}
_EQUALITY = {"eq", "ne", "in", "not_in"}
_ORDER = {"lt", "lte", "gt", "gte", "between"}
_TEXT_SEARCH = {"contains_any", "contains_all", "matches"}
OPERATORS: dict[str, frozenset[str]] = {
    TEXT: frozenset(_EQUALITY | _TEXT_SEARCH | {"exists"}),
    ENUM: frozenset(_EQUALITY | {"exists"}),
    NUMBER: frozenset(_EQUALITY | _ORDER | {"exists"}),
    BOOL: frozenset({"eq", "ne", "exists"}),
    LIST: frozenset({"has_any", "has_all", "exists"}),
    TIME: frozenset(_ORDER | {"exists"}),
    ANY: frozenset(_EQUALITY | _ORDER | _TEXT_SEARCH | {"exists"}),
}
ALL_OPERATORS = frozenset().union(*OPERATORS.values()) | {"has_any", "has_all"}

# What rules run on: a plain map from the field names above (and `attributes.<key>`) to values,
# which the room that owns the data builds (feedback: app/feedback/derive.py, routing_item).
Item = Mapping[str, Any]
Check = Callable[["Context"], str | None]


def fold(text: str) -> str:
    return to_simplified(unicodedata.normalize("NFKC", text).casefold())


def field_kind(field: str) -> str | None:
    if field.startswith("attributes.") and len(field) > len("attributes."):
        return ANY
    return FIELDS.get(field)


class Context:
    """One item as the rules see it, with each folded value computed at most once.

    `item` maps field names (`score`, `customer.email`, `attributes.plan`) to values.
    """

    __slots__ = ("_folded", "item")

    def __init__(self, item: Item) -> None:
        self.item = item
        self._folded: dict[str, Any] = {}

    def get(self, field: str) -> Any:
        return self.item.get(field)

    def folded(self, field: str) -> Any:
        try:
            return self._folded[field]
        except KeyError:
            value = self.item.get(field)
            if isinstance(value, str):
                value = fold(value)
            elif isinstance(value, list):
                value = frozenset(fold(v) for v in value if isinstance(v, str))
            self._folded[field] = value
            return value

    def normalized(self, field: str) -> str | None:
        value = self.item.get(field)
        return (
            to_simplified(unicodedata.normalize("NFKC", value)) if isinstance(value, str) else None
        )


# Numbers in rules stay within what a float holds exactly (and JSON clients agree on).
MAX_NUMBER = 2**53


def is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) <= MAX_NUMBER if isinstance(value, int) else math.isfinite(value)


def parse_time(value: str) -> datetime | None:
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def order_key(kind: str, value: Any) -> Any:
    return parse_time(value) if kind == TIME else value


def compile_pattern(pattern: str) -> Any:
    """RE2, case-insensitive, on NFKC text: the pattern is NFKC-normalised like the text it
    runs on, so a full-width comma in either matches the other (and full-width brackets become
    regex syntax: write `\\(` for a literal one)."""
    pattern = to_simplified(unicodedata.normalize("NFKC", pattern))
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    return re2.compile(pattern, options)


# -- compilation --------------------------------------------------------------------------


def compile_conditions(conditions: Any, path: str = "conditions") -> Check:
    """A closure for a *valid* tree: None when it holds for a context, else the failing path."""
    if "all" in conditions:
        children = [
            compile_conditions(c, f"{path}.all[{i}]") for i, c in enumerate(conditions["all"])
        ]

        def all_of(ctx: Context) -> str | None:
            for child in children:
                failed = child(ctx)
                if failed is not None:
                    return failed
            return None

        return all_of
    if "any" in conditions:
        options = [
            compile_conditions(c, f"{path}.any[{i}]") for i, c in enumerate(conditions["any"])
        ]

        def any_of(ctx: Context) -> str | None:
            for option in options:
                if option(ctx) is None:
                    return None
            return path

        return any_of
    if "not" in conditions:
        inner = compile_conditions(conditions["not"], f"{path}.not")

        def none_of(ctx: Context) -> str | None:
            return path if inner(ctx) is None else None

        return none_of
    test = _leaf_test(conditions["field"], conditions["op"], conditions.get("value", True))

    def leaf(ctx: Context) -> str | None:
        return None if test(ctx) else path

    return leaf


def _leaf_test(field: str, op: str, value: Any) -> Callable[[Context], bool]:
    kind = field_kind(field)
    if op == "exists":
        wanted = bool(value)
        return lambda ctx: (ctx.get(field) not in (None, "", [])) is wanted
    if kind == TIME:
        return _order_test(lambda ctx: ctx.get(field), op, value, parse_time)
    if op in _ORDER:
        return _order_test(lambda ctx: number(ctx.get(field)), op, value, float)
    if op == "matches":
        regex = compile_pattern(value)

        def matches(ctx: Context) -> bool:
            text = ctx.normalized(field)
            return text is not None and regex.search(text) is not None

        return matches
    if op in ("contains_any", "contains_all"):
        terms = tuple(fold(v) for v in value)
        every = op == "contains_all"

        def contains(ctx: Context) -> bool:
            text = ctx.folded(field)
            if not isinstance(text, str):
                return False
            return all(t in text for t in terms) if every else any(t in text for t in terms)

        return contains
    if op in ("has_any", "has_all"):
        tags = frozenset(fold(v) for v in value)
        if op == "has_all":
            return lambda ctx: isinstance(s := ctx.folded(field), frozenset) and tags <= s
        return lambda ctx: isinstance(s := ctx.folded(field), frozenset) and not tags.isdisjoint(s)
    # Equality: text folded, numbers as numbers, booleans as booleans.
    values = value if op in ("in", "not_in") else [value]
    negate = op in ("ne", "not_in")
    if kind in (TEXT, ENUM):
        texts = frozenset(fold(v) for v in values)
        return lambda ctx: (ctx.folded(field) in texts) is not negate
    if kind == NUMBER:
        numbers = frozenset(float(v) for v in values)
        return lambda ctx: (number(ctx.get(field)) in numbers) is not negate
    if kind == BOOL:
        return lambda ctx: (ctx.get(field) is value) is not negate
    keys = frozenset(equality_key(v if not isinstance(v, str) else fold(v)) for v in values)
    return lambda ctx: (equality_key(ctx.folded(field)) in keys) is not negate


def equality_key(value: Any) -> Any:
    """A key under which equal attribute values meet: 2 and 2.0 do, 1 and true do not."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    return ("text", value)


def number(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _order_test(
    get: Callable[[Context], Any], op: str, value: Any, convert: Callable[[Any], Any]
) -> Callable[[Context], bool]:
    if op == "between":
        low, high = convert(value[0]), convert(value[1])
        return lambda ctx: (v := get(ctx)) is not None and low <= v <= high
    bound = convert(value)
    compare: dict[str, Callable[[Any], bool]] = {
        "lt": lambda v: v < bound,
        "lte": lambda v: v <= bound,
        "gt": lambda v: v > bound,
        "gte": lambda v: v >= bound,
    }
    test = compare[op]
    return lambda ctx: (v := get(ctx)) is not None and test(v)
