"""One customer across channels: their feedback, cases and notifications (SPEC §4).

A customer is known by their external id, e-mail or phone. The lookup takes one step along the
identities it finds: asked for an e-mail, it also finds the app feedback that carried only the
external id that the same customer gave beside that e-mail on the web. Only verified identities
link: a claimed one (unsigned, from a publishable key) is listed, marked `verified: false`, but
leads nowhere and gives the customer no contact details.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.identity import case_number, customer_lookup_keys
from app.cases.models import Case
from app.cases.reads import case_summary
from app.cases.schemas import CaseCustomer, CaseFeedbackItem, CustomerView
from app.core.errors import NotFound
from app.notifications.schemas import NotificationRead
from app.notifications.service import customer_notifications

MAX_ITEMS = 500

# The customer's feedback, newest first (at most `limit` items), and the keys that found it:
# those asked for and the verified identities feedback gives beside them. The feedback room
# reads them (cases import no feedback); the app hands its reader to the route (create_app).
CustomerFeedback = Callable[
    [AsyncSession, set[str], int], Awaitable[tuple[set[str], list[dict[str, Any]]]]
]
_LINKS = text(
    "SELECT feedback_id, case_id, kind, added_at FROM case_feedback WHERE feedback_id = ANY(:ids)"
)
_UNLINKED = {"case_id": None, "kind": None, "added_at": None}
_SKIPPED = text(
    "SELECT case_id, 'not_sent' AS outcome, data->>'reason' AS reason, NULL AS message_id, "
    "NULL AS endpoint_id, 0 AS attempts, at FROM case_event "
    "WHERE case_id = ANY(:cases) AND type = 'notification_skipped'"
)


async def notifications(session: AsyncSession, cases: list[Case]) -> list[NotificationRead]:
    """Each time these cases' customer was to be told an outcome, and what came of it."""
    if not cases:
        return []
    numbers = {case.id: case_number(case.number) for case in cases}
    rows = await customer_notifications(session, list(numbers))
    skipped = await session.execute(_SKIPPED, {"cases": list(numbers)})
    rows += [dict(row) for row in skipped.mappings()]
    rows.sort(key=lambda row: row["at"], reverse=True)
    return [
        NotificationRead.model_validate({**row, "case_number": numbers[row["case_id"]]})
        for row in rows
    ]


# Each detail of the customer view, and the column that holds it in feedback and in cases.
_DETAILS = {
    "external_id": "customer_external_id",
    "email": "customer_email",
    "phone": "customer_phone",
    "name": "customer_name",
    "locale": "customer_locale",
    "contact_consent": "contact_consent",
}


def _customer(rows: list[Any], cases: list[Case]) -> CaseCustomer:
    """The newest value of each detail, from feedback (newest first), else from cases; from
    verified ones only, unless nothing about the customer is verified."""
    records = [
        {**{n: row[c] for n, c in _DETAILS.items()}, "verified": row["verified"]} for row in rows
    ]
    records += [
        {**{n: getattr(case, c) for n, c in _DETAILS.items()}, "verified": case.customer_verified}
        for case in cases
    ]
    verified = any(record["verified"] for record in records)
    details: dict[str, Any] = {"verified": verified}
    for record in records:
        if record["verified"] == verified:
            for name in _DETAILS:
                if details.get(name) is None:
                    details[name] = record[name]
    return CaseCustomer.model_validate(details)


async def customer_view(
    session: AsyncSession, key: str, customer_feedback: CustomerFeedback
) -> CustomerView:
    keys, found = await customer_feedback(session, set(customer_lookup_keys(key)), MAX_ITEMS)
    linked = await session.execute(_LINKS, {"ids": [row["id"] for row in found]})
    links = {link["feedback_id"]: link for link in linked.mappings()}
    rows = [{**row, **_UNLINKED, **links.get(row["id"], {})} for row in found]
    cases = list(
        await session.scalars(
            select(Case)
            .where(Case.customer_keys.overlap(list(keys)))
            .order_by(Case.created_at.desc(), Case.id.desc())
            .limit(MAX_ITEMS)
        )
    )
    if not rows and not cases:
        raise NotFound("No feedback or case has this customer.", code="customer_not_found")
    return CustomerView(
        customer=_customer(rows, cases),
        feedback=[CaseFeedbackItem.model_validate(dict(row)) for row in rows],
        cases=[case_summary(c) for c in cases],
        notifications=await notifications(session, cases),
    )
