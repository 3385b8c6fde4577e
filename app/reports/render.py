"""The reports as a spreadsheet opens them (CSV) and as a chart a browser shows (SVG)."""

from __future__ import annotations

import csv
import io
from typing import Any
from xml.sax.saxutils import escape

from app.core.vocabulary import SCALES, Metric

# Excel reads a CSV as UTF-8 only when it starts with a byte order mark.
BOM = "\ufeff"
OVERALL = "(all)"
# A cell starting with one of these is a formula to a spreadsheet: a touchpoint named
# "=HYPERLINK(...)" must stay text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _flat(figures: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in figures.items() if k != "distribution"}
    for score, count in figures.get("distribution", {}).items():
        row[f"score_{score}"] = count
    return row


def report_csv(report: dict[str, Any]) -> bytes:
    """One row per group, then the whole range as a last row keyed `(all)`."""
    rows = [_flat(group) for group in report["groups"]]
    rows.append({**_flat(report["overall"]), "key": OVERALL})
    out = io.StringIO()
    out.write(BOM)
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue().encode("utf-8")


_ROW, _LABEL, _BAR, _PAD = 28, 220, 440, 16


def _axis(metric: Metric) -> tuple[float, float]:
    if metric is Metric.NPS:
        return -100.0, 100.0
    if metric is Metric.CES:
        return 0.0, float(SCALES[metric][1])
    return 0.0, 100.0


def scores_svg(report: dict[str, Any]) -> bytes:
    """A horizontal bar per group (in the report's order: journey stages in journey order), its
    score and count beside it, on the metric's whole scale; plain SVG, no script."""
    metric = Metric(report["metric"])
    low, high = _axis(metric)
    groups = report["groups"]
    width = _LABEL + _BAR + 160
    height = _PAD * 3 + _ROW * max(len(groups), 1) + 20

    def x(value: float) -> float:
        return _LABEL + (value - low) / (high - low) * _BAR

    title = (
        f"{metric.value.upper()} by {report['group_by']}, "
        f"{report['from'].isoformat()} to {report['to'].isoformat()}"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_PAD}" y="{_PAD + 4}" font-weight="bold">{escape(title)}</text>',
    ]
    zero = x(max(low, 0.0))
    top = _PAD * 2
    for i, group in enumerate(groups):
        y = top + i * _ROW
        label = group["key"] if group["key"] is not None else "(none)"
        parts.append(
            f'<text x="{_LABEL - 8}" y="{y + 18}" text-anchor="end">{escape(str(label))}</text>'
        )
        score = group["score"]
        if score is not None:
            left, right = sorted((zero, x(score)))
            colour = "#c0392b" if metric is Metric.NPS and score < 0 else "#2e86c1"
            parts.append(
                f'<rect x="{left:.1f}" y="{y + 5}" width="{max(right - left, 1):.1f}" '
                f'height="{_ROW - 10}" fill="{colour}"/>'
            )
        shown = "–" if score is None else f"{score:g}"
        parts.append(
            f'<text x="{_LABEL + _BAR + 8}" y="{y + 18}">{shown} (n={group["count"]})</text>'
        )
    bottom = top + _ROW * max(len(groups), 1)
    parts.append(
        f'<line x1="{zero:.1f}" y1="{top}" x2="{zero:.1f}" y2="{bottom}" stroke="#333"/>'
        f'<text x="{x(low):.1f}" y="{bottom + 16}" text-anchor="start">{low:g}</text>'
        f'<text x="{x(high):.1f}" y="{bottom + 16}" text-anchor="end">{high:g}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts).encode("utf-8")
