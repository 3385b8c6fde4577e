"""bench/ingest.py's verdicts against its targets and the report it prints."""

from __future__ import annotations

import textwrap
from statistics import median
from typing import Any

from bench._ingest_measure import PATH, TARGET_BATCH_FACTOR, TARGET_P99_FACTOR, Measurement, Options

# -- the report ---------------------------------------------------------------------------------


def verdicts(
    pairs: list[tuple[Measurement, Measurement]],
    batch: Measurement | None,
    options: Options,
) -> dict[str, Any]:
    """Each target, its figure (the median over the rounds' (service, reference) pairs) and
    whether it was reached."""
    ratios = [s.items_per_s / r.items_per_s if r.items_per_s else 0.0 for s, r in pairs]
    p99s = [s.load.p99_ms / r.load.p99_ms if r.load.p99_ms else 0.0 for s, r in pairs]
    ratio, p99 = median(ratios), median(p99s)
    targets: dict[str, Any] = {
        "ratio": {"value": round(ratio, 4), "target": f">= {options.target_ratio}"},
        "p99_vs_reference": {"value": round(p99, 3), "target": f"<= {TARGET_P99_FACTOR}"},
    }
    if len(pairs) > 1:
        targets["ratio"]["rounds"] = [round(value, 4) for value in ratios]
        targets["p99_vs_reference"]["rounds"] = [round(value, 3) for value in p99s]
    targets["ratio"]["passed"] = ratio >= options.target_ratio
    targets["p99_vs_reference"]["passed"] = p99 <= TARGET_P99_FACTOR
    if batch is not None:
        single = median(s.items_per_s for s, _ in pairs)
        speedup = batch.items_per_s / single if single else 0.0
        targets["batch_vs_single"] = {
            "value": round(speedup, 3),
            "target": f">= {TARGET_BATCH_FACTOR}",
            "passed": speedup >= TARGET_BATCH_FACTOR,
        }
    return targets


def report(result: dict[str, Any]) -> str:
    host = result["machine"]
    settings = result["settings"]
    runs = result["results"]
    lines = [
        "",
        f"Ingest benchmark: POST {PATH} on 127.0.0.1, {result['started_at']}",
        f"machine   {host['cores']} cores ({host['usable_cores']} usable), {host['processor']}, "
        f"{host['platform']}",
        f"          Python {host['python']} ({host['python_implementation']}), "
        f"PostgreSQL {host['postgresql']} (embedded, fsync on), {host['wrk']}",
        f"settings  {settings['mix']} stream, {settings['connections']} connections, "
        f"{settings['wrk_threads']} wrk thread(s), {settings['duration_s']:g} s measured after "
        f"{settings['warmup_s']:g} s warm-up, negative share {settings['negative_share']:.2f}, "
        f"{settings['returning_customers'] or 'no'} returning customers",
        "          one uvicorn process per server, asyncpg pool of "
        f"{settings['pool_size']}, measured one after the other, "
        f"{settings['rounds']} round(s) each",
    ]
    if "batch" in runs:
        lines.append(
            f"          batch: {settings['batch']} items a request, "
            f"{settings['batch_connections']} connections"
        )
    lines += [
        "",
        f"{'target':<12} {'items/s':>10} {'p50':>10} {'p99':>10} {'requests':>9} "
        f"{'non-2xx':>8} {'sock err':>8} {'CPU/item':>10}",
    ]
    for name, figures in runs.items():
        errors = sum(figures["socket_errors"].values())
        latency = figures["latency_ms"]
        lines.append(
            f"{name:<12} {figures['items_per_s']:>10.1f} {latency['p50']:>7.2f} ms "
            f"{latency['p99']:>7.2f} ms {figures['requests']:>9} "
            f"{figures['non_2xx']:>8} {errors:>8} "
            f"{figures['server_cpu_ms_per_item']:>7.3f} ms"
        )
    lines += ["", f"{'cores busy':<12} {'server':>10} {'postgres':>10} {'wrk':>10} {'other':>9}"]
    for name, figures in runs.items():
        cores = figures["cores_busy"]
        lines.append(
            f"{name:<12} {cores['server']:>10.2f} {cores['postgres']:>10.2f} "
            f"{cores['load_generator']:>10.2f} {cores['other']:>9.2f}"
        )
    lines.append("")
    names = {
        "ratio": "items/s service/reference",
        "p99_vs_reference": "p99 service/reference",
        "batch_vs_single": "items/s batch/single",
    }
    for name, target in result["targets"].items():
        verdict = "PASS" if target["passed"] else "FAIL"
        lines.append(
            f"{names[name]:<26} {target['value']:>7.3f} (target {target['target']}): {verdict}"
        )
        if "rounds" in target:
            each = ", ".join(f"{value:.3f}" for value in target["rounds"])
            lines.append(f"{'':<26} the median of the rounds: {each}")
    lines.append(f"verdict: {result['verdict']}")
    if result["failed_requests"]:
        lines.append(
            f"  {result['failed_requests']} requests failed (non-2xx or socket errors): "
            "the figures do not count"
        )
    profile = result.get("profile")
    if profile:
        lines += [
            "",
            f"profile of the service (py-spy, {profile['samples']} samples): "
            f"{profile['cpu_ms_per_item']:.3f} ms CPU per item",
            f"  {'self':<52} {'share':>6} {'ms/item':>8}",
        ]
        lines += [
            f"  {row['function'][:52]:<52} {row['share']:>6.1%} {row['cpu_ms_per_item']:>8.4f}"
            for row in profile["self"]
        ]
        lines.append(f"  {'total (anywhere on the stack)':<52} {'share':>6} {'ms/item':>8}")
        lines += [
            f"  {row['function'][:52]:<52} {row['share']:>6.1%} {row['cpu_ms_per_item']:>8.4f}"
            for row in profile["total"]
        ]
        lines.append(f"  collapsed stacks: {profile['collapsed_stacks']}")
    lines += [
        textwrap.fill(warning, 100, initial_indent="  warning: ", subsequent_indent="    ")
        for warning in result["warnings"]
    ]
    lines += [f"  note: {note}" for note in result["notes"]]
    return "\n".join(lines)
