"""One customer across channels: their identities, feedback, cases and notifications (SPEC §4).

A customer is known by any of their identities (external id, e-mail or phone): the lookup finds
the customer record holding it (app/cases/linking.py) and, through the record, every identity
linked to it, so asked for an e-mail it also finds the app feedback that carried only the
external id. Only verified identities link: a claimed one (unsigned, from a publishable key) is
listed, marked `verified: false`, but leads nowhere and gives the customer no contact details.
An admin undoes a wrong link by detaching an identity into a record of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.identity import IDENTITY_COLUMNS, case_number, customer_lookup_keys
from app.cases.models import Case, Customer, CustomerIdentity
from app.cases.reads import case_summary
from app.cases.schemas import CaseCustomer, CaseFeedbackItem, CustomerIdentityRead, CustomerView
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound
from app.notifications.schemas import NotificationRead
from app.notifications.service import customer_notifications

MAX_ITEMS = 500

# The customer's feedback bearing one of these keys, newest first (at most `limit` items). The
# feedback room reads it (cases import no feedback); the app hands its reader to the route
# (create_app).
CustomerFeedback = Callable[[AsyncSession, list[str], bool, int], Awaitable[list[dict[str, Any]]]]
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


async def linked_identities(session: AsyncSession, keys: list[str]) -> list[CustomerIdentity]:
    """Every identity of the customers these keys (stored forms) are identities of, oldest
    first (of one item: external id, e-mail, phone)."""
    owners = select(CustomerIdentity.customer_id).where(CustomerIdentity.value.in_(keys))
    found = await session.scalars(
        select(CustomerIdentity)
        .where(CustomerIdentity.customer_id.in_(owners))
        .order_by(
            CustomerIdentity.first_seen_at,
            case({kind: n for n, kind in enumerate(IDENTITY_COLUMNS)}, value=CustomerIdentity.kind),
            CustomerIdentity.value,
        )
        .limit(MAX_ITEMS)
    )
    return list(found)


@dataclass(frozen=True, slots=True)
class CustomerScope:
    """What one asked-for key reaches through the customer records: every linked identity,
    their stored keys and the records themselves (a case names its record in customer_key)."""

    identities: list[CustomerIdentity]
    keys: list[str]
    records: list[str]

    @property
    def known(self) -> bool:
        """Whether some identity of theirs is verified: a known customer, whom a claim naming
        them beside someone else does not reach."""
        return any(identity.verified for identity in self.identities)

    def cases(self) -> ColumnElement[bool]:
        """The customer's cases: opened under one of their records or bearing one of their
        keys (cases opened before the identities were linked)."""
        return or_(Case.customer_key.in_(self.records), cases_bearing(self.keys, known=self.known))


def cases_bearing(keys: list[str], *, known: bool) -> ColumnElement[bool]:
    """Cases bearing one of these keys. A case a claim opened is a known customer's (some
    identity verified) only when every identity it names is theirs: anyone may type their id
    beside an address of their own into a web page."""
    bearing: ColumnElement[bool] = Case.customer_keys.overlap(keys)
    if not known:
        return bearing
    return and_(bearing, or_(Case.customer_verified, Case.customer_keys.contained_by(keys)))


async def customer_scope(session: AsyncSession, key: str) -> CustomerScope:
    asked = customer_lookup_keys(key)
    identities = await linked_identities(session, asked)
    return CustomerScope(
        identities=identities,
        keys=sorted({*asked, *(i.value for i in identities)}),
        records=sorted({str(i.customer_id) for i in identities}),
    )


def _unknown() -> NotFound:
    return NotFound("No feedback or case has this customer.", code="customer_not_found")


async def customer_view(
    session: AsyncSession, key: str, customer_feedback: CustomerFeedback
) -> CustomerView:
    scope = await customer_scope(session, key)
    found = await customer_feedback(session, scope.keys, scope.known, MAX_ITEMS)
    linked = await session.execute(_LINKS, {"ids": [row["id"] for row in found]})
    links = {link["feedback_id"]: link for link in linked.mappings()}
    rows = [{**row, **_UNLINKED, **links.get(row["id"], {})} for row in found]
    cases = list(
        await session.scalars(
            select(Case)
            .where(scope.cases())
            .order_by(Case.created_at.desc(), Case.id.desc())
            .limit(MAX_ITEMS)
        )
    )
    if not rows and not cases:
        raise _unknown()
    return CustomerView(
        customer=_customer(rows, cases),
        identities=[CustomerIdentityRead.model_validate(i) for i in scope.identities],
        feedback=[CaseFeedbackItem.model_validate(dict(row)) for row in rows],
        cases=[case_summary(c) for c in cases],
        notifications=await notifications(session, cases),
    )


async def detach_identity(session: AsyncSession, key: str, identity: str, *, actor: str) -> None:
    """Undo a wrong link: move the identity out of the customer's record into one of its own,
    which linking never merges again (app/cases/linking.py). The cases already open stay with
    the customer; later items with the identity open or join cases of its own record."""
    owners = select(CustomerIdentity.customer_id).where(
        CustomerIdentity.value.in_(customer_lookup_keys(key))
    )
    # Locked as linking locks them (records in id order), so an item linking meanwhile waits.
    records = list(
        await session.scalars(
            select(Customer.id)
            .where(Customer.id.in_(owners))
            .order_by(Customer.id)
            .with_for_update()
        )
    )
    if not records:
        raise _unknown()
    found = list(
        await session.scalars(
            select(CustomerIdentity)
            .where(
                CustomerIdentity.customer_id.in_(records),
                CustomerIdentity.value.in_(customer_lookup_keys(identity)),
            )
            .order_by(CustomerIdentity.id)
            .with_for_update()
        )
    )
    if not found:
        raise NotFound("The customer has no such identity.", code="identity_not_found")
    for detached in found:
        others = await session.scalar(
            select(func.count())
            .select_from(CustomerIdentity)
            .where(
                CustomerIdentity.customer_id == detached.customer_id,
                CustomerIdentity.id.not_in([i.id for i in found]),
            )
        )
        if not others:
            raise Conflict(
                "This is the customer's only identity: it is linked to nothing.",
                code="identity_not_linked",
            )
    record = Customer(created_at=utcnow())
    session.add(record)
    await session.flush()
    for detached in found:
        detached.customer_id = record.id
        detached.detached_at = record.created_at
        detached.detached_by = actor
    await session.flush()
