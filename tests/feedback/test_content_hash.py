"""The content hash tells a replay from a conflict against hashes stored by earlier versions:
its bytes must not move."""

from __future__ import annotations

import hashlib

import orjson

from app.feedback.derive import content_hash
from app.feedback.schemas import FeedbackCreate
from tests.builders import feedback_body


def test_the_content_hash_is_the_one_stored_items_carry() -> None:
    payload = FeedbackCreate.model_validate(
        feedback_body(
            comment="Entrega atrasada e ninguém respondeu",
            tags=["delivery"],
            attributes={"plan": "pro", "order_id": "A-1009", "seats": 3, "trial": False},
            submitted_at="2026-12-07T10:00:00+01:00",
        )
    )
    # As the first version computed it, and as every stored request_hash was made.
    former = payload.model_dump_json(exclude={"attributes"}).encode() + orjson.dumps(
        payload.attributes, option=orjson.OPT_SORT_KEYS
    )
    assert content_hash(payload) == hashlib.sha256(former).hexdigest()
    reordered = FeedbackCreate.model_validate(
        {**payload.model_dump(), "attributes": dict(reversed(payload.attributes.items()))}
    )
    assert content_hash(reordered) == content_hash(payload)
