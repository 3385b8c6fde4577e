"""`GET /metrics`: the process's counters (or every worker's, added up) and the outbox backlog.

Prometheus text, for a scraper holding a `reports:read` key (Prometheus sends it with
`authorization: {credentials: ...}`): the figures name teams and routes, which strangers
holding a publishable key have no business reading.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from app.core.auth import ReportsReader
from app.core.db import Database
from app.core.errors import problem_responses
from app.notifications.backlog import Backlog, outbox_backlog

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class _Fixed(Collector):
    """Figures read before the scrape (collectors are synchronous; the database is not)."""

    def __init__(self, backlog: Backlog | None) -> None:
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "closeloop_outbox_backlog_up", "1 when the outbox figures below could be read."
        )
        up.add_metric([], 1 if self.backlog else 0)
        yield up
        if self.backlog is None:
            return
        yield GaugeMetricFamily(
            "closeloop_outbox_pending_messages",
            "Webhook messages waiting to be sent, due or scheduled (counted up to 1,000,000).",
            value=self.backlog.depth,
        )
        yield GaugeMetricFamily(
            "closeloop_outbox_oldest_due_age_seconds",
            "How long the oldest message due now has waited past its due time (0: none due).",
            value=self.backlog.oldest_due_age_seconds,
        )


class _ThisProcess(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **problem_responses(401, 403, 429),
    },
)
async def metrics(request: Request, principal: ReportsReader) -> Response:
    """The service's figures in Prometheus text: requests by route and status with their
    latency, feedback stored by channel and category, cases resolved, breached and closed by
    team, webhook deliveries by outcome, ingest statement sizes, background job passes, and
    the outbox backlog (read from the database). Needs `reports:read`."""
    database: Database = request.app.state.database
    backlog: Backlog | None
    try:
        async with database.raw() as conn:
            backlog = await outbox_backlog(conn)
    except Exception:  # the counters are still worth a scrape; `..._backlog_up 0` says why not
        logger.warning("reading the outbox backlog failed", exc_info=True)
        backlog = None
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(_Fixed(backlog))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
