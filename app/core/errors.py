"""Errors as application/problem+json (RFC 9457), each with a stable `code`.

Services raise an `AppError` subclass; the handlers here turn it, a validation failure, an unknown
route or an unexpected exception into a problem document. Nothing internal (stack, SQL, class
names) reaches the client: an unexpected error is logged here and answered as a bare 500.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from app.core.logging import logged_path

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:closeloop:problem:"


class FieldError(BaseModel):
    field: str = Field(
        description="Path of the offending field, e.g. `customer.email`, `items[3]`."
    )
    message: str
    type: str = Field(description="Stable machine-readable kind of the failure.")


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str = Field(description="Stable error code, e.g. `case_invalid_transition`.")
    errors: list[FieldError] | None = None
    existing_id: uuid.UUID | None = Field(
        default=None, description="A `conflict`: the id of what the request conflicts with."
    )


# The statuses an AppError answers with: the code and title of its class, and the description
# of that answer in a route's OpenAPI responses (problem_responses).
_STATUSES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "Bad request", "Malformed request (e.g. the body is not JSON)"),
    401: ("unauthorized", "Missing or invalid API key", "Missing, unknown or revoked API key"),
    403: ("forbidden", "Forbidden", "The API key lacks the scope, source or origin"),
    404: ("not_found", "Not found", "Not found"),
    409: ("conflict", "Conflict", "Conflict with the current state"),
    412: ("precondition_failed", "Precondition failed", "The If-Match version is stale"),
    413: ("payload_too_large", "Payload too large", "The body is too large"),
    415: ("unsupported_media_type", "Unsupported media type", "The body is not JSON"),
    422: (
        "validation_failed",
        "The request is not valid",
        "The request is not valid; `errors` lists the fields",
    ),
    428: ("precondition_required", "Precondition required", "If-Match is required"),
    429: ("rate_limited", "Too many requests", "Rate limit exceeded; see Retry-After"),
    503: ("unavailable", "Service unavailable", "Not ready"),
}


class AppError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal server error"

    def __init_subclass__(cls, status: int | None = None, **kwargs: Any) -> None:
        """`class NotFound(AppError, status=404)` takes its code and title from _STATUSES; a
        feature's subclass of it keeps them, or names its own code in its body."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
            cls.code, cls.title, _ = _STATUSES[status]

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        existing_id: uuid.UUID | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        if code is not None:
            self.code = code
        self.errors = list(errors) if errors is not None else None
        self.headers = headers
        self.existing_id = existing_id

    def to_problem(self, instance: str | None = None) -> Problem:
        return Problem(
            type=PROBLEM_TYPE_PREFIX + self.code,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            code=self.code,
            errors=self.errors,
            existing_id=self.existing_id,
        )


class BadRequest(AppError, status=400): ...


class Unauthorized(AppError, status=401):
    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(AppError, status=403): ...


class NotFound(AppError, status=404): ...


class Conflict(AppError, status=409): ...


class PreconditionFailed(AppError, status=412): ...


class PayloadTooLarge(AppError, status=413): ...


class UnsupportedMediaType(AppError, status=415): ...


class ValidationFailed(AppError, status=422): ...


class PreconditionRequired(AppError, status=428): ...


class TooManyRequests(AppError, status=429): ...


class ServiceUnavailable(AppError, status=503): ...


def field_path(loc: Sequence[int | str]) -> str:
    """('body', 'items', 3, 'score') -> 'items[3].score'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """Pydantic error dicts as FieldErrors, without echoing the input back."""
    result = []
    for error in errors:
        message = str(error.get("msg", "invalid"))
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        result.append(
            FieldError(field=field_path(error.get("loc", ())), message=message, type=error["type"])
        )
    return result


def validation_problem(exc: ValidationError) -> ValidationFailed:
    return ValidationFailed(
        "One or more fields are not valid.", errors=field_errors(exc.errors(include_input=False))
    )


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def error_response(error: AppError, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return problem_response(error.to_problem(instance), error.headers)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc, request)


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            BadRequest("The body is not well-formed JSON.", code="malformed_json"), request
        )
    error = ValidationFailed("One or more fields are not valid.", errors=field_errors(errors))
    return error_response(error, request)


_HTTP_CODES = {
    # FastAPI's answer to a body it cannot decode (not UTF-8, nested beyond the parser).
    400: ("malformed_json", "Bad request", "The body is not well-formed JSON."),
    404: ("route_not_found", "Not found", "No such route."),
    405: ("method_not_allowed", "Method not allowed", None),
    413: ("payload_too_large", "Payload too large", None),
}


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title, detail = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error", None))
    error = AppError(detail or (exc.detail if isinstance(exc.detail, str) else None), code=code)
    error.status, error.title = exc.status_code, title
    error.headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path; there is one per method.
        error.headers = {"Allow": ", ".join(_methods_allowed(request))}
    return error_response(error, request)


def _methods_allowed(request: Request) -> list[str]:
    paths = request.app.openapi().get("paths", {})
    methods = {m.upper() for t in path_templates(request.app, request.url.path) for m in paths[t]}
    return sorted(methods)


def path_templates(app: Any, path: str) -> list[str]:
    """The OpenAPI path templates a request path fits (the routes themselves sit inside included
    routers); where several do, those with the most fixed segments, as routing prefers
    `/v1/feedback/batch` to `/v1/feedback/{feedback_id}`."""
    segments = path.split("/")
    fitting = []
    for template in app.openapi().get("paths", {}):
        names = template.split("/")
        if len(names) == len(segments) and all(
            n == s or n.startswith("{") for n, s in zip(names, segments, strict=True)
        ):
            fitting.append((sum(not n.startswith("{") for n in names), template))
    most = max((fixed for fixed, _ in fitting), default=0)
    return [template for fixed, template in fitting if fixed == most]


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IntegrityError)
    if getattr(exc.orig, "sqlstate", None) == "23505" or "23505" in str(
        getattr(exc.orig, "pgcode", "")
    ):
        return error_response(Conflict("The resource already exists."), request)
    logger.error("integrity error", exc_info=exc)
    return error_response(AppError(), request)


def unexpected_error(scope: Scope, exc: Exception) -> JSONResponse:
    """The 500 of an error nothing else handled, logged here once. RequestContext
    (app/core/http.py) answers with it and does not raise again: Starlette's own error middleware
    would, and the server would then log the error a second time and drop the connection."""
    logger.error("unhandled error on %s %s", scope["method"], logged_path(scope), exc_info=exc)
    return problem_response(AppError("An unexpected error occurred.").to_problem(scope["path"]))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(IntegrityError, _integrity_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's error answers (their media type is fixed up in main)."""
    return {s: {"model": Problem, "description": _STATUSES[s][2]} for s in statuses}
