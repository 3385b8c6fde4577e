"""HTTP for cases and the customer view."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases import reads, schemas, service
from app.cases.customers import customer_scope, customer_view, detach_identity
from app.cases.models import Case
from app.core.auth import Admin, CasesReader, CasesWriter
from app.core.db import SessionDep
from app.core.etag import etag
from app.core.metrics import count_case_resolved
from app.core.routes import answers, creates, empties
from app.core.schemas import Page, PageDep, PageLimit, json_bytes

router = APIRouter(prefix="/v1/cases", tags=["cases"])
customers = APIRouter(prefix="/v1/customers", tags=["customers"])

IfMatch = Annotated[
    str | None, Header(description="The case's ETag (its version), from your last read of it.")
]
_CHANGE = answers(schemas.CaseRead, 404, 409, 412, 422, 428)


def _case_items(request: Request) -> reads.CaseItems:
    """The reader of cases' feedback the app was given (create_app): cases import no feedback."""
    case_items: reads.CaseItems = request.app.state.case_items
    return case_items


CaseItemsDep = Annotated[reads.CaseItems, Depends(_case_items)]


async def _answer(session: AsyncSession, case: Case, case_items: reads.CaseItems) -> Response:
    document = await reads.read_case(session, case, case_items)
    return Response(
        json_bytes(document), media_type="application/json", headers={"ETag": etag(case.version)}
    )


@router.get("", **answers(Page[schemas.CaseRead], 400, 422))
async def list_cases(
    session: SessionDep,
    case_items: CaseItemsDep,
    _: CasesReader,
    filters: Annotated[schemas.CaseFilter, Depends()],
    page: PageDep,
) -> Response:
    """A queue of cases, a page at a time; pass `next_cursor` back as `cursor`."""
    # Through the customer's record: asked by e-mail, it finds the case opened by the app item
    # that carried only the external id linked to that e-mail.
    customer_cases = None
    if filters.customer is not None:
        customer_cases = (await customer_scope(session, filters.customer)).cases()
    items, next_cursor = await reads.list_cases(
        session,
        filters,
        customer_cases=customer_cases,
        limit=page.limit,
        cursor=page.cursor,
        case_items=case_items,
    )
    return Response(
        json_bytes({"items": items, "next_cursor": next_cursor}), media_type="application/json"
    )


@router.get("/{case_id}", **answers(schemas.CaseRead, 404))
async def get_case(
    case_id: uuid.UUID, session: SessionDep, case_items: CaseItemsDep, _: CasesReader
) -> Response:
    """One case, with its feedback newest first; its version is the ETag."""
    return await _answer(session, await reads.get_case(session, case_id), case_items)


class CaseChange:
    """What every change of a case takes besides its own input: the session, who acts, the
    version they last read (If-Match), and the reader of the items to answer the case with."""

    def __init__(
        self,
        session: SessionDep,
        case_items: CaseItemsDep,
        principal: CasesWriter,
        if_match: IfMatch = None,
    ) -> None:
        self.session = session
        self.case_items = case_items
        self.actor = principal.name
        self.if_match = if_match

    async def answer(self, case: Case) -> Response:
        """The changed case, as a read of it answers it (its new version the ETag)."""
        return await _answer(self.session, case, self.case_items)


Change = Annotated[CaseChange, Depends()]


@router.patch("/{case_id}", **_CHANGE)
async def update_case(case_id: uuid.UUID, data: schemas.CaseUpdate, change: Change) -> Response:
    """Take a case, wait on the customer, reassign, reprioritise or retag it. Needs If-Match
    (428 without, 412 when stale); a move between statuses that is not allowed is a 409."""
    case = await service.update_case(
        change.session, case_id, data, if_match=change.if_match, actor=change.actor
    )
    return await change.answer(case)


@router.post("/{case_id}/resolve", **_CHANGE)
async def resolve_case(
    case_id: uuid.UUID, data: schemas.ResolveIn, request: Request, change: Change
) -> Response:
    """Resolve a case with what was done and, unless `notify_customer` is false, the message
    the customer is to be told."""
    case = await service.resolve_case(
        change.session,
        case_id,
        data,
        if_match=change.if_match,
        actor=change.actor,
        public_url=request.app.state.settings.public_url,
    )
    count_case_resolved(case.team)
    return await change.answer(case)


@router.post("/{case_id}/reopen", **_CHANGE)
async def reopen_case(case_id: uuid.UUID, data: schemas.ReopenIn, change: Change) -> Response:
    """Reopen a resolved or closed case, saying why."""
    case = await service.reopen_case(
        change.session, case_id, data, if_match=change.if_match, actor=change.actor
    )
    return await change.answer(case)


@router.post("/{case_id}/close", **_CHANGE)
async def close_case(case_id: uuid.UUID, change: Change) -> Response:
    """Close a resolved case (resolved cases also close by themselves after a quiet period)."""
    case = await service.close_case(
        change.session, case_id, if_match=change.if_match, actor=change.actor
    )
    return await change.answer(case)


@router.post("/{case_id}/notes", **creates(schemas.CaseEventRead, 404, 412, 422, 428))
async def add_note(
    case_id: uuid.UUID, data: schemas.NoteIn, change: Change
) -> schemas.CaseEventRead:
    """Add an internal note to the case's timeline (never shown to the customer)."""
    event = await service.add_note(
        change.session, case_id, data.body, if_match=change.if_match, actor=change.actor
    )
    return schemas.CaseEventRead.model_validate(event)


@router.get("/{case_id}/events", **answers(Page[schemas.CaseEventRead], 400, 404, 422))
async def list_case_events(
    case_id: uuid.UUID,
    session: SessionDep,
    _: CasesReader,
    limit: PageLimit = 100,
    cursor: str | None = None,
) -> Page[schemas.CaseEventRead]:
    """The case's timeline, oldest first: every change, who made it and when."""
    events, next_cursor = await reads.list_events(session, case_id, limit=limit, cursor=cursor)
    return Page(
        items=[schemas.CaseEventRead.model_validate(e) for e in events], next_cursor=next_cursor
    )


@customers.get("/{key}", **answers(schemas.CustomerView, 404))
async def get_customer(
    key: str, request: Request, session: SessionDep, _: CasesReader
) -> schemas.CustomerView:
    """One customer across every channel, by external id, e-mail or phone: their feedback,
    cases and notifications, newest first."""
    return await customer_view(session, key, request.app.state.customer_feedback)


def _identity_path(description: str) -> Any:
    return Path(min_length=1, max_length=320, pattern=r"^[^\x00]+$", description=description)


@customers.delete("/{key}/identities/{identity}", **empties(404, 409, 422))
async def detach_customer_identity(
    key: Annotated[str, _identity_path("The customer's external id, e-mail or phone.")],
    identity: Annotated[str, _identity_path("The identity to detach from them.")],
    session: SessionDep,
    principal: Admin,
) -> Response:
    """Undo a wrong link: the identity leaves the customer for a customer record of its own,
    which later items never link again. The customer's cases stay theirs; later items with
    that identity no longer join them. 404 when the customer, or the identity on them, is
    unknown; 409 when it is their only identity."""
    await detach_identity(session, key, identity, actor=principal.name)
    return Response(status_code=204)
