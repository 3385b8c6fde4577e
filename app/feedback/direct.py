"""`POST /v1/feedback`, served by the request gate (app/core/http.py) without FastAPI's routing,
dependency solving and exception layers: its body parsed and validated, its key checked, and
the route's own function called, as FastAPI would.

These layers were a third of a single-item ingest's CPU time, more than the item's own work,
and ingest is the route that takes the load. Only a request FastAPI would accept is served
here: a body that is not a JSON object FeedbackCreate accepts, or a follow-up answer, is
declined before anything is done, and the app serves it as usual (its 400 and 422 answers
are FastAPI's). FastAPI checks the key before the body; both orders answer a valid body alike,
and a declined request is checked by FastAPI.
"""

from __future__ import annotations

import orjson
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from app.core.auth import Scope, authorize
from app.core.errors import AppError, error_response
from app.feedback.router import create_feedback, router
from app.feedback.schemas import FeedbackCreate

# The route as FastAPI would have matched it: the access log and the metrics name its template.
ROUTE = next(
    route
    for route in router.routes
    if isinstance(route, APIRoute) and route.endpoint is create_feedback
)
METHOD_AND_PATH = ("POST", ROUTE.path)


async def create_feedback_direct(
    scope: AsgiScope, receive: Receive, send: Send, body: bytes
) -> bool:
    """Answer the request, or decline it (False) having done nothing."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(document, dict):
        return False
    try:
        payload = FeedbackCreate.model_validate(document)
    except ValidationError:
        return False
    if payload.in_reply_to is not None:
        return False
    scope["route"] = ROUTE
    request = Request(scope, receive)
    try:
        principal = await authorize(request, Scope.FEEDBACK_WRITE)
        response = await create_feedback(payload, request, principal)
    except AppError as exc:
        response = error_response(exc, request)
    await response(scope, receive, send)
    return True
