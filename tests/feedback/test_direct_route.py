"""POST /v1/feedback is served by the request gate (app/feedback/direct.py) when FastAPI would
accept the body, and by FastAPI otherwise: the two must answer alike."""

from __future__ import annotations

import httpx
import orjson

from app.core.db import BoundDatabase
from tests.builders import auth, feedback_body, make_api_key


def _seen(answer: httpx.Response) -> tuple[int, object, list[tuple[str, str]]]:
    """What a client sees, less what differs by request (its id)."""
    headers = [(k, v) for k, v in answer.headers.items() if k not in ("x-request-id",)]
    return answer.status_code, answer.json(), sorted(headers)


async def test_a_key_without_the_scope_is_answered_alike_by_both_paths(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    reader = auth(await make_api_key(database, "feedback:read"))
    direct = await client.post("/v1/feedback", json=feedback_body(), headers=reader)
    # A JSON array is declined by the gate: FastAPI checks the key first, as it always has.
    declined = await client.post(
        "/v1/feedback", content=b"[]", headers={**reader, "Content-Type": "application/json"}
    )
    assert direct.status_code == 403
    assert _seen(direct) == _seen(declined)
    assert direct.json()["code"] == "insufficient_scope"


async def test_without_a_key_a_body_of_either_kind_is_a_401(client: httpx.AsyncClient) -> None:
    valid = await client.post("/v1/feedback", json=feedback_body())
    invalid = await client.post("/v1/feedback", json=feedback_body(score="ten"))
    assert _seen(valid) == _seen(invalid)
    assert valid.status_code == 401
    assert valid.headers["www-authenticate"] == "Bearer"


async def test_a_body_the_gate_declines_gets_fastapis_answers(
    writer: httpx.AsyncClient,
) -> None:
    malformed = await writer.post(
        "/v1/feedback", content=b'{"source": ', headers={"Content-Type": "application/json"}
    )
    assert (malformed.status_code, malformed.json()["code"]) == (400, "malformed_json")
    invalid = await writer.post("/v1/feedback", json=feedback_body(score="ten"))
    assert invalid.status_code == 422
    assert [e["field"] for e in invalid.json()["errors"]] == ["score"]
    utf16 = await writer.post(
        "/v1/feedback",
        content=orjson.dumps(feedback_body(external_id="utf-16")).decode().encode("utf-16"),
        headers={"Content-Type": "application/json"},
    )
    # Python's JSON reader takes UTF-16 as FastAPI has always read it; orjson does not.
    assert utf16.status_code == 201, utf16.text
    assert utf16.json()["external_id"] == "utf-16"
    direct = await writer.post("/v1/feedback", json=feedback_body(external_id="utf-8"))
    assert direct.status_code == 201
    assert direct.json().keys() == utf16.json().keys()
    assert [name for name, _ in _seen(direct)[2]] == [name for name, _ in _seen(utf16)[2]]


async def test_a_served_item_carries_its_request_id(writer: httpx.AsyncClient) -> None:
    created = await writer.post(
        "/v1/feedback", json=feedback_body(), headers={"X-Request-ID": "ingest-1"}
    )
    assert created.status_code == 201
    assert created.headers["x-request-id"] == "ingest-1"
    assert created.headers["content-type"] == "application/json"
