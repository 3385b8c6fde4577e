"""Comment retention: old feedback loses its words and contact, the figures stay (SPEC §7)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from app.core.db import BoundDatabase, utcnow
from app.feedback.retention import age_out_pass
from tests.builders import send_feedback


def days_ago(days: int) -> str:
    return (utcnow() - timedelta(days=days)).isoformat()


async def test_feedback_older_than_the_retention_loses_comment_and_contact_in_batches(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    for n, age in enumerate((400, 500, 600, 10)):
        await send_feedback(
            admin,
            external_id=f"item-{n}",
            customer={"external_id": f"cus_{n}", "email": f"c{n}@example.com", "name": "Zé"},
            metric="nps",
            score=9,
            comment=f"Lovely, thank you ({n})",
            submitted_at=days_ago(age),
        )
    period = {"from": days_ago(700)[:10], "to": utcnow().date().isoformat()}
    params = {"metric": "nps", "group_by": "month", **period}
    before = (await admin.get("/v1/reports/scores", params=params)).json()

    blanked = await age_out_pass(database.sessionmaker, days=365, batch=2)

    assert blanked == 3
    async with database.raw() as conn:
        rows = await conn.fetch(
            "SELECT external_id, comment, customer_external_id, customer_email, customer_name, "
            "score, metric FROM feedback ORDER BY external_id"
        )
    assert [tuple(r) for r in rows] == [
        ("item-0", None, None, None, None, 9, "nps"),
        ("item-1", None, None, None, None, 9, "nps"),
        ("item-2", None, None, None, None, 9, "nps"),
        ("item-3", "Lovely, thank you (3)", "cus_3", "c3@example.com", "Zé", 9, "nps"),
    ]
    assert (await admin.get("/v1/reports/scores", params=params)).json() == before
    assert await age_out_pass(database.sessionmaker, days=365) == 0  # nothing left to blank
