"""Reading cases: one case as the API shows it, with its feedback; pages of cases; the
timeline."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.identity import case_number
from app.cases.models import ACTIVE_STATUSES, Case, CaseEvent
from app.cases.schemas import CaseFilter, CaseSort, CaseStatus, CaseSummary
from app.core.db import get_or_404
from app.core.errors import NotFound
from app.core.schemas import (
    cursor_id,
    cursor_time,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
)
from app.routing.schemas import CasePriority

# -- reading ------------------------------------------------------------------------------

# Each case's feedback, newest first, as the CaseFeedbackItem schema shows it. The feedback
# room reads those rows (cases import no feedback): the app hands its reader to the case routes
# (create_app), and the reader finds the cases' items by `links_sql`.
CaseItems = Callable[
    [AsyncSession, list[uuid.UUID]], Awaitable[dict[uuid.UUID, list[dict[str, Any]]]]
]


def links_sql(case_ids: str) -> str:
    """SQL: the links (feedback_id, case_id, kind, added_at) of the cases in `case_ids`, an SQL
    expression of a uuid array."""
    return (
        "SELECT feedback_id, case_id, kind, added_at FROM case_feedback "
        f"WHERE case_id = ANY({case_ids})"
    )


def item_case_sql(feedback: str) -> tuple[str, str]:
    """SQL to show, beside each row `feedback` of a read of feedback, the case it opened or
    joined: the columns (case_id, case_number, case_team, case_status; NULL without a case) and
    the joins that bring them."""
    return (
        "fc.id AS case_id, fc.number AS case_number, fc.team AS case_team, "
        "fc.status AS case_status",
        f"LEFT JOIN case_feedback cf ON cf.feedback_id = {feedback}.id "
        "LEFT JOIN feedback_case fc ON fc.id = cf.case_id",
    )


def case_document(case: Case, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A case as the API shows it: the CaseRead schema.

    A plain dict rather than the pydantic model: queues answer fifty of these a page, and
    building and dumping the models was a third of a page's time (measured).
    tests/core/test_documents.py checks every answer against CaseRead.
    """
    return {
        "id": case.id,
        "number": case_number(case.number),
        "status": case.status,
        "priority": case.priority,
        "team": case.team,
        "assignee": case.assignee,
        "customer": {
            "external_id": case.customer_external_id,
            "email": case.customer_email,
            "phone": case.customer_phone,
            "name": case.customer_name,
            "locale": case.customer_locale,
            "contact_consent": case.contact_consent,
            "verified": case.customer_verified,
        },
        "feedback": items,
        "tags": case.tags,
        "rule": {"id": case.rule_id, "version": case.rule_version or 0} if case.rule_id else None,
        "first_response_due_at": case.first_response_due_at,
        "resolution_due_at": case.resolution_due_at,
        "first_response_at": case.first_response_at,
        "resolved_at": case.resolved_at,
        "closed_at": case.closed_at,
        "first_response_breached": case.first_response_breached,
        "resolution_breached": case.resolution_breached,
        "breached": case.first_response_breached or case.resolution_breached,
        "resolution": {
            "code": case.resolution_code,
            "summary": case.resolution_summary,
            "customer_message": case.customer_message,
            "notify_customer": bool(case.notify_customer),
        }
        if case.resolution_code is not None
        else None,
        "can_notify": case.can_notify,
        "version": case.version,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
    }


def case_summary(case: Case) -> CaseSummary:
    return CaseSummary(
        id=case.id,
        number=case_number(case.number),
        status=CaseStatus(case.status),
        priority=CasePriority(case.priority),
        team=case.team,
        assignee=case.assignee,
        breached=case.first_response_breached or case.resolution_breached,
        created_at=case.created_at,
        resolved_at=case.resolved_at,
        verified=case.customer_verified,
    )


async def read_case(session: AsyncSession, case: Case, case_items: CaseItems) -> dict[str, Any]:
    return case_document(case, (await case_items(session, [case.id]))[case.id])


async def get_case(session: AsyncSession, case_id: uuid.UUID, *, for_update: bool = False) -> Case:
    missing = NotFound("No case has this id.", code="case_not_found")
    return await get_or_404(
        session, Case, case_id, missing, with_for_update=for_update, populate_existing=True
    )


# -- lists ----------------------------------------------------------------------------------


def _sort_key(case: Case, sort: CaseSort) -> list[Any]:
    if sort is CaseSort.RESOLUTION_DUE_AT:
        return [case.resolution_due_at.isoformat(), str(case.id)]
    if sort is CaseSort.PRIORITY:
        return [case.priority_rank, case.created_at.isoformat(), str(case.id)]
    return [case.created_at.isoformat(), str(case.id)]


def _order_and_after(query: Select[Case], sort: CaseSort, cursor: str | None) -> Select[Case]:
    columns: tuple[Any, ...]
    if sort is CaseSort.RESOLUTION_DUE_AT:
        columns = (Case.resolution_due_at, Case.id)
    elif sort is CaseSort.PRIORITY:
        columns = (Case.priority_rank, Case.created_at, Case.id)
    else:
        columns = (Case.created_at, Case.id)
    descending = sort is CaseSort.NEWEST
    if cursor is not None:
        kind, *values = decode_cursor(cursor, len(columns) + 1)
        if kind != sort.value:
            raise invalid_cursor()
        after: list[Any] = [cursor_time(values[-2]), cursor_id(values[-1])]
        if sort is CaseSort.PRIORITY:
            rank = values[0]
            if not isinstance(rank, int) or isinstance(rank, bool) or rank not in range(4):
                raise invalid_cursor()
            after.insert(0, rank)
        key = tuple_(*columns)
        query = query.where(key < tuple_(*after) if descending else key > tuple_(*after))
    return query.order_by(*(c.desc() if descending else c for c in columns))


async def list_cases(
    session: AsyncSession,
    filters: CaseFilter,
    *,
    customer_cases: ColumnElement[bool] | None,
    limit: int,
    cursor: str | None,
    case_items: CaseItems,
) -> tuple[list[dict[str, Any]], str | None]:
    """`customer_cases` is the cases of `filters.customer`'s record (customers.customer_scope)."""
    query = select(Case)
    statuses = list(filters.status or [])
    if len(statuses) == 1:
        query = query.where(Case.status == statuses[0])
    elif statuses:
        query = query.where(Case.status.in_(statuses))
    if filters.team is not None:
        query = query.where(Case.team == filters.team)
    if filters.assignee is not None:
        query = query.where(Case.assignee == filters.assignee)
    if filters.priority is not None:
        query = query.where(Case.priority == filters.priority)
    if filters.breached is not None:
        flagged = Case.first_response_breached | Case.resolution_breached
        query = query.where(flagged if filters.breached else ~flagged)
    if customer_cases is not None:
        query = query.where(customer_cases)
    if filters.tag is not None:
        query = query.where(Case.tags.contains([filters.tag]))
    if filters.created_from is not None:
        query = query.where(Case.created_at >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(Case.created_at < filters.created_to)
    sort = filters.sort
    query = _order_and_after(query, sort, cursor).limit(limit + 1)
    cases = list(await session.scalars(query))
    page = cases[:limit]
    items = await case_items(session, [c.id for c in page])
    next_cursor = None
    if len(cases) > limit:
        next_cursor = encode_cursor(sort.value, *_sort_key(page[-1], sort))
    return [case_document(c, items[c.id]) for c in page], next_cursor


async def list_events(
    session: AsyncSession, case_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[CaseEvent], str | None]:
    """The timeline, oldest first."""
    await get_case(session, case_id)
    query = select(CaseEvent).where(CaseEvent.case_id == case_id)
    if cursor is not None:
        at, last = decode_cursor(cursor, 2)
        query = query.where(
            tuple_(CaseEvent.at, CaseEvent.id) > tuple_(cursor_time(at), cursor_id(last))
        )
    query = query.order_by(CaseEvent.at, CaseEvent.id).limit(limit + 1)
    events = list(await session.scalars(query))
    next_cursor = None
    if len(events) > limit:
        last_event = events[limit - 1]
        next_cursor = encode_cursor(last_event.at.isoformat(), str(last_event.id))
    return events[:limit], next_cursor


async def team_cases(session: AsyncSession, team: str) -> list[str]:
    """Why a team cannot be deleted, as far as cases go: its active cases, else its past ones
    (their history names it). Routing asks through `app.routing.service.TeamUsers`."""
    active, past = (
        await session.execute(
            select(func.count().filter(Case.status.in_(ACTIVE_STATUSES)), func.count()).where(
                Case.team == team
            )
        )
    ).one()
    if active:
        return [f"{active} active case(s) belong to it"]
    if past:
        return [f"{past} past case(s) belong to it"]
    return []
