"""What a route behind an API key answers, said once per route: its success (status and model)
and its errors, as the keyword arguments of the route's decorator
(`@router.post("", **creates(TeamRead, 409, 422))`).

Every route behind a key may answer 401 (no valid key) and 403 (not this key's to do), so those
two are always there and a route names only the errors of its own. The errors are problem+json
(app/core/errors.py); those every route shares (413, 415, 429 ...) are added in app/main.py.
"""

from __future__ import annotations

from typing import Any, TypedDict

from fastapi import Response

from app.core.errors import problem_responses


class RouteAnswers(TypedDict, total=False):
    status_code: int
    response_model: Any
    response_class: type[Response]
    responses: dict[int | str, dict[str, Any]]


def keyed_errors(*errors: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route behind a key: 401, 403 and `errors`."""
    return problem_responses(401, 403, *errors)


def answers(model: Any, *errors: int) -> RouteAnswers:
    """A route that answers `model` (200), or one of its errors."""
    return {"response_model": model, "responses": keyed_errors(*errors)}


def creates(model: Any, *errors: int) -> RouteAnswers:
    """A route that makes something and answers it as `model` (201), or one of its errors."""
    return {"status_code": 201, "response_model": model, "responses": keyed_errors(*errors)}


def empties(*errors: int) -> RouteAnswers:
    """A route that answers nothing (204) when it is done, or one of its errors."""
    return {"status_code": 204, "response_class": Response, "responses": keyed_errors(*errors)}
