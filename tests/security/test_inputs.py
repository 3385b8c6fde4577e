"""No input reaches a 500 (issue 9, point 6): what PostgreSQL cannot store is a 422 naming it.

The fuzzer of the issue's "Why" found 500s for a NUL character in a rule's assignee, a
customer or a key's name; each such input, and its relatives, is here, with the field the
answer must name.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import feedback_body, refused_fields

RULE = {
    "name": "refunds",
    "priority": 10,
    "conditions": {"field": "score", "op": "lte", "value": 6},
    "team": "support",
}


def raw(text: str) -> bytes:
    """JSON text as a client may send it: escapes that Python's own encoder would not write."""
    return text.encode("utf-8")


async def post_raw(client: httpx.AsyncClient, url: str, body: bytes) -> httpx.Response:
    return await client.post(url, content=body, headers={"Content-Type": "application/json"})


@pytest.fixture
async def support(admin: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await admin.post(
        "/v1/teams",
        json={"key": "support", "name": "Support", "first_response_minutes": 60,
              "resolution_minutes": 480},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return admin


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"comment": "late\x00"}, "comment"),
        ({"customer": {"external_id": "cus\x00_42"}}, "customer.external_id"),
        ({"customer": {"external_id": "cus_42", "name": "Ana\x00"}}, "customer.name"),
        ({"tags": ["ok", "deli\x00very"]}, "tags[1]"),
        ({"attributes": {"plan": "pro\x00"}}, "attributes.plan"),
        ({"attributes": {"pl\x00an": "pro"}}, "attributes.[key]"),
        ({"touchpoint": "check\x00out"}, "touchpoint"),
    ],
    ids=["comment", "customer", "name", "tag", "attribute", "attribute-name", "touchpoint"],
)
async def test_a_nul_character_anywhere_in_feedback_is_a_422_naming_the_field(
    admin: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    response = await admin.post("/v1/feedback", json=feedback_body(**overrides))
    assert field in refused_fields(response)
    listed = await admin.get("/v1/feedback")
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        ('"comment": "late \\ud800 again"', "comment"),
        ('"attributes": {"plan": "\\udfff"}', "attributes.plan"),
        ('"attributes": {"\\ud800": "pro"}', "attributes.[key]"),
        ('"attributes": {"seats": NaN}', "attributes.seats"),
        ('"attributes": {"seats": Infinity}', "attributes.seats"),
        ('"attributes": {"seats": -Infinity}', "attributes.seats"),
        ('"attributes": {"seats": 1e400}', "attributes.seats"),
        ('"attributes": {"seats": 9223372036854775808}', "attributes.seats"),
        ('"attributes": {"seats": -9223372036854775809}', "attributes.seats"),
        ('"score": NaN', "score"),
        ('"score": 123456789012345678901234567890', "score"),
    ],
    ids=[
        "lone-high-surrogate",
        "lone-low-surrogate",
        "surrogate-key",
        "nan",
        "infinity",
        "minus-infinity",
        "overflowing-float",
        "int64-max-plus-one",
        "int64-min-minus-one",
        "nan-score",
        "huge-score",
    ],
)
async def test_text_and_numbers_postgresql_cannot_hold_are_a_422_naming_the_field(
    admin: httpx.AsyncClient, fragment: str, field: str
) -> None:
    body = raw(
        '{"source": "checkout-web", "channel": "web", "metric": "nps", "score": 3, '
        + fragment
        + "}"
    )
    assert field in refused_fields(await post_raw(admin, "/v1/feedback", body))


async def test_the_largest_64_bit_integer_and_a_surrogate_pair_are_fine(
    admin: httpx.AsyncClient,
) -> None:
    body = raw(
        '{"source": "checkout-web", "channel": "web", "metric": "nps", "score": 9, '
        '"comment": "great \\ud83d\\ude00", "attributes": {"seats": 9223372036854775807}}'
    )
    response = await post_raw(admin, "/v1/feedback", body)
    assert response.status_code == 201, response.text
    assert response.json()["comment"] == "great 😀"
    assert response.json()["attributes"]["seats"] == 9223372036854775807


async def test_a_batch_names_the_item_and_the_field(admin: httpx.AsyncClient) -> None:
    items = [feedback_body(external_id="a"), feedback_body(external_id="b", comment="x\x00")]
    response = await admin.post("/v1/feedback/batch", json={"items": items})
    assert refused_fields(response) == ["items[1].comment"]


async def test_deep_json_is_a_4xx_problem(admin: httpx.AsyncClient) -> None:
    deep_but_parsed = raw(
        '{"source": "checkout-web", "channel": "web", "metric": "nps", "score": 3, '
        '"attributes": {"plan": ' + "[" * 200 + "]" * 200 + "}}"
    )
    assert refused_fields(await post_raw(admin, "/v1/feedback", deep_but_parsed)) == [
        "attributes.plan"
    ]
    beyond_the_parser = raw('{"attributes": ' + "[" * 20_000 + "]" * 20_000 + "}")
    response = await post_raw(admin, "/v1/feedback", beyond_the_parser)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


async def test_a_huge_body_is_a_413_problem(admin: httpx.AsyncClient) -> None:
    response = await post_raw(admin, "/v1/feedback", b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_a_body_that_is_not_utf_8_is_a_400_problem(admin: httpx.AsyncClient) -> None:
    response = await post_raw(admin, "/v1/feedback", b'{"comment": "\xff\xfe"}')
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


async def test_a_nul_in_a_keys_name_is_a_422(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/v1/api-keys", json={"name": "ops\x00", "scopes": ["admin"]})
    assert refused_fields(response) == ["name"]
    assert response.json()["instance"] == "/v1/api-keys"


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"assignee": "maria\x00"}, "assignee"),
        ({"name": "refunds\x00"}, "name"),
        ({"conditions": {"field": "comment", "op": "contains", "value": "re\x00fund"}},
         "conditions.value"),
        ({"priority": 2**64}, "priority"),
    ],
    ids=["assignee", "name", "condition-value", "priority"],
)  # fmt: skip
async def test_a_rule_postgresql_cannot_hold_is_a_422(
    support: httpx.AsyncClient, rule: dict[str, Any], field: str
) -> None:
    response = await support.post("/v1/routing/rules", json={**RULE, **rule})
    assert field in refused_fields(response)


@pytest.mark.parametrize(
    "url",
    [
        "/v1/cases?assignee=ma%00ria",
        "/v1/cases?customer=cus%00_42",
        "/v1/feedback?customer=cus%00_42",
        "/v1/feedback?source=web%00",
    ],
)
async def test_a_nul_in_the_query_is_a_422_naming_the_parameter(
    admin: httpx.AsyncClient, url: str
) -> None:
    name = url.split("?")[1].split("=")[0]
    assert refused_fields(await admin.get(url)) == [name]


@pytest.mark.parametrize(
    ("method", "url", "name"),
    [
        ("GET", "/v1/customers/cus%00_42", "key"),
        ("GET", "/v1/teams/sup%00port", "key"),
        ("PATCH", "/v1/teams/sup%00port", "key"),
        ("PUT", "/v1/feedback/checkout-web/resp%00-1", "external_id"),
        ("POST", "/v1/sources/check%00out/identity-secret", "source"),
    ],
)
async def test_a_nul_in_the_path_is_a_422_naming_the_parameter(
    admin: httpx.AsyncClient, method: str, url: str, name: str
) -> None:
    response = await admin.request(method, url, json={})
    assert refused_fields(response) == [name]


@pytest.mark.parametrize(
    "host",
    [
        "a" * 64 + ".example.com",  # a label over 63 characters
        "é" + "a" * 70 + ".example.com",  # over 63 once in punycode
        "xn--" + "a" * 70 + ".example.com",
        "shop..example.com",  # an empty label
        "shop\u3002\u3002example.com",  # ideographic full stops: empty labels too
    ],
    ids=["long-label", "long-idna-label", "long-punycode", "empty-label", "ideographic-dots"],
)
async def test_a_webhook_url_whose_host_is_no_name_is_a_422_naming_the_url(
    admin: httpx.AsyncClient, host: str
) -> None:
    response = await admin.post(
        "/v1/webhooks/endpoints",
        json={"url": f"https://{host}/hooks", "event_types": ["case.opened"]},
    )
    assert refused_fields(response) == ["url"]


@pytest.mark.parametrize("number", ["0.5", "1700000000"])
async def test_a_number_is_not_a_date(admin: httpx.AsyncClient, number: str) -> None:
    response = await admin.get(f"/v1/feedback?submitted_to={number}")
    assert refused_fields(response) == ["submitted_to"]
    response = await admin.post(
        "/v1/routing/backtest",
        json={"from": float(number), "to": "2026-01-01T00:00:00Z", "rules": []},
    )
    assert refused_fields(response) == ["from"]
