"""Delighted, Zendesk, Tally and Standard Webhooks deliveries, each with its traps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.builders import case_events, open_case
from tests.connectors.deliveries import (
    DELIGHTED_TOKEN,
    STANDARD_SECRET,
    TALLY_SECRET,
    ZENDESK_SECRET,
    create_connector,
    delighted_event,
    raw,
    standard_headers,
    tally_headers,
    tally_response,
    zendesk_headers,
    zendesk_rating,
)


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], status: int = 200
) -> dict[str, Any]:
    response = await client.post(url, content=body, headers=headers)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


# Delighted: a token (its webhooks are not signed), score first, comment in an update.

DELIGHTED = "/v1/connectors/delighted/nps-email"


def delighted(document: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return raw(document), {"Content-Type": "application/json", "X-Closeloop-Token": DELIGHTED_TOKEN}


async def test_delighted_score_then_comment_is_one_item_updated(
    admin: httpx.AsyncClient,
) -> None:
    await create_connector(admin, "delighted", "nps-email", secret=DELIGHTED_TOKEN)
    created = await post(admin, DELIGHTED, *delighted(delighted_event("5435", score=2)))
    item = created["feedback"]
    assert created["status"] == "created"
    assert (item["channel"], item["metric"], item["score"], item["comment"]) == (
        "email",
        "nps",
        2,
        None,
    )
    assert item["customer"]["email"] == "charlie@example.com"
    assert item["submitted_at"] == "2025-12-01T10:01:00Z"
    updated = await post(
        admin,
        DELIGHTED,
        *delighted(
            delighted_event(
                "5435", kind="survey_response.updated", score=2, comment="Support never called back"
            )
        ),
    )
    assert updated["status"] == "updated"
    assert updated["feedback"]["id"] == item["id"]
    assert updated["feedback"]["comment"] == "Support never called back"
    events = await case_events(admin, item["case"]["id"])
    assert [e["type"] for e in events][-1] == "feedback_updated"
    listed = (await admin.get("/v1/feedback", params={"source": "nps-email"})).json()["items"]
    assert len(listed) == 1


async def test_a_connector_made_again_updates_what_its_predecessor_stored(
    admin: httpx.AsyncClient,
) -> None:
    """Deleted and made again for the same tool and source (a new token, say), the connector
    still updates the responses the old one stored: they were once its id's alone, a 404."""
    first = await create_connector(admin, "delighted", "nps-email", secret=DELIGHTED_TOKEN)
    created = await post(admin, DELIGHTED, *delighted(delighted_event("77", score=2)))
    assert (await admin.delete(f"/v1/connectors/{first['id']}")).status_code == 204
    await create_connector(admin, "delighted", "nps-email", secret=DELIGHTED_TOKEN)
    later = delighted_event("77", kind="survey_response.updated", score=2, comment="Still broken")
    updated = await post(admin, DELIGHTED, *delighted(later))
    assert updated["status"] == "updated"
    assert updated["feedback"]["id"] == created["feedback"]["id"]
    assert updated["feedback"]["comment"] == "Still broken"


async def test_an_older_event_arriving_late_changes_nothing(admin: httpx.AsyncClient) -> None:
    """Delighted's `updated` (with the comment) delivered before its `created` (without): the
    late `created` is older by `updated_at`, so it is ignored and the comment stays."""
    await create_connector(admin, "delighted", "nps-email", secret=DELIGHTED_TOKEN)
    newer = delighted_event("88", kind="survey_response.updated", score=2, comment="Billed twice")
    older = delighted_event("88", score=2)
    newer["event_data"]["updated_at"] = older["event_data"]["updated_at"] + 60
    first = await post(admin, DELIGHTED, *delighted(newer))
    assert first["status"] == "created"
    late = await post(admin, DELIGHTED, *delighted(older))
    assert late["status"] == "ignored"
    [item] = (await admin.get("/v1/feedback", params={"source": "nps-email"})).json()["items"]
    assert item["comment"] == "Billed twice"
    # A later version still updates.
    later = delighted_event("88", kind="survey_response.updated", score=1, comment="Billed twice")
    later["event_data"]["updated_at"] = newer["event_data"]["updated_at"] + 60
    assert (await post(admin, DELIGHTED, *delighted(later)))["status"] == "updated"


async def test_delighted_token_in_the_url_or_header_and_nothing_else(
    admin: httpx.AsyncClient,
) -> None:
    await create_connector(admin, "delighted", "nps-email", secret=DELIGHTED_TOKEN)
    body = raw(delighted_event("1", score=10))
    plain = {"Content-Type": "application/json"}
    await post(admin, f"{DELIGHTED}?token={DELIGHTED_TOKEN}", body, plain)
    wrong = await admin.post(f"{DELIGHTED}?token=guess", content=body, headers=plain)
    assert wrong.status_code == 401
    assert (await admin.post(DELIGHTED, content=body, headers=plain)).status_code == 401


async def test_delighted_thumbs_are_good_or_bad_and_zero_is_a_score(
    admin: httpx.AsyncClient,
) -> None:
    await create_connector(admin, "delighted", "nps-email", secret=DELIGHTED_TOKEN)
    down = await post(
        admin, DELIGHTED, *delighted(delighted_event("t1", survey_type="thumbs", score=0))
    )
    assert (down["feedback"]["metric"], down["feedback"]["score"]) == ("csat", 1)
    assert down["feedback"]["attributes"] == {"rating": "bad", "score_scale": "good/bad"}
    assert down["feedback"]["case"] is not None
    up = await post(
        admin, DELIGHTED, *delighted(delighted_event("t2", survey_type="thumbs", score=1))
    )
    assert (up["feedback"]["score"], up["feedback"]["category"]) == (5, "positive")
    nps_zero = await post(admin, DELIGHTED, *delighted(delighted_event("n0", score=0)))
    assert nps_zero["feedback"]["score"] == 0
    ces = await post(
        admin, DELIGHTED, *delighted(delighted_event("c1", survey_type="ces", score="6"))
    )
    assert (ces["feedback"]["metric"], ces["feedback"]["score"]) == ("ces", 6)


async def test_delighted_duplicate_delivery_and_missing_email(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "delighted", "nps-email", secret=DELIGHTED_TOKEN)
    document = delighted_event("9", score=4, email=None, event_id="evt-9")
    first = await post(admin, DELIGHTED, *delighted(document))
    assert first["feedback"]["customer"]["email"] is None
    again = await post(admin, DELIGHTED, *delighted(document))
    assert again["status"] == "duplicate"
    ignored = await post(
        admin, DELIGHTED, *delighted({"event_type": "unsubscribe.created", "event_id": "u1"})
    )
    assert ignored["status"] == "ignored"


async def test_delighted_time_out_of_range_is_a_422(admin: httpx.AsyncClient) -> None:
    """Unix seconds no calendar holds were once a 500 (an OverflowError unanswered)."""
    await create_connector(admin, "delighted", "nps-email", secret=DELIGHTED_TOKEN)
    for seconds in (10**14, -(10**14), 1e300):
        document = delighted_event("10", score=4, event_id=f"evt-{seconds}")
        document["event_data"]["created_at"] = seconds
        response = await admin.post(
            DELIGHTED, content=raw(document), headers=delighted(document)[1]
        )
        assert response.status_code == 422, (seconds, response.text)
        [error] = response.json()["errors"]
        assert error["type"] == "time_invalid"
    listed = await admin.get("/v1/feedback", params={"source": "nps-email"})
    assert listed.json()["items"] == []


# Zendesk: the trigger's JSON, signed with timestamp + body; a good/bad rating.

ZENDESK = "/v1/connectors/zendesk/helpdesk"


async def test_zendesk_bad_rating_is_a_csat_on_its_own_scale(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "zendesk", "helpdesk", secret=ZENDESK_SECRET)
    body = raw(zendesk_rating(8812))
    answer = await post(admin, ZENDESK, body, zendesk_headers(body))
    item = answer["feedback"]
    assert answer["response_id"] == "8812"
    assert (item["metric"], item["score"], item["category"]) == ("csat", 1, "negative")
    assert item["attributes"] == {
        "rating": "bad",
        "score_scale": "good/bad",
        "time_zone_assumed": "UTC",
    }
    assert item["submitted_at"] == "2026-12-01T09:00:00Z"  # zoneless, read as UTC
    assert item["customer"]["external_id"] == "cus_9"
    assert item["case"]["status"] == "open"


async def test_zendesk_signature_needs_a_fresh_timestamp(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "zendesk", "helpdesk", secret=ZENDESK_SECRET)
    body = raw(zendesk_rating(1))
    old = zendesk_headers(body, at=datetime.now(UTC) - timedelta(hours=1))
    assert (await admin.post(ZENDESK, content=body, headers=old)).status_code == 401
    forged = zendesk_headers(body, secret="another")
    assert (await admin.post(ZENDESK, content=body, headers=forged)).status_code == 401


async def test_zendesk_offered_then_rated_then_changed(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "zendesk", "helpdesk", secret=ZENDESK_SECRET)
    offered = raw(zendesk_rating(7, rating="Offered", comment=None))
    answer = await post(admin, ZENDESK, offered, zendesk_headers(offered, invocation="a"))
    assert answer["status"] == "partial"
    good = raw(zendesk_rating(7, rating="Good, I'm satisfied", comment="Quick fix"))
    answer = await post(admin, ZENDESK, good, zendesk_headers(good, invocation="b"))
    assert answer["status"] == "created"
    assert answer["feedback"]["case"] is None
    bad = raw(zendesk_rating(7, rating="Bad, I'm unsatisfied", comment="It broke again"))
    changed = await post(admin, ZENDESK, bad, zendesk_headers(bad, invocation="c"))
    assert changed["status"] == "updated"
    assert changed["feedback"]["id"] == answer["feedback"]["id"]
    assert changed["feedback"]["case"] is not None  # now negative: a case is opened
    retried = await post(admin, ZENDESK, bad, zendesk_headers(bad, invocation="c"))
    assert retried["status"] == "duplicate"


async def test_zendesk_rating_of_the_wrong_shape_is_a_422(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "zendesk", "helpdesk", secret=ZENDESK_SECRET)
    body = raw(zendesk_rating(3, rating="{{satisfaction.current_rating}}"))
    response = await admin.post(ZENDESK, content=body, headers=zendesk_headers(body))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "rating"


# Tally: base64 signature; ratings as given, choices as option ids.

TALLY = "/v1/connectors/tally/support-form"


async def test_tally_string_rating_opens_a_case(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "tally", "support-form", secret=TALLY_SECRET)
    body = raw(tally_response("r1", rating="2"))
    item = (await post(admin, TALLY, body, tally_headers(body)))["feedback"]
    assert (item["metric"], item["score"], item["comment"]) == ("star", 2, "Too slow")
    assert item["customer"]["email"] == "eve@example.com"
    assert item["case"] is not None


async def test_an_e_mail_typed_into_a_form_is_a_claim_unless_the_mapping_vouches(
    admin: httpx.AsyncClient,
) -> None:
    """Anyone can type Eve's address into a public form: that item is unverified and does not
    join Eve's open case. Naming the field in the mapping is the admin vouching for it."""
    eves = await open_case(admin, customer={"email": "eve@example.com"})
    connector = await create_connector(admin, "tally", "support-form", secret=TALLY_SECRET)
    body = raw(tally_response("r1", rating="2"))
    typed = (await post(admin, TALLY, body, tally_headers(body)))["feedback"]
    assert typed["customer"]["email"] == "eve@example.com"
    assert typed["customer"]["verified"] is False
    assert typed["case"] is not None
    assert typed["case"]["id"] != eves["id"]

    await admin.patch(
        f"/v1/connectors/{connector['id']}", json={"mapping": {"email": "question_mail"}}
    )
    body = raw(tally_response("r2", rating="1"))
    vouched = (await post(admin, TALLY, body, tally_headers(body)))["feedback"]
    assert vouched["customer"]["verified"] is True
    assert vouched["case"]["id"] == eves["id"]


async def test_tally_choice_ids_score_through_the_mapping(admin: httpx.AsyncClient) -> None:
    await create_connector(
        admin,
        "tally",
        "support-form",
        secret=TALLY_SECRET,
        mapping={
            "metric": "ces",
            "field": "question_effort",
            "choices": {"opt-hard": 1, "opt-ok": 4, "opt-easy": 7},
            "attributes": ["Why?"],
        },
    )
    body = raw(tally_response("r2", choice=["opt-hard"]))
    item = (await post(admin, TALLY, body, tally_headers(body)))["feedback"]
    assert (item["metric"], item["score"], item["category"]) == ("ces", 1, "negative")
    assert item["attributes"] == {"Why?": "Too slow"}


async def test_tally_missing_scale_then_configured(admin: httpx.AsyncClient) -> None:
    """A 10-star rating without a scale in the mapping: 8 is refused, naming the field; with
    the scale it is a 4 of 5."""
    connector = await create_connector(admin, "tally", "support-form", secret=TALLY_SECRET)
    body = raw(tally_response("r3", rating=8))
    response = await admin.post(TALLY, content=body, headers=tally_headers(body))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "question_rating"
    await admin.patch(f"/v1/connectors/{connector['id']}", json={"mapping": {"scale": [1, 10]}})
    item = (await post(admin, TALLY, body, tally_headers(body)))["feedback"]
    assert (item["metric"], item["score"]) == ("star", 4)
    assert item["attributes"] == {"score_raw": 8, "score_scale": "1-10"}


async def test_tally_forged_signature_is_refused(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "tally", "support-form", secret=TALLY_SECRET)
    body = raw(tally_response("r4"))
    response = await admin.post(TALLY, content=body, headers=tally_headers(body, "wrong"))
    assert response.status_code == 401


# Standard Webhooks: our own format, verified like any Standard Webhooks receiver would.

STANDARD = "/v1/connectors/standard/ios-app"


def standard(kind: str, **data: Any) -> bytes:
    content = {"channel": "app", "external_id": "resp-1", "metric": "csat", "score": 2, **data}
    return raw({"type": kind, "timestamp": "2026-12-01T10:00:00Z", "data": content})


async def test_standard_webhooks_submit_update_partial(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "standard", "ios-app", secret=STANDARD_SECRET)
    partial = standard("feedback.partial", score=None, metric=None)
    assert (await post(admin, STANDARD, partial, standard_headers(partial, "msg_0")))[
        "status"
    ] == "partial"
    body = standard("feedback.submitted")
    created = await post(admin, STANDARD, body, standard_headers(body, "msg_1"))
    assert created["status"] == "created"
    assert created["feedback"]["external_id"] == "resp-1"
    duplicate = await post(admin, STANDARD, body, standard_headers(body, "msg_1"))
    assert duplicate["status"] == "duplicate"
    changed = standard("feedback.updated", score=4, comment="Sorted out")
    updated = await post(admin, STANDARD, changed, standard_headers(changed, "msg_2"))
    assert updated["status"] == "updated"
    assert updated["feedback"]["score"] == 4


async def test_standard_webhooks_refuse_a_bad_signature_or_score(
    admin: httpx.AsyncClient,
) -> None:
    await create_connector(admin, "standard", "ios-app", secret=STANDARD_SECRET)
    body = standard("feedback.submitted")
    headers = standard_headers(body, "msg_1", secret="whsec_" + "A" * 32)
    assert (await admin.post(STANDARD, content=body, headers=headers)).status_code == 401
    out_of_range = standard("feedback.submitted", score=9)
    response = await admin.post(
        STANDARD, content=out_of_range, headers=standard_headers(out_of_range, "msg_2")
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "score"
    listed = (await admin.get("/v1/feedback", params={"source": "ios-app"})).json()["items"]
    assert listed == []


# Replay: a mapping change applied to what was stored before.


async def test_replay_renormalizes_stored_payloads(admin: httpx.AsyncClient) -> None:
    connector = await create_connector(admin, "tally", "support-form", secret=TALLY_SECRET)
    body = raw(tally_response("r5", rating=4))
    item = (await post(admin, TALLY, body, tally_headers(body)))["feedback"]
    assert (item["metric"], item["score"]) == ("star", 4)
    url = f"/v1/connectors/{connector['id']}"
    await admin.patch(url, json={"mapping": {"metric": "csat", "field": "question_rating"}})
    report = (await admin.post(f"{url}/replay")).json()
    assert report == {"replayed": 1, "failed": []}
    again = (await admin.get(f"/v1/feedback/{item['id']}")).json()
    assert (again["metric"], again["score"]) == ("csat", 4)
    # A mapping the stored payloads do not fit: each response says why, nothing changes.
    await admin.patch(url, json={"mapping": {"metric": "nps", "field": "Why?"}})
    report = (await admin.post(f"{url}/replay")).json()
    assert report["replayed"] == 0
    assert report["failed"][0]["response_id"] == "r5"
    assert report["failed"][0]["problem"]["errors"][0]["field"] == "Why?"
    assert (await admin.get(f"/v1/feedback/{item['id']}")).json()["metric"] == "csat"
