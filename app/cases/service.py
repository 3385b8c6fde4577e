"""A case's life: moves between statuses, the SLA clock, notes (SPEC §4). Reading cases is in
app/cases/reads.py.

Every change takes the case's version (If-Match) and locks the row, so of two agents changing
the same case at once exactly one wins and the other gets 412. Every change writes an event.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.identity import case_number, normalize_phone
from app.cases.messages import enqueue_case_event
from app.cases.models import Case, CaseEvent
from app.cases.reads import get_case
from app.cases.schemas import (
    CaseUpdate,
    ReopenIn,
    ResolveIn,
)
from app.core.db import utcnow
from app.core.errors import Conflict, FieldError, ValidationFailed
from app.core.etag import check_if_match
from app.routing.models import Team
from app.routing.schemas import PRIORITY_RANK

OPEN, IN_PROGRESS, WAITING, RESOLVED, CLOSED = (
    "open",
    "in_progress",
    "waiting_on_customer",
    "resolved",
    "closed",
)
# SPEC §4: the only moves there are.
ALLOWED_MOVES: dict[str, set[str]] = {
    OPEN: {IN_PROGRESS, RESOLVED},
    IN_PROGRESS: {WAITING, RESOLVED},
    WAITING: {IN_PROGRESS, RESOLVED},
    RESOLVED: {CLOSED, OPEN},
    CLOSED: {OPEN},
}
SYSTEM = "system"


class CaseInvalidTransition(Conflict):
    code = "case_invalid_transition"
    title = "This move between statuses is not allowed"


# -- changing -----------------------------------------------------------------------------


def record(session: AsyncSession, case: Case, type_: str, actor: str, **data: Any) -> CaseEvent:
    event = CaseEvent(case_id=case.id, type=type_, actor=actor, at=utcnow(), data=data)
    session.add(event)
    return event


@dataclass
class Change:
    """One change of one case: its timeline events now, its webhook events at `finish`."""

    session: AsyncSession
    case: Case
    actor: str
    now: datetime
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changed: bool = False

    def event(self, type_: str, **data: Any) -> None:
        record(self.session, self.case, type_, self.actor, **data)
        self.changed = True

    def publish(self, event_type: str, **extra: Any) -> None:
        self.outbox.append((event_type, extra))

    async def finish(self) -> dict[str, int]:
        """A new version, then the webhook messages (which show it); answers how many
        endpoints each event reached."""
        self.case.version += 1
        self.case.updated_at = self.now
        await self.session.flush()
        reached = {}
        for event_type, extra in self.outbox:
            reached[event_type] = await enqueue_case_event(
                self.session, event_type, self.case.id, self.now, **extra
            )
        return reached


def move(change: Change, to: str) -> None:
    """Change status, keeping the SLA clock: the first move out of `open` is the first response,
    and time spent waiting on the customer pushes the due times back."""
    case = change.case
    if to not in ALLOWED_MOVES[case.status]:
        raise CaseInvalidTransition(
            f"A case cannot go from `{case.status}` to `{to}`. Allowed from `{case.status}`: "
            f"{', '.join(sorted(ALLOWED_MOVES[case.status]))}."
        )
    if case.status == OPEN and case.first_response_at is None:
        case.first_response_at = change.now
    if case.status == WAITING and case.waiting_since is not None:
        paused = change.now - case.waiting_since
        case.first_response_due_at += paused
        case.resolution_due_at += paused
        case.waiting_since = None
    if to == WAITING:
        case.waiting_since = change.now
    moved = {"from": case.status, "to": to}
    change.event("status_changed", **moved)
    change.publish("case.status_changed", **moved)
    case.status = to


async def _locked(
    session: AsyncSession, case_id: uuid.UUID, if_match: str | None, actor: str
) -> Change:
    case = await get_case(session, case_id, for_update=True)
    check_if_match(if_match, case.version)
    return Change(session, case, actor, utcnow())


async def update_case(
    session: AsyncSession,
    case_id: uuid.UUID,
    data: CaseUpdate,
    *,
    if_match: str | None,
    actor: str,
) -> Case:
    change = await _locked(session, case_id, if_match, actor)
    case = change.case
    changes = data.model_dump(exclude_unset=True)
    status = changes.pop("status", None)
    if status in (RESOLVED, OPEN) and status != case.status:
        route = "resolve" if status == RESOLVED else "reopen"
        raise ValidationFailed(
            f"Use POST /v1/cases/{{id}}/{route}: it takes what that move needs.",
            errors=[
                FieldError(
                    field="status",
                    message=f"use POST /v1/cases/{{id}}/{route}",
                    type="use_" + route,
                )
            ],
        )
    if status is not None and status != case.status:
        if status == CLOSED:
            close(change)
        else:
            move(change, status)
    if "assignee" in changes and changes["assignee"] != case.assignee:
        assigned = {"from": case.assignee, "to": changes["assignee"]}
        change.event("assigned", **assigned)
        change.publish("case.assigned", **assigned)
        case.assignee = changes["assignee"]
    if changes.get("priority") is not None and changes["priority"] != case.priority:
        change.event("priority_changed", **{"from": case.priority, "to": changes["priority"]})
        case.priority = changes["priority"]
        case.priority_rank = PRIORITY_RANK[case.priority]
    if changes.get("tags") is not None and changes["tags"] != case.tags:
        tags = list(dict.fromkeys(changes["tags"]))
        change.event("tags_changed", **{"from": case.tags, "to": tags})
        case.tags = tags
    if data.customer is not None:
        change_contact(change, data.customer.model_dump(exclude_unset=True))
    if change.changed:
        await change.finish()
    return case


def change_contact(change: Change, given: dict[str, Any]) -> None:
    """An agent's correction of the contact details: the one way they change. The event says
    who changed which fields, not what they held (a timeline outlives an erasure request)."""
    case = change.case
    if given.get("phone") is not None:
        given["phone"] = normalize_phone(given["phone"])
    if given.get("email") is not None:
        given["email"] = given["email"].lower()
    if given.get("contact_consent") is None:
        given.pop("contact_consent", None)  # consent is yes or no, never unknown
    columns = {
        name: "contact_consent" if name == "contact_consent" else f"customer_{name}"
        for name in given
    }
    changed = sorted(name for name in given if getattr(case, columns[name]) != given[name])
    # Setting a claimed case's details as they are is the agent vouching for them: from then on
    # the outcome may be sent to them (a claim's case cannot notify: app/cases/intake.py).
    vouched = not case.can_notify and any(given.get(n) for n in ("external_id", "email", "phone"))
    if not changed and not vouched:
        return
    for name in changed:
        setattr(case, columns[name], given[name])
    new_keys = [given[name] for name in ("email", "phone") if given.get(name)]
    case.customer_keys = list(dict.fromkeys([*case.customer_keys, *new_keys]))
    case.can_notify = any((case.customer_external_id, case.customer_email, case.customer_phone))
    change.event("customer_changed", fields=changed or sorted(given))


def _skip_reason(case: Case, data: ResolveIn) -> str | None:
    if not data.notify_customer:
        return "agent_chose_not_to_notify"
    if not case.can_notify:
        if not case.customer_verified and case.customer_keys:
            return "identity_unverified"
        return "customer_unreachable"
    if not case.contact_consent:
        return "no_contact_consent"
    return None


async def resolve_case(
    session: AsyncSession,
    case_id: uuid.UUID,
    data: ResolveIn,
    *,
    if_match: str | None,
    actor: str,
    public_url: str,
) -> Case:
    """Resolve, and tell the customer through case.resolved unless they cannot be told; the
    timeline says which, and why not."""
    if data.notify_customer and not data.customer_message:
        raise ValidationFailed(
            "To notify the customer, give the message they are to be told.",
            errors=[
                FieldError(
                    field="customer_message",
                    message="required when notify_customer is true",
                    type="missing",
                )
            ],
        )
    change = await _locked(session, case_id, if_match, actor)
    case = change.case
    move(change, RESOLVED)
    case.resolved_at = change.now
    case.resolution_code = data.code
    case.resolution_summary = data.summary
    case.customer_message = data.customer_message
    case.notify_customer = data.notify_customer
    change.event("resolved", code=data.code, notify_customer=data.notify_customer)
    reason = _skip_reason(case, data)
    if reason is None:
        token = secrets.token_urlsafe(24)
        case.followup_token_hash = followup_hash(token)
        case.followup_used_at = None
        change.publish(
            "case.resolved",
            resolution={"code": data.code, "customer_message": data.customer_message},
            followup={"token": token, "url": f"{public_url.rstrip('/')}/f/{token}"},
        )
    reached = await change.finish()
    if reason is None and not reached.get("case.resolved"):
        reason = "no_webhook_endpoint"
        case.followup_token_hash = None  # nobody was given the token
    if reason is None:
        change.event(
            "notification_queued", event="case.resolved", endpoints=reached["case.resolved"]
        )
    else:
        change.event("notification_skipped", event="case.resolved", reason=reason)
    await session.flush()
    return case


def followup_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def reopen_case(
    session: AsyncSession,
    case_id: uuid.UUID,
    data: ReopenIn,
    *,
    if_match: str | None,
    actor: str,
) -> Case:
    change = await _locked(session, case_id, if_match, actor)
    await reopen(change, data.reason)
    await change.finish()
    return change.case


async def reopen(change: Change, reason: str) -> None:
    """Back to `open`, with a fresh resolution target from now. (A breach already recorded stays
    recorded: each kind is flagged once in a case's life.)"""
    case, session = change.case, change.session
    await _check_no_other_active(session, case)
    move(change, OPEN)
    team = await session.get(Team, case.team)
    minutes = team.resolution_minutes if team is not None else 0
    case.resolution_due_at = max(case.resolution_due_at, change.now + timedelta(minutes=minutes))
    case.resolved_at = None
    case.closed_at = None
    case.resolution_code = case.resolution_summary = case.customer_message = None
    case.notify_customer = None
    # An unanswered follow-up asked about the resolution now undone: its link stops working
    # (the next resolution sends its own). An answered one stays, to say it was used.
    if case.followup_used_at is None:
        case.followup_token_hash = None
    change.event("reopened", reason=reason)
    change.publish("case.reopened", reason=reason)


async def _check_no_other_active(session: AsyncSession, case: Case) -> None:
    """A customer has one active case per team (the one their complaints join): this one may
    not reopen beside another. Customers are told apart as intake tells them, by the key of
    their record; a case without one (anonymous, a claimed identity, an erased customer) is
    nobody's but its own, so nothing keeps it from reopening."""
    if case.customer_key is None:
        return
    other = await session.scalar(
        select(Case.number).where(
            Case.opened_for_team == case.opened_for_team,
            Case.customer_key == case.customer_key,
            Case.status.in_((OPEN, IN_PROGRESS, WAITING)),
            Case.id != case.id,
        )
    )
    if other is not None:
        raise Conflict(
            f"The customer has another active case with this team, {case_number(other)}; "
            "work on that one instead.",
            code="case_active_elsewhere",
        )


def close(change: Change, **data: Any) -> None:
    move(change, CLOSED)
    change.case.closed_at = change.now
    change.event("closed", **data)
    change.publish("case.closed")


async def close_case(
    session: AsyncSession, case_id: uuid.UUID, *, if_match: str | None, actor: str
) -> Case:
    change = await _locked(session, case_id, if_match, actor)
    close(change)
    await change.finish()
    return change.case


async def add_note(
    session: AsyncSession, case_id: uuid.UUID, body: str, *, if_match: str | None, actor: str
) -> CaseEvent:
    """An internal note. It changes no field of the case, so If-Match is optional: checked
    when given."""
    case = await get_case(session, case_id)
    if if_match is not None:
        check_if_match(if_match, case.version)
    event = record(session, case, "note_added", actor, body=body)
    await session.flush()
    return event
