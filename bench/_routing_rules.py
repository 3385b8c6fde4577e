"""bench/routing.py's evaluation part: seeded tables of realistic rules, the items they see, and
the time to route one item through a table, in this process with no server."""

from __future__ import annotations

import random
import resource
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psutil

from app.core.config import Settings
from app.feedback.derive import derive, routing_item
from app.feedback.schemas import FeedbackCreate
from app.routing.evaluation import build_table
from bench.common import (
    BenchError,
    percentiles,
)

TEAMS = ("support", "billing", "logistics", "mobile", "retention", "emea", "apac", "vip")


# Every comment holds one of TRUE_WORDS (the last rule looks for them) and none of FALSE_WORDS.
COMMENTS = (
    "I asked for a refund three weeks ago and still nothing",
    "退款申请提交了两周还没有处理",
    "Refund denied without any explanation, very disappointed",
    "我要退款，产品质量太差了",
    "The app charged me twice, where is my REFUND?",
    "客服说会退款但是一直没有消息",
    "Pedi reembolso y nadie responde",
)
TRUE_WORDS = ("refund", "退款", "reembolso")
FALSE_WORDS = ("invoice", "发票", "延迟", "delay", "password", "密码", "快递", "cancel", "登录")
# What each attribute rule compares: the items' value first, then values they never have.
ATTRIBUTES = {"region": ("eu", "us", "apac", "latam", "uk"), "plan": ("pro", "free", "enterprise")}
Tree = dict[str, Any]


def _leaf(field: str, op: str, value: Any) -> Tree:
    return {"field": field, "op": op, "value": value}


def _condition(kind: str, holds: bool, rng: random.Random) -> Tree:
    """A condition of this kind that holds, or fails, for every item of the benchmark."""
    if kind == "category":
        return _leaf(
            "category", "eq", "detractor" if holds else rng.choice(["negative", "passive"])
        )
    if kind == "channel":
        channels = ["app", "web"] if holds else rng.sample(["email", "sms", "chat", "phone"], 2)
        return _leaf("channel", "in", channels)
    if kind == "source":
        return _leaf("source", "in", ["mobile-app" if holds else "support-email", "survey"])
    if kind in ATTRIBUTES:
        good, *bad = ATTRIBUTES[kind]
        return _leaf(f"attributes.{kind}", "eq", good if holds else rng.choice(bad))
    if kind == "comment":
        words = list(TRUE_WORDS) if holds else rng.sample(FALSE_WORDS, rng.randint(2, 3))
        return _leaf("comment", "contains_any", words)
    if rng.random() < 0.5:  # the items are tagged billing and android
        return {"not": _leaf("tags", "has_any", ["test", "internal"] if holds else ["billing"])}
    return _leaf("tags", "has_any", ["billing", "vip"] if holds else ["spam", "vip"])


KINDS = ("category", "channel", "source", "region", "plan", "comment", "tags")


def rule_table(count: int) -> list[dict[str, Any]]:
    """count rules as stored (seeded): each but the last fails on every item, at a random one
    of its 2 to 4 conditions (those before it hold, those after it may); the last holds."""
    rng = random.Random(count)
    trees = []
    for _ in range(count - 1):
        kinds = rng.sample(KINDS, rng.randint(2, 4))
        failing = rng.randrange(len(kinds))
        holds = [i < failing or (i > failing and rng.random() < 0.5) for i in range(len(kinds))]
        trees.append({"all": [_condition(k, h, rng) for k, h in zip(kinds, holds, strict=True)]})
    trees.append({"all": [_condition(k, True, rng) for k in ("channel", "region", "comment")]})
    trees[-1]["all"].append({"not": _leaf("tags", "has_any", ["test", "internal"])})
    priorities = ("low", "normal", "high", "urgent")
    return [
        {
            "id": uuid.uuid4(),
            "version": 1,
            "name": f"rule-{i:04d}",
            "team": TEAMS[i % len(TEAMS)],
            "case_priority": priorities[i % 4],
            "add_tags": [],
            "assignee": None,
            "enabled": True,
            "conditions": tree,
        }
        for i, tree in enumerate(trees)
    ]


def feedback_body(n: int, customer: str) -> dict[str, Any]:
    """A detractor's `POST /v1/feedback` body, varied by n."""
    return {
        "source": "mobile-app",
        "channel": ("app", "web")[n % 2],
        "metric": "nps",
        "score": n % 7,
        "comment": COMMENTS[n % len(COMMENTS)],
        "tags": ["billing", "android"],
        "customer": {
            "external_id": customer,
            "email": f"{customer}@example.com",
            "locale": ("zh-CN", "en-GB", "es")[n % 3],
        },
        "touchpoint": "invoice",
        "journey_stage": "support",
        "attributes": {"region": "eu", "plan": "pro", "app_version": f"5.{n % 9}.1"},
    }


ROUNDS = 5


def _busy_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine and this process have used so far."""
    machine_times, own = psutil.cpu_times(), resource.getrusage(resource.RUSAGE_SELF)
    busy = machine_times.user + machine_times.nice + machine_times.system
    return busy, own.ru_utime + own.ru_stime


def measure_evaluation(sizes: Sequence[int], items: int) -> dict[str, Any]:
    """Route items through a table of each size, in ROUNDS rounds that take the sizes in turn
    (so a burst of load elsewhere on the machine hits every size alike); times in ms."""
    tables = {size: build_table(rule_table(size), TEAMS[0]) for size in sizes}
    rng, settings = random.Random(7), Settings()
    rows = [
        derive(
            FeedbackCreate.model_validate(feedback_body(n, f"cus_{n}")), settings, datetime.now(UTC)
        )
        for n in range(2 * 42)
    ]
    samples: dict[int, list[float]] = {size: [] for size in sizes}
    rounds: dict[int, list[float]] = {size: [] for size in sizes}
    busy_before, own_before, started = *_busy_seconds(), time.monotonic()
    for round_number in range(ROUNDS + 1):  # round 0 warms up
        for size, table in tables.items():
            last, times = table.rules[-1].name, []
            for _ in range(items // ROUNDS if round_number else 200):
                row = dict(rng.choice(rows))  # a fresh dict per item, as ingest derives one
                before = time.perf_counter_ns()
                decision = table.route(routing_item(row))
                times.append((time.perf_counter_ns() - before) / 1e6)
                if decision.rule is None or decision.rule.name != last:
                    raise BenchError(f"{size} rules: routed by {decision.rule}, not {last}")
            if round_number:
                samples[size] += times
                rounds[size].append(statistics.median(times))
    busy_after, own_after = _busy_seconds()
    elapsed = time.monotonic() - started
    other = max(0.0, (busy_after - busy_before) - (own_after - own_before)) / elapsed
    return {
        "other_cores_busy": round(other, 3),
        "tables": [
            {
                "rules": size,
                "latency_ms": {k: round(v, 5) for k, v in percentiles(samples[size]).items()},
                "round_medians_ms": [round(m, 5) for m in rounds[size]],
                "ns_per_rule_median": round(statistics.median(samples[size]) * 1e6 / size, 1),
            }
            for size in sizes
        ],
    }
