"""Charts as inline SVG, built on the server: no JavaScript, no build step.

Pure functions from numbers to markup. Every piece of text that came from the database (class
and queue names) is escaped here, because the result is inserted into the page as markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

# Colour-blind-safe palette (Okabe-Ito), then grey for "other".
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
OTHER = "#999999"
MAX_SERIES = len(PALETTE)


def top_series(
    series: dict[str, list[int]], limit: int = MAX_SERIES
) -> list[tuple[str, list[int]]]:
    """The ``limit`` busiest series by total, the rest summed as "other"; pure."""
    ranked = sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    top = ranked[:limit]
    rest = ranked[limit:]
    if rest:
        width = len(rest[0][1])
        summed = [sum(values[i] for _, values in rest) for i in range(width)]
        top.append((f"other ({len(rest)})", summed))
    return top


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def line_chart(
    series: dict[str, list[int]],
    x_labels: Sequence[str],
    *,
    title: str,
    width: int = 900,
    height: int = 260,
) -> Markup:
    """A stacked-free multi-line chart with axes and a legend, as one ``<svg>`` element."""
    left, right, top, bottom = 48, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    lines = top_series(series)
    n = max(len(x_labels), 1)
    peak = _nice_max(max((max(v) for _, v in lines if v), default=0))

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / peak

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for frac in (0, 0.5, 1):
        gy = y(peak * frac)
        parts.append(
            f'<line class="grid" x1="{left}" y1="{gy:.1f}" x2="{width - right}" y2="{gy:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{peak * frac:g}</text>"
        )
    for i in sorted({0, n // 2, n - 1}):
        if i < len(x_labels):
            anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
            parts.append(
                f'<text class="axis" x="{x(i):.1f}" y="{height - 8}" text-anchor="{anchor}">'
                f"{escape(x_labels[i])}</text>"
            )
    for k, (name, values) in enumerate(lines):
        colour = PALETTE[k] if k < len(PALETTE) else OTHER
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
            f"<title>{escape(name)}: {sum(values)}</title></polyline>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" data-colour="{k}"></span>{escape(name)} '
        f"<small>({sum(values)})</small></li>"
        for k, (name, values) in enumerate(lines)
    )
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')


def duration_bars(
    rows: Sequence[tuple[str, float, float]], *, title: str, width: int = 900
) -> Markup:
    """Horizontal bars of p50 (dark) inside p95 (light) seconds per label."""
    if not rows:
        return Markup('<p class="empty">No finished executions in this window.</p>')
    label_w, right, bar_h, gap = 300, 80, 14, 8
    height = len(rows) * (bar_h + gap) + gap
    peak = max(max(p95 for _, _, p95 in rows), 1e-9)
    scale = (width - label_w - right) / peak
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, p50, p95) in enumerate(rows):
        top = gap + i * (bar_h + gap)
        parts.append(
            f'<text class="axis" x="{label_w - 8}" y="{top + bar_h - 3}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="p95" x="{label_w}" y="{top}" width="{max(p95 * scale, 1):.1f}" '
            f'height="{bar_h}"><title>p95 {p95:.3f} s</title></rect>'
            f'<rect class="p50" x="{label_w}" y="{top}" width="{max(p50 * scale, 1):.1f}" '
            f'height="{bar_h}"><title>p50 {p50:.3f} s</title></rect>'
            f'<text class="axis" x="{label_w + p95 * scale + 6:.1f}" y="{top + bar_h - 3}">'
            f"{format_seconds(p50)} / {format_seconds(p95)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def format_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"
