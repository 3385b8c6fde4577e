"""bench/webhooks.py's verdict against its targets and the report it prints."""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import (
    QUIET_OTHER_CORES,
)

# Healthy deliveries/s with the dead endpoint present, and that rate over the rate without it.
TARGET_RATE = 1000.0
TARGET_RATIO = 0.9


# -- the report ---------------------------------------------------------------------------------


def verdict(without: list[dict[str, Any]], with_dead: list[dict[str, Any]]) -> dict[str, Any]:
    rate_without = statistics.median(r["healthy_per_s"] for r in without)
    rate_with = statistics.median(r["healthy_per_s"] for r in with_dead)
    ratio = rate_with / rate_without
    clean = all(
        r["duplicates"] == 0
        and r["extra_attempts"] == 0
        and r["healthy_received"] == r["healthy_messages"]
        and r["all_recorded_s"] is not None
        for r in (*without, *with_dead)
    )
    return {
        "rate_with_dead": rate_with,
        "rate_without_dead": rate_without,
        "rate_passed": rate_with >= TARGET_RATE,
        "ratio": round(ratio, 3),
        "ratio_passed": ratio >= TARGET_RATIO,
        "clean": clean,
        "verdict": "PASS"
        if rate_with >= TARGET_RATE and ratio >= TARGET_RATIO and clean
        else "FAIL",
    }


def _seconds(value: float | None) -> str:
    return "    never" if value is None else f"{value:>7.2f} s"


def report(result: dict[str, Any]) -> str:
    host, settings, outcome = result["machine"], result["settings"], result["outcome"]
    lines = [
        "",
        f"Webhook delivery benchmark, 127.0.0.1, {result['started_at']}",
        f"machine   {host['cores']} cores ({host['usable_cores']} usable), {host['processor']}, "
        f"Python {host['python']}, PostgreSQL {host['postgresql']} (embedded, fsync on)",
        f"settings  {settings['workers']} `closeloop worker` processes; {settings['messages']:,} "
        f"messages with dead = {settings['healthy_messages']:,} to 3 healthy endpoints + "
        f"{settings['messages'] - settings['healthy_messages']:,} to 1 that never answers; "
        f"without dead: the same {settings['healthy_messages']:,} healthy only",
        "",
        f"{'run':<13} {'healthy/s':>9} {'steady/s':>9} {'first':>8} {'p50':>9} {'p99':>9} "
        f"{'max':>9} {'recorded':>9} {'dup':>4} {'extra':>5} {'dead req':>8} {'start-up':>8}",
    ]
    for run in result["runs"]:
        latency = run["due_to_received_ms"]
        lines.append(
            f"{run['label']:<13} {run['healthy_per_s']:>9.1f} {run['steady_per_s']:>9.1f} "
            f"{run['first_received_ms']:>5.0f} ms {latency['p50']:>6.0f} ms "
            f"{latency['p99']:>6.0f} ms {latency['max']:>6.0f} ms "
            f"{_seconds(run['all_recorded_s'])} {run['duplicates']:>4} "
            f"{run['extra_attempts']:>5} {run['dead_requests']:>8} "
            f"{run['worker_startup_s']:>6.2f} s"
        )
    lines += [
        "",
        f"{'cores busy':<13} {'workers':>9} {'receivers':>9} {'postgres':>9} {'other':>9} "
        f"{'worker CPU/delivery':>20}",
    ]
    for run in result["runs"]:
        cores = run["cores_busy"]
        lines.append(
            f"{run['label']:<13} {cores['workers']:>9.2f} {cores['receivers']:>9.2f} "
            f"{cores['postgres']:>9.2f} {cores['other']:>9.2f} "
            f"{run['worker_cpu_ms_per_delivery']:>17.3f} ms"
        )
    passed = {True: "PASS", False: "FAIL"}
    lines += [
        "",
        f"healthy deliveries/s with the dead endpoint: {outcome['rate_with_dead']:.1f} "
        f"(target ≥ {TARGET_RATE:,.0f}): {passed[outcome['rate_passed']]}",
        f"with dead / without dead: {outcome['rate_with_dead']:.1f} / "
        f"{outcome['rate_without_dead']:.1f} = {outcome['ratio']:.3f} "
        f"(target ≥ {TARGET_RATIO}): {passed[outcome['ratio_passed']]}",
        "every healthy message delivered once, no extra attempt: "
        f"{'yes' if outcome['clean'] else 'NO'}",
        f"verdict: {outcome['verdict']}",
    ]
    lines += [
        f"  warning: other processes kept {run['cores_busy']['other']:.2f} cores busy during "
        f"the run {run['label']!r}: the machine was not quiet, its rates are low"
        for run in result["runs"]
        if run["cores_busy"]["other"] > QUIET_OTHER_CORES
    ]
    lines += [
        f"  {run['label']}, {name} logged (tail):\n    " + log.replace("\n", "\n    ")
        for run in result["runs"]
        for name, log in run["worker_logs"].items()
    ]
    return "\n".join(lines)
