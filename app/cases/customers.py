"""One customer across channels: their feedback, cases and notifications (SPEC §4).

A customer is known by their external id, e-mail or phone. The lookup takes one step along the
identities it finds: asked for an e-mail, it also finds the app feedback that carried only the
external id that the same customer gave beside that e-mail on the web. Only verified identities
link: a claimed one (unsigned, from a publishable key) is listed, marked `verified: false`, but
leads nowhere and gives the customer no contact details.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.identity import case_number, customer_lookup_keys
from app.cases.models import Case
from app.cases.reads import case_summary
from app.cases.schemas import CaseCustomer, CaseFeedbackItem, CustomerView
from app.core.errors import NotFound
from app.notifications.schemas import NotificationRead

MAX_ITEMS = 500

_IDENTITIES = text(
    "SELECT DISTINCT customer_external_id, customer_email, customer_phone FROM feedback "
    "WHERE (customer_external_id = ANY(:keys) OR customer_email = ANY(:keys) "
    "OR customer_phone = ANY(:keys)) AND customer_verified LIMIT 100"
)
_FEEDBACK = text(
    "SELECT f.id, f.source, f.channel, f.external_id, f.metric, f.score, f.category, "
    "f.sentiment, f.comment, f.tags, f.submitted_at, f.customer_external_id, f.customer_email, "
    "f.customer_phone, f.customer_name, f.customer_locale, f.contact_consent, "
    "f.customer_verified AS verified, cf.case_id, cf.kind, cf.added_at "
    "FROM feedback f LEFT JOIN case_feedback cf ON cf.feedback_id = f.id "
    "WHERE f.customer_external_id = ANY(:keys) OR f.customer_email = ANY(:keys) "
    "OR f.customer_phone = ANY(:keys) "
    "ORDER BY f.submitted_at DESC, f.id DESC LIMIT :limit"
)


_NOTIFICATIONS = text(
    "SELECT m.case_id, c.number, m.status AS outcome, NULL AS reason, m.id AS message_id, "
    "m.endpoint_id, m.attempts, m.created_at AS at "
    "FROM outbox_message m JOIN feedback_case c ON c.id = m.case_id "
    "WHERE m.case_id = ANY(:cases) AND m.event_type = 'case.resolved' "
    "UNION ALL "
    "SELECT ev.case_id, c.number, 'not_sent', ev.data->>'reason', NULL, NULL, 0, ev.at "
    "FROM case_event ev JOIN feedback_case c ON c.id = ev.case_id "
    "WHERE ev.case_id = ANY(:cases) AND ev.type = 'notification_skipped' "
    "ORDER BY at DESC"
)


async def notifications(session: AsyncSession, case_ids: list[uuid.UUID]) -> list[NotificationRead]:
    """Each time these cases' customer was to be told an outcome, and what came of it."""
    if not case_ids:
        return []
    rows = (await session.execute(_NOTIFICATIONS, {"cases": case_ids})).mappings()
    return [
        NotificationRead.model_validate({**row, "case_number": case_number(row["number"])})
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


async def customer_view(session: AsyncSession, key: str) -> CustomerView:
    keys = set(customer_lookup_keys(key))
    for row in (await session.execute(_IDENTITIES, {"keys": list(keys)})).all():
        keys.update(k for k in row if k is not None)
    rows = list(
        (await session.execute(_FEEDBACK, {"keys": list(keys), "limit": MAX_ITEMS})).mappings()
    )
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
        notifications=await notifications(session, [c.id for c in cases]),
    )
