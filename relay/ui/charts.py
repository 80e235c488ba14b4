"""Server-rendered SVG charts: stacked vertical bars and horizontal bars. No script, no style.

Colours come from CSS classes (``k-<key>`` on each series, ``app.css``) and text uses
``currentColor``, so the charts follow the page's light or dark scheme; the CSP's
``style-src 'self'`` blocks ``style=`` attributes, so none is written. Every label is escaped
(agent and channel names are hostile text). Each chart is ``role="img"`` with a ``<title>`` and an
``aria-label``; the page shows a table of the same numbers under it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Bars", "Stacked", "horizontal_bars", "nice_max", "stacked_bars"]

WIDTH = 720
PLOT_LEFT = 44
PLOT_RIGHT = 8
PLOT_TOP = 12
PLOT_HEIGHT = 160
AXIS_HEIGHT = 22
LEGEND_HEIGHT = 22
ROW_HEIGHT = 22
LABEL_WIDTH = 190
VALUE_WIDTH = 150
MAX_LABEL = 20


@dataclass(frozen=True, slots=True)
class Stacked:
    """Vertical bars, one per label, each stacking one value per series."""

    title: str
    labels: tuple[str, ...]
    series: tuple[tuple[str, str, tuple[int, ...]], ...]
    """(key for the CSS class, name shown, one value per label), bottom first."""
    every: int = 1
    """Show every n-th label under the axis (all are in the bars' tooltips)."""


@dataclass(frozen=True, slots=True)
class Bars:
    """Horizontal bars, one row per label, one bar per series (side by side in the row)."""

    title: str
    series: tuple[tuple[str, str], ...]
    """(key for the CSS class, name shown)."""
    rows: tuple[tuple[str, tuple[float, ...], str], ...]
    """(label, one value per series, the text shown after the bars)."""
    scale: float | None = None
    """The value of a full-width bar (None: the largest value)."""


def nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at least ``value`` (an axis's top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _open(title: str, height: int) -> list[str]:
    label = escape(title)
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{label}</title>",
    ]


def _legend(series: Sequence[tuple[str, str]], y: int) -> list[str]:
    parts, x = [], PLOT_LEFT
    for key, name in series:
        parts.append(
            f'<rect class="k-{escape(key)}" x="{x}" y="{y - 10}" width="10" height="10"/>'
            f'<text class="legend" x="{x + 14}" y="{y}">{escape(name)}</text>'
        )
        x += 24 + 8 * len(name)
    return parts


def stacked_bars(chart: Stacked) -> Markup:
    """Bar heights are proportional to the values; the axis's top is ``nice_max`` of the largest
    stack."""
    count = max(1, len(chart.labels))
    totals = [sum(values[i] for _, _, values in chart.series) for i in range(len(chart.labels))]
    top = nice_max(max(totals, default=0))
    height = PLOT_TOP + PLOT_HEIGHT + AXIS_HEIGHT + LEGEND_HEIGHT
    plot_width = WIDTH - PLOT_LEFT - PLOT_RIGHT
    step = plot_width / count
    bar = max(1.0, step * 0.8)
    base = PLOT_TOP + PLOT_HEIGHT
    parts = _open(chart.title, height)
    parts.append(
        f'<g class="axis"><line x1="{PLOT_LEFT}" y1="{base}" x2="{WIDTH - PLOT_RIGHT}" '
        f'y2="{base}"/><line x1="{PLOT_LEFT}" y1="{PLOT_TOP}" x2="{WIDTH - PLOT_RIGHT}" '
        f'y2="{PLOT_TOP}" class="grid"/>'
        f'<text x="{PLOT_LEFT - 4}" y="{PLOT_TOP + 4}" text-anchor="end">{_number(top)}</text>'
        f'<text x="{PLOT_LEFT - 4}" y="{base}" text-anchor="end">0</text></g>'
    )
    for i, label in enumerate(chart.labels):
        x = PLOT_LEFT + i * step + (step - bar) / 2
        y = float(base)
        tip = ", ".join(f"{name} {values[i]}" for _, name, values in chart.series)
        parts.append(f'<g class="bar" data-label="{escape(label)}" data-total="{totals[i]}">')
        parts.append(f"<title>{escape(label)}: {escape(tip)}</title>")
        for key, _, values in chart.series:
            if values[i] <= 0:
                continue
            h = values[i] / top * PLOT_HEIGHT
            y -= h
            parts.append(
                f'<rect class="k-{escape(key)}" x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" '
                f'height="{h:.2f}" data-value="{values[i]}"/>'
            )
        parts.append("</g>")
        if i % max(1, chart.every) == 0:
            parts.append(
                f'<text class="tick" x="{x + bar / 2:.2f}" y="{base + 15}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.extend(_legend([(key, name) for key, name, _ in chart.series], height - 6))
    parts.append("</svg>")
    return Markup("".join(parts))


def horizontal_bars(chart: Bars) -> Markup:
    """Bar widths are proportional to the values (``scale`` is a full-width bar)."""
    lanes = max(1, len(chart.series))
    height = PLOT_TOP + max(1, len(chart.rows)) * ROW_HEIGHT * lanes + LEGEND_HEIGHT + 4
    largest = max((v for _, values, _ in chart.rows for v in values), default=0.0)
    scale = chart.scale if chart.scale is not None else largest
    scale = scale if scale > 0 else 1.0
    plot_left = LABEL_WIDTH
    plot_width = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    parts = _open(chart.title, height)
    y = PLOT_TOP
    for label, values, text in chart.rows:
        row_height = ROW_HEIGHT * lanes
        parts.append(f'<g class="row" data-label="{escape(label)}">')
        parts.append(f"<title>{escape(label)}: {escape(text)}</title>")
        parts.append(
            f'<text x="{plot_left - 6}" y="{y + row_height / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(_short(label))}</text>'
        )
        for lane, ((key, _), value) in enumerate(zip(chart.series, values, strict=True)):
            width = max(0.0, value) / scale * plot_width
            parts.append(
                f'<rect class="k-{escape(key)}" x="{plot_left}" y="{y + lane * ROW_HEIGHT + 3}" '
                f'width="{width:.2f}" height="{ROW_HEIGHT - 6}" data-value="{_number(value)}"/>'
            )
        parts.append(
            f'<text class="value" x="{WIDTH - VALUE_WIDTH + 6}" '
            f'y="{y + row_height / 2 + 4:.1f}">{escape(text)}</text></g>'
        )
        y += row_height
    if len(chart.series) > 1:
        parts.extend(_legend(chart.series, height - 8))
    parts.append("</svg>")
    return Markup("".join(parts))
