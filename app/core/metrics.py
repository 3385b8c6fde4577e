"""What the service does, counted for Prometheus: `GET /metrics` (app/core/metrics_route.py).

Counters and histograms live in this process, or, when `serve --workers N` runs several, in
files under PROMETHEUS_MULTIPROC_DIR that the scrape adds up (the CLI sets the directory
before the workers start: prometheus-client reads it when it is first imported). Figures
about the database's state (the outbox) are read at scrape time instead, so every process
answers the same.

Labels are bounded sets only: route templates (never paths), enum values, team keys.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Histogram

# Latency buckets (seconds) from a fast ingest (~1 ms) to a request near its timeout.
_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

HTTP_REQUEST_SECONDS = Histogram(
    "closeloop_http_request_duration_seconds",
    "Time to answer a request, by method, route template and status (its _count counts them).",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
FEEDBACK_STORED = Counter(
    "closeloop_feedback_stored_total",
    "Feedback items stored (not replays), by channel and category ('none' for text only).",
    ["channel", "category"],
)
INGEST_GROUP_SIZE = Histogram(
    "closeloop_ingest_group_size",
    "Items written by one ingest statement: 1 for a single request, N for a batch or group.",
    buckets=_GROUP_BUCKETS,
)
CASES_OPENED = Counter(
    "closeloop_cases_opened_total", "Cases opened by negative feedback, by team.", ["team"]
)
CASES_RESOLVED = Counter("closeloop_cases_resolved_total", "Cases resolved, by team.", ["team"])
CASES_BREACHED = Counter(
    "closeloop_cases_breached_total",
    "SLA breaches flagged, by team (the one owning the case when it breached) and kind.",
    ["team", "kind"],
)
CASES_AUTOCLOSED = Counter(
    "closeloop_cases_autoclosed_total", "Resolved cases closed by themselves, by team.", ["team"]
)
DELIVERIES = Counter(
    "closeloop_webhook_deliveries_total",
    "Webhook delivery attempts recorded, by outcome (delivered, retrying, failed).",
    ["outcome"],
)
OUTBOX_DELETED = Counter(
    "closeloop_outbox_messages_deleted_total",
    "Delivered webhook messages (with their attempts) deleted after the retention period.",
)
JOB_RUNS = Counter(
    "closeloop_job_runs_total",
    "Background job passes, by job and result (ran, skipped: another process held it, failed).",
    ["job", "result"],
)


# Each label set's histogram, found once: `labels()` checks and locks on every call, which
# showed on every request. As many entries as the metric has label sets.
_REQUEST_SERIES: dict[tuple[str, str, int], Any] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    series = _REQUEST_SERIES.get((method, route, status))
    if series is None:
        series = HTTP_REQUEST_SECONDS.labels(method, route, str(status))
        _REQUEST_SERIES[(method, route, status)] = series
    series.observe(seconds)


def observe_ingest_group(size: int) -> None:
    """One ingest statement wrote `size` items (the ingest path calls this once per write)."""
    INGEST_GROUP_SIZE.observe(size)


def count_stored_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    """The items one ingest statement stored (`_store_batch` marks them `_stored`), and the
    statement's size."""
    observe_ingest_group(len(rows))
    # Counted per label pair, not per row: a child's lookup costs more than the count.
    stored = collections.Counter(
        (row["channel"], row["category"] or "none") for row in rows if row.get("_stored")
    )
    for (channel, category), count in stored.items():
        FEEDBACK_STORED.labels(channel, category).inc(count)


def count_cases_opened(cases: Iterable[Any]) -> None:
    """The case statements' answers (`OPEN_CASE`): those that opened a case, by its team."""
    for team, opened in collections.Counter(c["case_team"] for c in cases if c["opened"]).items():
        CASES_OPENED.labels(team).inc(opened)


def count_case_resolved(team: str) -> None:
    CASES_RESOLVED.labels(team).inc()


def count_breach(team: str, kind: str) -> None:
    CASES_BREACHED.labels(team, kind).inc()


def count_autoclosed(team: str, count: int) -> None:
    CASES_AUTOCLOSED.labels(team).inc(count)


def count_deliveries(statuses: Iterable[str]) -> None:
    """Outcomes as the dispatcher records them: delivered, pending (to be retried), failed."""
    for status in statuses:
        DELIVERIES.labels("retrying" if status == "pending" else status).inc()


def count_outbox_deleted(count: int) -> None:
    OUTBOX_DELETED.inc(count)


def count_job(job: str, result: str) -> None:
    JOB_RUNS.labels(job, result).inc()
