"""The application: create_app() wires settings, database, middleware, routers and errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.types import Scope

# Every table on the metadata: the ORM resolves a foreign key (case_feedback → feedback) by the
# table's name when it first flushes, and no route imports the feedback model itself.
import app.models  # noqa: F401
from app.cases import router as cases
from app.cases.reads import team_cases
from app.connectors import router as connectors
from app.core import api_keys
from app.core.auth import KeyCache
from app.core.config import Settings, get_settings
from app.core.crypto import secret_box
from app.core.db import Database
from app.core.errors import (
    PROBLEM_MEDIA_TYPE,
    ServiceUnavailable,
    error_response,
    install_error_handlers,
    problem_responses,
)
from app.core.heap import freeze_loaded
from app.core.http import RequestGate
from app.core.migrations import head_revision
from app.core.ratelimit import RateLimiter
from app.feedback import direct, trials
from app.feedback import privacy_router as privacy
from app.feedback import router as feedback
from app.feedback.erasure import customer_feedback
from app.feedback.identity import IdentitySecrets
from app.feedback.ingest import IngestGroups, ingest_groups
from app.feedback.reads import case_items
from app.notifications import router as webhooks
from app.observability import router as observability
from app.reports import router as reports
from app.routing import router as routing
from app.routing.evaluation import RoutingCache
from app.web import router as web
from app.worker import finish_within, run_background

logger = logging.getLogger(__name__)

API_TITLE = "Closeloop"
API_VERSION = "0.1.0"
BATCH_BODY_LIMIT = 2 * 1024 * 1024


def _operation_id(route: APIRoute) -> str:
    return route.name


health = APIRouter(tags=["health"])


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@health.get("/readyz", responses=problem_responses(503))
async def readyz(request: Request) -> Any:
    """The database answers and its schema is at the latest migration."""
    database: Database = request.app.state.database
    try:
        async with asyncio.timeout(2):
            async with database.raw() as conn:
                current = await conn.fetchval("SELECT version_num FROM alembic_version")
    except Exception:  # any failure means not ready; its cause is logged, not told
        logger.warning("readiness check failed", exc_info=True)
        return error_response(
            ServiceUnavailable("The database is not reachable.", code="database_unreachable")
        )
    if current != head_revision():
        return error_response(
            ServiceUnavailable(
                "The database schema is not at the latest migration; run `closeloop migrate`.",
                code="schema_behind",
            )
        )
    return {"status": "ready", "schema": current}


async def _browser_origins(scope: Scope) -> frozenset[str]:
    state = scope["app"].state
    cache: KeyCache = state.key_cache
    return await cache.browser_origins(state.database)


def _ingest_groups(app: FastAPI, database: Database) -> IngestGroups:
    state = app.state
    return ingest_groups(
        database, settings=state.settings, routing=state.routing, identities=state.identities
    )


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """The app. Tests pass a database bound to their own transaction; the CLI passes none, and
    the app connects to `settings.database_url` when it starts."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if database is not None:  # tests: the caller owns the database and any background work
            yield
            return
        assert settings.database_url, "FEEDBACK_DATABASE_URL is not set"
        app.state.database = await Database.connect(
            settings.database_url, **settings.database_options()
        )
        app.state.ingest_groups = _ingest_groups(app, app.state.database)
        freeze_loaded()
        stop = asyncio.Event()
        background = [
            asyncio.create_task(
                run_background(
                    app.state.database,
                    settings,
                    stop,
                    dispatch=settings.dispatcher_in_process,
                    jobs=settings.jobs_in_process,
                )
            )
        ]
        limiter: RateLimiter = app.state.rate_limiter
        if limiter.enabled:
            background.append(asyncio.create_task(limiter.run(app.state.database, stop)))
        try:
            yield
        finally:
            stop.set()
            await finish_within(settings.shutdown_grace_seconds, background)
            # uvicorn has answered every request by now: stored ones are committed, and what is
            # left in a group is of requests it gave up on at the end of its grace (answered
            # 500): rolled back rather than stored behind that answer, and no longer waited for.
            await app.state.ingest_groups.cancel()
            await app.state.database.close()

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description="Closed-loop customer feedback: every negative voice reaches the team that "
        "owns it, and every customer who complained hears the outcome.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.key_cache = KeyCache()
    app.state.rate_limiter = RateLimiter(
        ingest_per_minute=settings.ingest_rate_limit_per_minute,
        per_minute=settings.rate_limit_per_minute,
        trusted_proxies=settings.trusted_proxy_networks,
    )
    app.state.routing = RoutingCache()
    # What, besides routing's own rules and teams, keeps a team from being deleted.
    app.state.team_users = (team_cases,)
    # How a case reads its feedback: cases import no feedback.
    app.state.case_items = case_items
    app.state.customer_feedback = customer_feedback
    app.state.identities = IdentitySecrets(secret_box(settings.secret_key))
    if database is not None:
        app.state.ingest_groups = _ingest_groups(app, database)

    install_error_handlers(app)
    # Ingest first: routes are matched in order, and it is the route that takes the load.
    app.include_router(feedback.router)
    app.include_router(feedback.sources)
    app.include_router(health)
    app.include_router(observability)
    app.include_router(api_keys.router)
    app.include_router(routing.teams)
    app.include_router(routing.rules)
    app.include_router(trials.router)
    app.include_router(cases.router)
    app.include_router(cases.customers)
    app.include_router(privacy.router)
    app.include_router(webhooks.router)
    app.include_router(web.router)
    app.include_router(reports.router)
    app.include_router(connectors.router)

    app.add_middleware(
        RequestGate,
        access_log=settings.access_log,
        limits={"/v1/feedback/batch": BATCH_BODY_LIMIT},
        forms=("/f/",),
        foreign_bodies=(connectors.RECEIVE_PREFIXES, connectors.RECEIVE_BODY_LIMIT),
        cors_paths=frozenset({"/v1/feedback", "/v1/feedback/batch"}),
        cors_origins=_browser_origins,
        direct={direct.METHOD_AND_PATH: direct.create_feedback_direct},
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_openapi(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Error answers are problem+json (not FastAPI's default validation shape), and say so.

    Some answers come from what every route shares rather than from the route: a body that is
    not JSON (400), too large (413) or not typed as JSON (415); a value no field can hold, in the
    body, the query or the path (422, app/core/inputs.py); a key over its rate limit (429). Each
    operation lists those too.
    """
    for path in schema.get("paths", {}).values():
        for method, operation in path.items():
            shared = [422]
            if method in ("post", "put", "patch"):  # the request gate's, body or no body
                shared += [413, 415]
            if "requestBody" in operation:
                shared.append(400)
            if "401" in operation["responses"]:
                shared.append(429)
            responses = operation["responses"]
            for status, response in problem_responses(*shared).items():
                responses.setdefault(str(status), {"description": response["description"]})
            operation["responses"] = dict(sorted(responses.items()))
            for status, response in operation.get("responses", {}).items():
                if not status.startswith(("4", "5")) or "text/html" in response.get("content", {}):
                    continue  # (the follow-up page answers its refusals as pages)
                if status == "422":
                    response["description"] = "The request is not valid; `errors` lists the fields"
                response["content"] = {
                    PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema
