"""The documents built by hand for speed (app/feedback/reads.py feedback_document,
app/cases/reads.py case_document) against the pydantic schemas the contract publishes: every
answer validates, and validating it changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from app.cases.schemas import CaseRead
from app.feedback.schemas import FeedbackRead
from tests.builders import feedback_body, open_case


def assert_documented(schema: type[BaseModel], documents: list[dict[str, Any]]) -> None:
    assert documents
    for document in documents:
        assert schema.model_validate(document).model_dump(mode="json") == document


async def test_every_feedback_answer_keeps_the_documented_schema(
    writer: httpx.AsyncClient,
) -> None:
    created = await writer.post(
        "/v1/feedback", json=feedback_body(submitted_at="2026-11-20T10:30:00+02:00")
    )
    replayed = await writer.post(
        "/v1/feedback", json=feedback_body(), headers={"Idempotency-Key": "k"}
    )
    read = await writer.get(f"/v1/feedback/{created.json()['id']}")
    listed = await writer.get("/v1/feedback")
    documents = [created.json(), replayed.json(), read.json(), *listed.json()["items"]]
    assert_documented(FeedbackRead, documents)
    # Times are RFC 3339 in UTC, whatever offset they were sent with.
    assert created.json()["submitted_at"] == "2026-11-20T08:30:00Z"
    assert read.json()["submitted_at"] == "2026-11-20T08:30:00Z"


async def test_every_case_answer_keeps_the_documented_schema(admin: httpx.AsyncClient) -> None:
    case = await open_case(admin, score=0, comment="still broken")
    joined = await open_case(admin, score=1, comment="and again")
    changed = (
        await admin.patch(
            f"/v1/cases/{case['id']}",
            json={"assignee": "ana"},
            headers={"If-Match": f'"{joined["version"]}"'},
        )
    ).json()
    listed = (await admin.get("/v1/cases")).json()["items"]
    assert_documented(CaseRead, [case, joined, changed, *listed])
