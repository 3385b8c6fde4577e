"""The compiled table (used at ingest) agrees with the condition closures (used for traces)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from app.routing.compiler import compile_table
from app.routing.conditions import Context, compile_conditions
from app.routing.validation import validate

TEXTS = ["refund", "退款", "ＲＥＦＵＮＤ", "Reembolso", "late", "", "slow app"]
LEAVES: list[tuple[str, list[str], list[Any]]] = [
    (
        "comment",
        ["eq", "ne", "in", "not_in", "contains_any", "contains_all", "matches", "exists"],
        TEXTS,
    ),
    ("source", ["eq", "ne", "in", "not_in", "exists"], ["web", "ios-app"]),
    ("category", ["eq", "ne", "in", "not_in", "exists"], ["detractor", "passive", "promoter"]),
    (
        "score",
        ["eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "exists"],
        [0, 3, 6, 9],
    ),
    ("tags", ["has_any", "has_all", "exists"], ["vip", "Test", "配送"]),
    ("customer.contact_consent", ["eq", "ne", "exists"], [True, False]),
    (
        "submitted_at",
        ["lt", "lte", "gt", "gte", "between", "exists"],
        ["2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"],
    ),
    (
        "attributes.plan",
        ["eq", "ne", "in", "not_in", "lt", "gt", "contains_any", "matches", "exists"],
        ["enterprise", "Pro", 2, 2.0, True],
    ),
]


def _leaf(rng: random.Random) -> dict[str, Any]:
    field, ops, pool = rng.choice(LEAVES)
    op = rng.choice(ops)
    texts = [v for v in pool if isinstance(v, str) and v]
    numbers = [v for v in pool if isinstance(v, int | float) and not isinstance(v, bool)]
    if op == "exists":
        return {"field": field, "op": op, "value": rng.choice([True, False])}
    choices: list[Any]
    if op in ("lt", "lte", "gt", "gte"):
        choices = texts if field == "submitted_at" else numbers or [1]
        return {"field": field, "op": op, "value": rng.choice(choices)}
    if op == "between":
        choices = sorted(texts if field == "submitted_at" else numbers or [1, 2])
        return {"field": field, "op": op, "value": [choices[0], choices[-1]]}
    if op == "matches":
        return {"field": field, "op": op, "value": rng.choice(["^ref", "退", "un.$", "[0-9]"])}
    if op in ("contains_any", "contains_all", "has_any", "has_all"):
        return {"field": field, "op": op, "value": rng.sample(texts, k=min(2, len(texts)))}
    candidates = [v for v in pool if v != ""] or pool
    if op in ("in", "not_in"):
        return {
            "field": field,
            "op": op,
            "value": rng.sample(candidates, k=min(2, len(candidates))),
        }
    return {"field": field, "op": op, "value": rng.choice(candidates)}


def _tree(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    shape = rng.random()
    if depth >= 3 or shape < 0.4:
        return _leaf(rng)
    if shape < 0.6:
        return {"not": _tree(rng, depth + 1)}
    key = "all" if shape < 0.8 else "any"
    return {key: [_tree(rng, depth + 1) for _ in range(rng.randint(0, 3))]}


def _item(rng: random.Random) -> dict[str, Any]:
    item: dict[str, Any] = {
        "comment": rng.choice([*TEXTS, None, "I want a refund now"]),
        "source": rng.choice(["web", "ios-app", "WEB", None]),
        "category": rng.choice(["detractor", "passive", "promoter", None]),
        "score": rng.choice([0, 3, 6, 9, 10, None]),
        "tags": rng.choice([[], ["vip"], ["test", "配送"], None]),
        "customer.contact_consent": rng.choice([True, False]),
        "submitted_at": rng.choice(
            [datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC), None]
        ),
    }
    plan = rng.choice(["Enterprise", "pro", 2, 2.5, True, None, ""])
    if plan is not None:
        item["attributes.plan"] = plan
    return item


def test_compiled_table_and_closures_agree_on_random_rules_and_items() -> None:
    rng = random.Random(20261123)
    checked = 0
    for _ in range(400):
        tree = _tree(rng)
        assert validate(tree) == [], tree
        closure = compile_conditions(tree)
        router = compile_table([tree])
        for _ in range(25):
            item = _item(rng)
            holds = closure(Context(item)) is None
            assert (router(Context(item)) == 0) is holds, (tree, item)
            checked += 1
    assert checked == 10_000


def test_the_compiled_table_returns_the_first_rule_that_holds() -> None:
    rules = [
        {"field": "score", "op": "lt", "value": 3},
        {"field": "comment", "op": "contains_any", "value": ["refund"]},
        {"all": []},
    ]
    router = compile_table(rules)
    assert router(Context({"score": 1, "comment": "refund"})) == 0
    assert router(Context({"score": 5, "comment": "A REFUND"})) == 1
    assert router(Context({"score": 5})) == 2
    assert compile_table(rules[:2])(Context({"score": 5})) == -1


def test_values_never_become_code() -> None:
    hostile = "x') or __import__('os').system('false') or ('"
    router = compile_table([{"field": "comment", "op": "eq", "value": hostile}])
    assert router(Context({"comment": "anything"})) == -1
    assert router(Context({"comment": hostile})) == 0
