"""The routing condition language (SPEC §3): every operator, folding, regexes, nesting, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.routing.compiler import compile_table
from app.routing.conditions import Context, compile_conditions, fold
from app.routing.validation import validate

Tree = dict[str, Any]


def leaf(field: str, op: str, value: Any = None) -> Tree:
    node = {"field": field, "op": op}
    return node if value is None else node | {"value": value}


def failed_at(conditions: Tree, item: dict[str, Any]) -> str | None:
    """Where a valid tree fails for an item; None when it holds."""
    assert validate(conditions) == []
    return compile_conditions(conditions)(Context(item))


def holds(conditions: Tree, **item: Any) -> bool:
    return failed_at(conditions, item) is None


def errors(conditions: Any) -> list[tuple[str, str]]:
    return [(error.field, error.type) for error in validate(conditions)]


NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REVERSED_DAYS = ["2026-03-02", "2026-03-01"]
SPEC_EXAMPLE: Tree = {
    "all": [
        leaf("category", "eq", "detractor"),
        leaf("channel", "in", ["app", "web"]),
        {
            "any": [
                leaf("comment", "contains_any", ["refund", "退款", "reembolso"]),
                leaf("attributes.plan", "eq", "enterprise"),
            ]
        },
        {"not": leaf("tags", "has_any", ["test"])},
    ]
}

# -- every operator, holding and failing, on the fields it applies to ---------------------

# (id, field, op, value, the item's value of that field, whether the condition holds)
OPERATOR_CASES: list[tuple[str, str, str, Any, Any, bool]] = [
    # text
    ("text-eq", "source", "eq", "zendesk", "zendesk", True),
    ("text-eq-other", "source", "eq", "zendesk", "intercom", False),
    ("text-ne", "customer.email", "ne", "a@x.io", "b@x.io", True),
    ("text-ne-same-folded", "customer.email", "ne", "a@x.io", "A@X.IO", False),
    ("text-in", "touchpoint", "in", ["checkout", "login"], "login", True),
    ("text-in-absent", "touchpoint", "in", ["checkout"], "login", False),
    ("text-not_in", "customer.locale", "not_in", ["en"], "pt-BR", True),
    ("text-not_in-listed", "customer.locale", "not_in", ["en"], "EN", False),
    ("contains_any", "comment", "contains_any", ["late", "slow"], "so slow", True),
    ("contains_any-none", "comment", "contains_any", ["late"], "fine", False),
    ("contains_all", "comment", "contains_all", ["slow", "app"], "app is slow", True),
    ("contains_all-one", "comment", "contains_all", ["slow", "app"], "slow", False),
    ("matches", "customer.phone", "matches", r"^\+55", "+5511999", True),
    ("matches-not", "customer.phone", "matches", r"^\+55", "+4420", False),
    # enum
    ("enum-eq", "category", "eq", "detractor", "detractor", True),
    ("enum-eq-other", "category", "eq", "detractor", "passive", False),
    ("enum-ne", "sentiment", "ne", "negative", "neutral", True),
    ("enum-ne-same", "sentiment", "ne", "negative", "negative", False),
    ("enum-in", "channel", "in", ["app", "web"], "web", True),
    ("enum-in-absent", "channel", "in", ["app", "web"], "sms", False),
    ("enum-not_in", "journey_stage", "not_in", ["renewal"], "usage", True),
    ("enum-not_in-listed", "metric", "not_in", ["nps", "ces"], "nps", False),
    # number
    ("num-eq", "score", "eq", 3, 3, True),
    ("num-eq-other", "score", "eq", 3, 4, False),
    ("num-ne", "score", "ne", 3, 4, True),
    ("num-in", "score", "in", [0, 1, 2], 1, True),
    ("num-not_in", "score", "not_in", [0, 1, 2], 1, False),
    ("lt", "score", "lt", 7, 6, True),
    ("lt-equal", "score", "lt", 7, 7, False),
    ("lte-equal", "score", "lte", 7, 7, True),
    ("lte-above", "score", "lte", 7, 7.5, False),
    ("gt", "score", "gt", 8, 9, True),
    ("gt-equal", "score", "gt", 8, 8, False),
    ("gte-equal", "score", "gte", 8, 8, True),
    ("gte-below", "score", "gte", 8, 7.99, False),
    ("between-low-bound", "score", "between", [0, 6], 0, True),
    ("between-high-bound", "score", "between", [0, 6], 6, True),
    ("between-above", "score", "between", [0, 6], 6.5, False),
    # bool
    ("bool-eq-true", "customer.contact_consent", "eq", True, True, True),
    ("bool-eq-false", "customer.contact_consent", "eq", False, True, False),
    ("bool-ne", "customer.contact_consent", "ne", True, False, True),
    ("bool-ne-same", "customer.contact_consent", "ne", False, False, False),
    # list
    ("has_any", "tags", "has_any", ["vip", "beta"], ["beta", "x"], True),
    ("has_any-none", "tags", "has_any", ["vip", "beta"], ["x"], False),
    ("has_any-whole-tags-only", "tags", "has_any", ["vip"], ["vip-gold"], False),
    ("has_any-folded", "tags", "has_any", ["vip"], ["ＶＩＰ"], True),
    ("has_all", "tags", "has_all", ["vip", "beta"], ["beta", "vip", "x"], True),
    ("has_all-one", "tags", "has_all", ["vip", "beta"], ["vip"], False),
    # time
    ("time-lt", "submitted_at", "lt", "2026-03-02T00:00:00Z", NOON, True),
    ("time-lt-equal", "submitted_at", "lt", "2026-03-01T12:00:00Z", NOON, False),
    ("time-lte-equal", "submitted_at", "lte", "2026-03-01T12:00:00Z", NOON, True),
    ("time-gt-offset", "submitted_at", "gt", "2026-03-01T13:00:00+02:00", NOON, True),
    ("time-gte-later", "submitted_at", "gte", "2026-03-01T12:00:01Z", NOON, False),
    ("time-naive-is-utc", "submitted_at", "gte", "2026-03-01T12:00:00", NOON, True),
    ("time-between", "submitted_at", "between", ["2026-03-01", "2026-03-02"], NOON, True),
    ("time-between-out", "submitted_at", "between", ["2026-02-01", "2026-03-01"], NOON, False),
    # exists: present, even as 0 or false; absent as None, "" or []
    ("exists-zero", "score", "exists", True, 0, True),
    ("exists-false-bool", "customer.contact_consent", "exists", True, False, True),
    ("exists-time", "submitted_at", "exists", True, NOON, True),
    ("exists-tags", "tags", "exists", True, ["x"], True),
    ("exists-attr-zero", "attributes.seats", "exists", True, 0, True),
    ("exists-false-text", "comment", "exists", False, "x", False),
    ("exists-false-none", "comment", "exists", False, None, True),
    ("exists-false-empty-text", "comment", "exists", False, "", True),
    ("exists-false-empty-list", "tags", "exists", False, [], True),
    ("exists-empty-text", "comment", "exists", True, "", False),
    ("exists-empty-list", "tags", "exists", True, [], False),
    # attributes.*
    ("attr-eq-text", "attributes.plan", "eq", "pro", "pro", True),
    ("attr-eq-number", "attributes.seats", "eq", 50, 50, True),
    ("attr-eq-bool", "attributes.trial", "eq", True, True, True),
    ("attr-ne", "attributes.plan", "ne", "pro", "free", True),
    ("attr-in-mixed", "attributes.tier", "in", ["gold", 3], 3, True),
    ("attr-not_in-mixed", "attributes.tier", "not_in", ["gold", 3], "gold", False),
    ("attr-contains_any", "attributes.note", "contains_any", ["churn"], "CHURN risk", True),
    ("attr-contains_all", "attributes.note", "contains_all", ["churn", "q3"], "churn", False),
    ("attr-matches", "attributes.order", "matches", r"^ord-\d+$", "ORD-42", True),
    ("attr-matches-number", "attributes.order", "matches", "42", 42, False),
    ("attr-contains-number", "attributes.order", "contains_any", ["42"], 42, False),
]


@pytest.mark.parametrize(
    ("field", "op", "value", "actual", "expected"),
    [case[1:] for case in OPERATOR_CASES],
    ids=[case[0] for case in OPERATOR_CASES],
)
def test_operator_holds_exactly_when_the_item_satisfies_it(
    field: str, op: str, value: Any, actual: Any, expected: bool
) -> None:
    assert holds(leaf(field, op, value), **{field: actual}) is expected


def test_exists_false_holds_for_a_field_the_item_does_not_have() -> None:
    assert holds(leaf("attributes.plan", "exists", False))
    assert not holds(leaf("attributes.plan", "exists", True))
    assert holds(leaf("comment", "exists"), comment="x"), "exists without a value means true"


# -- folding: case and width, not accents, not script ------------------------------------


def test_fold_is_nfkc_then_casefold() -> None:
    assert fold("ＲＥＦＵＮＤ") == fold("Refund") == "refund"
    assert fold("Straße") == "strasse"
    assert fold("退款！") == "退款!"


@pytest.mark.parametrize(
    "comment", ["refund please", "I want a REFUND", "Ｒｅｆｕｎｄ", "ＲＥＦＵＮＤ"]
)
def test_full_width_and_mixed_case_refund_match_refund(comment: str) -> None:
    assert holds(leaf("comment", "contains_any", ["refund"]), comment=comment)


def test_full_width_refund_term_matches_plain_refund() -> None:
    assert holds(leaf("comment", "contains_any", ["ＲＥＦＵＮＤ"]), comment="refund now")
    assert holds(leaf("source", "eq", "ＲＥＦＵＮＤ"), source="Refund")
    assert holds(leaf("source", "in", ["Refund"]), source="ＲＥＦＵＮＤ")
    assert holds(leaf("channel", "eq", "app"), channel="ＡＰＰ")


def test_chinese_refund_term_matches_a_chinese_comment() -> None:
    assert holds(leaf("comment", "contains_any", ["退款"]), comment="我要退款，谢谢")
    assert not holds(leaf("comment", "contains_any", ["退款"]), comment="我要换货")


def test_full_width_chinese_punctuation_matches_its_plain_form() -> None:
    assert holds(leaf("comment", "contains_any", ["退款!"]), comment="马上退款！")
    assert holds(leaf("comment", "contains_all", ["退款，"]), comment="退款,谢谢")


def test_accents_are_not_stripped_reembolso_and_reembolso_with_accent_differ() -> None:
    assert not holds(leaf("comment", "contains_any", ["reembolso"]), comment="quero réembolso")
    assert not holds(leaf("comment", "contains_any", ["réembolso"]), comment="quero reembolso")
    assert not holds(leaf("comment", "contains_any", ["devolución"]), comment="la devolucion")
    assert not holds(leaf("source", "eq", "atenção"), source="atencao")


def test_accented_words_fold_case_and_match_themselves() -> None:
    assert holds(leaf("comment", "contains_any", ["réembolso"]), comment="QUERO RÉEMBOLSO")
    assert holds(leaf("comment", "contains_any", ["devolución"]), comment="DEVOLUCIÓN ya")


def test_decomposed_accent_matches_the_composed_term() -> None:
    decomposed = "re\u0301embolso"  # e + combining acute accent; NFKC composes it
    assert holds(leaf("comment", "contains_any", ["réembolso"]), comment=decomposed)
    assert not holds(leaf("comment", "contains_any", ["reembolso"]), comment=decomposed)


def test_a_chinese_term_in_one_script_matches_the_other() -> None:
    assert holds(leaf("comment", "contains_any", ["退钱"]), comment="快退钱")
    assert holds(leaf("comment", "contains_any", ["退钱"]), comment="快退錢")
    assert holds(leaf("comment", "contains_any", ["退錢"]), comment="快退钱")
    assert not holds(leaf("comment", "contains_any", ["退钱"]), comment="快退货")


# -- matches: RE2, case-insensitive, on NFKC text ----------------------------------------


def test_matches_is_case_insensitive() -> None:
    assert holds(leaf("comment", "matches", "refund"), comment="REFUND NOW")
    assert holds(leaf("comment", "matches", "ÉTÉ"), comment="cet été")


def test_matches_searches_anywhere_unless_anchored() -> None:
    assert holds(leaf("comment", "matches", "fund"), comment="a refund")
    assert not holds(leaf("comment", "matches", "^fund"), comment="a refund")


def test_matches_runs_on_nfkc_normalised_text() -> None:
    assert holds(leaf("comment", "matches", r"refund\s+now"), comment="ＲＥＦＵＮＤ　ＮＯＷ")
    assert holds(leaf("comment", "matches", r"退款!"), comment="退款！")


def test_full_width_pattern_matches_the_same_full_width_text() -> None:
    assert holds(leaf("comment", "matches", "退款，"), comment="退款，谢谢")


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=x)", "(?!x)y", "(?<=a)b", "(unclosed"], ids=str)
def test_pattern_re2_cannot_compile_is_refused(pattern: str) -> None:
    assert errors(leaf("comment", "matches", pattern)) == [("conditions.value", "pattern_invalid")]


def test_pattern_over_1000_characters_is_refused_and_1000_accepted() -> None:
    assert errors(leaf("comment", "matches", "a" * 1001)) == [
        ("conditions.value", "pattern_too_long")
    ]
    assert errors(leaf("comment", "matches", "a" * 1000)) == []


def test_pathological_pattern_runs_in_linear_time() -> None:
    assert not holds(leaf("comment", "matches", "(a+)+$"), comment="a" * 50_000 + "b")
    assert holds(leaf("comment", "matches", "(a+)+b$"), comment="a" * 50_000 + "b")


# -- nesting: depth, size and the path of the failing condition ---------------------------


def wrapped(groups: str, inner: Tree | None = None) -> Tree:
    """`inner` (a leaf by default) inside the space-separated groups, outermost first."""
    node = inner or leaf("score", "eq", 1)
    for group in reversed(groups.split()):
        node = {"not": node} if group == "not" else {group: [node]}
    return node


def test_depth_8_is_accepted() -> None:
    assert errors(wrapped("not " * 7)) == []
    assert errors(wrapped("all any not all any not all")) == []


def test_depth_9_is_refused_at_the_node_too_deep() -> None:
    assert errors(wrapped("not " * 8)) == [("conditions" + ".not" * 8, "too_deep")]
    pair = {"all": [leaf("score", "eq", 1), leaf("score", "eq", 2)]}
    assert errors(wrapped("any not not not not not not", pair)) == [
        ("conditions.any[0].not.not.not.not.not.not.all[0]", "too_deep"),
        ("conditions.any[0].not.not.not.not.not.not.all[1]", "too_deep"),
    ]


def test_200_conditions_are_accepted_and_201_refused() -> None:
    assert errors({"all": [leaf("score", "eq", i) for i in range(199)]}) == []
    assert errors({"all": [leaf("score", "eq", i) for i in range(200)]}) == [
        ("conditions.all[199]", "too_many_conditions")
    ]


def spec_item(plan: str | None = None, **changes: Any) -> dict[str, Any]:
    """An item the SPEC example holds for, with `changes` and `attributes.plan` set to `plan`."""
    item = {"category": "detractor", "channel": "app", "comment": "I want a REFUND", "tags": []}
    return item | changes | ({} if plan is None else {"attributes.plan": plan})


SPEC_EXAMPLE_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("refund", spec_item(), None),
    ("chinese-refund-on-web", spec_item(channel="web", comment="我要退款"), None),
    ("enterprise", spec_item(comment="slow", plan="Enterprise"), None),
    ("promoter", spec_item(category="promoter"), "conditions.all[0]"),
    ("first-failure-wins", spec_item(category="promoter", tags=["test"]), "conditions.all[0]"),
    ("email", spec_item(channel="email"), "conditions.all[1]"),
    ("no-refund", spec_item(comment="slow"), "conditions.all[2]"),
    ("pro-plan", spec_item(comment=None, plan="pro"), "conditions.all[2]"),
    ("test-tag", spec_item(tags=["TEST"]), "conditions.all[3]"),
]


@pytest.mark.parametrize(
    ("item", "expected"),
    [case[1:] for case in SPEC_EXAMPLE_CASES],
    ids=[case[0] for case in SPEC_EXAMPLE_CASES],
)
def test_spec_example_fails_at_the_exact_condition(
    item: dict[str, Any], expected: str | None
) -> None:
    assert failed_at(SPEC_EXAMPLE, item) == expected


def test_deeply_nested_failure_reports_the_innermost_all_child() -> None:
    tree = {
        "all": [
            leaf("score", "gte", 0),
            {"all": [{"all": [leaf("score", "lt", 7), leaf("score", "ne", 3)]}]},
        ]
    }
    assert failed_at(tree, {"score": 3}) == "conditions.all[1].all[0].all[1]"
    assert failed_at(tree, {"score": 8}) == "conditions.all[1].all[0].all[0]"
    assert failed_at(tree, {"score": 2}) is None


def test_any_inside_any_reports_the_outer_any_node() -> None:
    tree = {"all": [{"any": [{"any": [leaf("score", "eq", 1)]}, leaf("score", "eq", 2)]}]}
    assert failed_at(tree, {"score": 3}) == "conditions.all[0]"
    assert failed_at(tree, {"score": 1}) is None


def test_double_not_is_the_leaf_and_fails_at_the_outer_not() -> None:
    tree = {"not": {"not": leaf("score", "eq", 1)}}
    assert failed_at(tree, {"score": 1}) is None
    assert failed_at(tree, {"score": 2}) == "conditions"


def test_empty_all_holds_and_empty_any_fails() -> None:
    assert failed_at({"all": []}, {}) is None
    assert failed_at({"any": []}, {}) == "conditions"


# -- validation errors: exact paths and types --------------------------------------------

# (id, conditions, path after `conditions`, error type): trees with exactly one problem
VALIDATION_CASES: list[tuple[str, Any, str, str]] = [
    ("unknown-field", leaf("colour", "eq", "red"), ".field", "unknown_field"),
    ("empty-attribute-name", leaf("attributes.", "eq", "x"), ".field", "unknown_field"),
    ("field-missing", {"op": "eq", "value": 1}, ".field", "field_missing"),
    ("unknown-operator", leaf("score", "approx", 3), ".op", "unknown_operator"),
    ("operator-missing", {"field": "score", "value": 3}, ".op", "unknown_operator"),
    ("lt-on-comment", leaf("comment", "lt", 3), ".op", "operator_mismatch"),
    ("has_any-on-comment", leaf("comment", "has_any", ["x"]), ".op", "operator_mismatch"),
    ("contains_any-on-score", leaf("score", "contains_any", ["1"]), ".op", "operator_mismatch"),
    ("matches-on-enum", leaf("channel", "matches", "a"), ".op", "operator_mismatch"),
    ("between-on-enum", leaf("category", "between", ["a", "b"]), ".op", "operator_mismatch"),
    ("eq-on-tags", leaf("tags", "eq", "vip"), ".op", "operator_mismatch"),
    ("eq-on-time", leaf("submitted_at", "eq", "2026-03-01"), ".op", "operator_mismatch"),
    ("lt-on-bool", leaf("customer.contact_consent", "lt", 1), ".op", "operator_mismatch"),
    ("number-op-string", leaf("score", "gt", "5"), ".value", "value_type"),
    ("number-eq-string", leaf("score", "eq", "5"), ".value", "value_type"),
    ("number-eq-bool", leaf("score", "eq", True), ".value", "value_type"),
    ("number-infinite", leaf("score", "lt", float("inf")), ".value", "value_type"),
    ("attr-lt-string", leaf("attributes.seats", "lt", "10"), ".value", "value_type"),
    ("attr-eq-list", leaf("attributes.plan", "eq", ["pro"]), ".value", "value_type"),
    ("in-non-list", leaf("channel", "in", "app"), ".value", "value_type"),
    ("in-empty-list", leaf("channel", "in", []), ".value", "value_type"),
    ("has_all-number", leaf("tags", "has_all", ["vip", 3]), ".value[1]", "value_type"),
    ("contains-empty-term", leaf("comment", "contains_any", ["a", ""]), ".value[1]", "value_type"),
    ("text-eq-empty", leaf("comment", "eq", ""), ".value", "value_type"),
    ("bool-eq-string", leaf("customer.contact_consent", "eq", "true"), ".value", "value_type"),
    ("exists-string", leaf("comment", "exists", "yes"), ".value", "value_type"),
    ("matches-number", leaf("comment", "matches", 3), ".value", "value_type"),
    ("matches-empty", leaf("comment", "matches", ""), ".value", "value_type"),
    ("501-values", leaf("source", "in", ["s"] * 501), ".value", "too_many_values"),
    ("enum-misspelt", leaf("category", "eq", "detractr"), ".value", "value_enum"),
    ("enum-not-folded", leaf("category", "eq", "Detractor"), ".value", "value_enum"),
    ("enum-in-one-bad", leaf("channel", "in", ["app", "fax"]), ".value[1]", "value_enum"),
    ("between-reversed", leaf("score", "between", [9, 1]), ".value", "value_range"),
    ("between-three", leaf("score", "between", [1, 2, 3]), ".value", "value_type"),
    ("between-not-list", leaf("score", "between", 5), ".value", "value_type"),
    ("between-bad-bound", leaf("score", "between", [1, "9"]), ".value[1]", "value_type"),
    ("time-reversed", leaf("submitted_at", "between", REVERSED_DAYS), ".value", "value_range"),
    ("time-unparseable", leaf("submitted_at", "gt", "yesterday"), ".value", "value_type"),
    ("time-bad-month", leaf("submitted_at", "gt", "2026-13-01T00:00:00Z"), ".value", "value_type"),
    ("time-number", leaf("submitted_at", "lt", 1700000000), ".value", "value_type"),
    ("value-missing", {"field": "score", "op": "eq"}, ".value", "value_missing"),
    ("unknown-leaf-key", leaf("score", "eq", 1) | {"vaule": 2}, ".vaule", "unknown_key"),
    ("group-beside-keys", {"all": [], "field": "score"}, "", "condition_shape"),
    ("two-groups", {"any": [], "not": {}}, "", "condition_shape"),
    ("non-object-root", ["score"], "", "condition_type"),
    ("non-object-child", {"all": [leaf("score", "eq", 1), 7]}, ".all[1]", "condition_type"),
    ("group-not-list", {"any": {"field": "score"}}, ".any", "condition_type"),
    ("not-of-list", {"not": [leaf("score", "eq", 1)]}, ".not", "condition_type"),
]


@pytest.mark.parametrize(
    ("conditions", "path", "kind"),
    [case[1:] for case in VALIDATION_CASES],
    ids=[case[0] for case in VALIDATION_CASES],
)
def test_invalid_condition_is_refused_with_its_path_and_type(
    conditions: Any, path: str, kind: str
) -> None:
    problems = validate(conditions)
    assert [(e.field, e.type) for e in problems] == [(f"conditions{path}", kind)]
    assert problems[0].message


def test_valid_trees_have_no_errors() -> None:
    assert validate(SPEC_EXAMPLE) == []
    assert validate(leaf("submitted_at", "between", ["2026-03-01", "2026-03-01T00:00Z"])) == []


def test_several_errors_are_reported_at_once() -> None:
    tree = {
        "all": [
            leaf("colour", "eq", "red"),
            {"any": [leaf("score", "eq", 1), leaf("comment", "lt", 3)]},
            {"not": leaf("category", "in", ["detractr"]) | {"extra": 1}},
            "oops",
        ]
    }
    assert errors(tree) == [
        ("conditions.all[0].field", "unknown_field"),
        ("conditions.all[1].any[1].op", "operator_mismatch"),
        ("conditions.all[2].not.extra", "unknown_key"),
        ("conditions.all[2].not.value[0]", "value_enum"),
        ("conditions.all[3]", "condition_type"),
    ]


def test_paths_start_from_the_given_prefix() -> None:
    tree = {"all": [{"any": [leaf("score", "lt", "x")]}]}
    assert errors(tree) == [("conditions.all[0].any[0].value", "value_type")]
    assert [e.field for e in validate(tree, path="rules[2].conditions")] == [
        "rules[2].conditions.all[0].any[0].value"
    ]


def test_reversed_between_is_reported_beside_an_earlier_error() -> None:
    tree = {"all": [leaf("colour", "eq", "red"), leaf("score", "between", [9, 1])]}
    assert errors(tree) == [
        ("conditions.all[0].field", "unknown_field"),
        ("conditions.all[1].value", "value_range"),
    ]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"field": "score", "op": ["eq"], "value": 1}, [("conditions.op", "unknown_operator")]),
        (leaf("category", "eq", ["detractor"]), [("conditions.value", "value_enum")]),
        (leaf("channel", "in", [["app"]]), [("conditions.value[0]", "value_enum")]),
    ],
    ids=["list-op", "enum-eq-list", "enum-in-nested-list"],
)
def test_unhashable_operator_or_enum_value_is_an_error_not_a_crash(
    conditions: Tree, expected: list[tuple[str, str]]
) -> None:
    assert errors(conditions) == expected


def test_huge_integer_score_is_an_error_not_a_crash() -> None:
    assert errors(leaf("score", "eq", 10**400)) == [("conditions.value", "value_type")]


def test_attribute_tree_that_validates_also_compiles() -> None:
    tree = leaf("attributes.seats", "eq", 10**400)
    assert validate(tree) != [] or compile_conditions(tree)(Context({})) is not None


def test_lower_case_z_time_is_rfc_3339() -> None:
    assert errors(leaf("submitted_at", "gt", "2026-03-01T00:00:00z")) == []


# -- missing fields ----------------------------------------------------------------------

# (field, op, value, whether it holds when the item lacks the field or holds None there)
MISSING_FIELD_CASES: list[tuple[str, str, Any, bool]] = [
    ("comment", "ne", "x", True),
    ("channel", "not_in", ["app"], True),
    ("score", "ne", 0, True),
    ("score", "not_in", [0, 1], True),
    ("customer.contact_consent", "ne", True, True),
    ("attributes.plan", "ne", "pro", True),
    ("attributes.plan", "not_in", ["pro", 1], True),
    ("comment", "eq", "x", False),
    ("channel", "in", ["app"], False),
    ("score", "eq", 0, False),
    ("score", "lt", 10, False),
    ("score", "between", [0, 10], False),
    ("submitted_at", "lt", "2100-01-01T00:00:00Z", False),
    ("comment", "contains_any", ["x"], False),
    ("comment", "matches", ".*", False),
    ("tags", "has_any", ["x"], False),
    ("customer.contact_consent", "eq", False, False),
    ("attributes.seats", "gte", 0, False),
]


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    MISSING_FIELD_CASES,
    ids=[f"{field}-{op}" for field, op, _, _ in MISSING_FIELD_CASES],
)
def test_only_negative_operators_hold_on_a_missing_field(
    field: str, op: str, value: Any, expected: bool
) -> None:
    assert holds(leaf(field, op, value)) is expected
    assert holds(leaf(field, op, value), **{field: None}) is expected


def test_not_has_any_holds_when_there_are_no_tags() -> None:
    assert holds({"not": leaf("tags", "has_any", ["test"])})


# -- numbers ---------------------------------------------------------------------------


def test_2_equals_2_point_0() -> None:
    assert holds(leaf("score", "eq", 2), score=2.0)
    assert holds(leaf("score", "in", [2.0]), score=2)
    assert holds(leaf("attributes.seats", "eq", 2), **{"attributes.seats": 2.0})
    assert not holds(leaf("attributes.seats", "ne", 2.0), **{"attributes.seats": 2})


def test_bool_attribute_is_not_the_number_1() -> None:
    assert not holds(leaf("attributes.flag", "eq", 1), **{"attributes.flag": True})
    assert not holds(leaf("attributes.flag", "eq", True), **{"attributes.flag": 1})
    assert holds(leaf("attributes.flag", "ne", 1), **{"attributes.flag": True})
    assert not holds(leaf("attributes.flag", "gte", 1), **{"attributes.flag": True})


def test_numeric_operators_on_a_string_attribute_fail_rather_than_raise() -> None:
    item = {"attributes.seats": "50"}
    for op, value in [("lt", 100), ("gt", 1), ("gte", 50), ("between", [0, 100])]:
        assert not holds(leaf("attributes.seats", op, value), **item)
    assert not holds(leaf("attributes.seats", "eq", 50), **item)
    assert not holds(leaf("attributes.seats", "eq", "50"), **{"attributes.seats": 50})


def test_bool_score_is_not_a_number() -> None:
    assert not holds(leaf("score", "gte", 0), score=True)
    assert not holds(leaf("score", "eq", 1), score=True)


# -- attributes ------------------------------------------------------------------------


def test_attribute_plan_enterprise_matches_lower_case_enterprise() -> None:
    assert holds(leaf("attributes.plan", "eq", "Enterprise"), **{"attributes.plan": "enterprise"})
    assert holds(
        leaf("attributes.plan", "in", ["ＥＮＴＥＲＰＲＩＳＥ"]), **{"attributes.plan": "Enterprise"}
    )
    assert not holds(
        leaf("attributes.plan", "eq", "Enterprise"), **{"attributes.plan": "enterprise+"}
    )


def test_attribute_numeric_comparisons() -> None:
    seats = {"attributes.seats": 250}
    assert holds(leaf("attributes.seats", "gt", 100), **seats)
    assert holds(leaf("attributes.seats", "between", [100, 250]), **seats)
    assert not holds(leaf("attributes.seats", "lt", 250), **seats)
    assert holds(leaf("attributes.seats", "gte", 250.0), **seats)
    assert not holds(leaf("attributes.seats", "lte", 249), **seats)
    assert holds(leaf("attributes.mrr", "lte", 99.5), **{"attributes.mrr": 99.5})
    assert not holds(leaf("attributes.mrr", "between", [0, 99.4]), **{"attributes.mrr": 99.5})


def test_dotted_attribute_names_are_fields_of_their_own() -> None:
    tree = leaf("attributes.account.owner", "eq", "ana")
    assert holds(tree, **{"attributes.account.owner": "Ana"})
    assert not holds(tree, **{"attributes.account": "ana"})


@pytest.mark.parametrize(
    "condition",
    [
        leaf("comment", "contains_any", ["退货", "发票"]),
        leaf("comment", "contains_any", ["退貨", "發票"]),
        leaf("comment", "matches", "退货|发票"),
        leaf("comment", "matches", "退貨|發票"),
        leaf("attributes.topic", "eq", "发票"),
        leaf("attributes.topic", "in", ["發票"]),
    ],
)
@pytest.mark.parametrize(
    "text", ["我要退貨", "我要退货", "發票開錯了", "发票开错了", "ＡＢ發票"], ids=str
)
def test_simplified_and_traditional_chinese_match_each_other(condition: Tree, text: str) -> None:
    item = {"comment": text, "attributes.topic": "發票" if "發" in text else "发票"}
    assert failed_at(condition, item) is None
    assert compile_table([condition])(Context(item)) == 0
