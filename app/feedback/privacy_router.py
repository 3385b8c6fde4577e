"""HTTP for a customer's privacy rights: erase them, or export everything held about them."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse

from app.core.auth import Admin
from app.core.db import SessionDep
from app.core.routes import empties, keyed_errors
from app.feedback.privacy import erase_customer, export_customer, find_customer

router = APIRouter(prefix="/v1/customers", tags=["customers"])

CustomerKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=320,
        pattern=r"^[^\x00]+$",
        description="The customer's external id, e-mail or phone.",
    ),
]


@router.delete("/{key}", **empties(404))
async def erase_customer_data(key: CustomerKey, session: SessionDep, principal: Admin) -> Response:
    """Erase the customer (and the identities linked to them): their name, e-mail, phone,
    external ids and words leave their feedback, cases, notes that quote them and every stored
    webhook message; scores, categories, channels, stages and times stay, anonymous, so the
    reports do not move. Erasing again is a 204 too; a customer never seen is a 404."""
    await erase_customer(session, key, actor=principal.name)
    return Response(status_code=204)


@router.get(
    "/{key}/export",
    response_class=StreamingResponse,
    responses={
        **keyed_errors(404),
        200: {"content": {"application/json": {}}, "description": "One JSON document."},
    },
)
async def export_customer_data(
    key: CustomerKey, request: Request, session: SessionDep, _: Admin
) -> StreamingResponse:
    """Everything held about the customer, as one JSON document sent as it is read: their
    feedback (follow-up answers included), cases with timelines and notes, and every
    notification about those cases with its outcome."""
    customer = await find_customer(session, key)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:64]
    return StreamingResponse(
        export_customer(request.app.state.database.sessionmaker, customer),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="customer-{name}.json"'},
    )
