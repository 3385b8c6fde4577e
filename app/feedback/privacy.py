"""A customer's right to be forgotten and to have a copy (SPEC §7), across every room that holds
something of theirs: each room forgets or exports its own rows (its `erasure.py`); this module
only finds the customer and puts the parts together.

A customer is known by an external id, e-mail or phone, and by every identity linked to it in
their customer record (app/cases/linking.py): all of them are erased together, the record with
them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cases import erasure as cases
from app.cases.customers import customer_scope
from app.cases.identity import customer_lookup_keys
from app.cases.schemas import CustomerIdentityRead
from app.core.errors import NotFound
from app.feedback import erasure as feedback
from app.notifications import erasure as notifications


def _unknown() -> NotFound:
    return NotFound("No feedback or case has this customer.", code="customer_not_found")


async def erase_customer(session: AsyncSession, key: str, *, actor: str) -> None:
    """Forget the customer everywhere, in the session's transaction; a customer erased before is
    done already, one never seen is a 404."""
    customer = await _customer(session, key)
    keys, case_ids = customer.keys, customer.case_ids
    # The records first: an item linking meanwhile waits, then finds the identities gone.
    await cases.erase_records(session, customer.records)
    erased = await feedback.erase_feedback(session, keys=keys, ids=customer.answers)
    if not erased.ids and not case_ids:
        if await cases.was_erased(session, customer_lookup_keys(key)):
            return
        raise _unknown()
    quoted = erased.quoted | set(keys)
    notes = await cases.erase_cases(session, case_ids, quoted=quoted, actor=actor)
    messages = await notifications.scrub_messages(
        session,
        case_ids=case_ids,
        feedback_ids=erased.ids,
        since=erased.first_received_at,
        quoted=quoted,
    )
    cases.record_erasure(
        session,
        keys=keys,
        actor=actor,
        feedback_items=len(erased.ids),
        case_ids=case_ids,
        notes=notes,
        messages=messages,
    )
    await session.flush()


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_UTC_Z)


async def _array(items: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield b"["
    first = True
    async for item in items:
        yield (b"" if first else b",") + _json(item)
        first = False
    yield b"]"


@dataclass(frozen=True)
class Customer:
    keys: list[str]
    # Their identities as recorded (app/cases/linking.py), and the records holding them.
    identities: list[dict[str, Any]]
    records: list[uuid.UUID]
    case_ids: list[uuid.UUID]
    # Their answers to follow-up questions, which may carry no identity.
    answers: list[uuid.UUID]
    items: list[uuid.UUID]
    # Some identity of theirs is verified: a claim naming them beside someone else is not theirs.
    known: bool


async def _customer(session: AsyncSession, key: str, *, theirs: bool = False) -> Customer:
    """The customer's identities, their cases and their follow-up answers: all that names them
    (to forget), or `theirs` (their copy): a known customer's without claims that also name
    someone else (app/feedback/erasure.py `_THEIRS`)."""
    scope = await customer_scope(session, key)
    keys, known = scope.keys, scope.known
    items = await feedback.feedback_ids_of(session, keys, known=known if theirs else None)
    case_ids = await cases.customer_case_ids(session, keys, items, known=theirs and known)
    return Customer(
        keys=keys,
        identities=[CustomerIdentityRead.model_validate(i).model_dump() for i in scope.identities],
        records=sorted({i.customer_id for i in scope.identities}),
        case_ids=case_ids,
        answers=await cases.followup_feedback_ids(session, case_ids),
        items=items,
        known=known,
    )


async def find_customer(session: AsyncSession, key: str) -> Customer:
    """The customer, or a 404 when nothing is held about them."""
    customer = await _customer(session, key, theirs=True)
    if not customer.case_ids and not customer.items:
        raise _unknown()
    return customer


async def export_customer(
    sessionmaker: async_sessionmaker[AsyncSession], customer: Customer
) -> AsyncIterator[bytes]:
    """Everything held about the customer as one JSON document, written as it is read: their
    feedback (follow-up answers among it, linked to their case), their cases with timelines and
    notes, and every notification about those cases with its outcome."""
    async with sessionmaker() as session, session.begin():
        yield b'{"identities":' + _json(customer.identities) + b',"feedback":'
        items = feedback.feedback_of(
            session, keys=customer.keys, known=customer.known, ids=customer.answers
        )
        async for chunk in _array(items):
            yield chunk
        yield b',"cases":'
        async for chunk in _array(cases.cases_of(session, customer.case_ids)):
            yield chunk
        yield b',"notifications":'
        async for chunk in _array(notifications.messages_of(session, customer.case_ids)):
            yield chunk
        yield b"}"
