"""Small charts drawn on the server as inline SVG: no script and no download needed.

Each chart is a ``<svg>`` with a ``<title>`` per mark (the browser shows it on hover), an
``aria-label`` and a ``data-points`` count so tests and screen readers can read it.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 180
PAD_L, PAD_R, PAD_T, PAD_B = 56, 10, 12, 26


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}"


def _frame(
    label: str, kind: str, n: int, top: float, body: list[str], x_labels: list[str]
) -> Markup:
    plot_h = HEIGHT - PAD_T - PAD_B
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" data-kind="{kind}" data-points="{n}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for i in range(5):
        y = PAD_T + plot_h * i / 4
        value = top * (4 - i) / 4
        parts.append(
            f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{WIDTH - PAD_R}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_fmt(value)}</text>"
        )
    parts += body
    if x_labels:
        step = max(1, len(x_labels) // 6)
        width = (WIDTH - PAD_L - PAD_R) / max(len(x_labels), 1)
        for i in range(0, len(x_labels), step):
            x = PAD_L + width * (i + 0.5)
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{escape(x_labels[i])}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    label: str, values: Sequence[float], x_labels: Sequence[str], tips: Sequence[str] = ()
) -> Markup:
    """Bars of ``values`` (one per run or hour), scaled to the largest."""
    n = len(values)
    top = max([*values, 0]) or 1
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    width = plot_w / max(n, 1)
    body = []
    for i, value in enumerate(values):
        h = plot_h * value / top
        bar = min(width * 0.8, 36.0)
        x = PAD_L + width * i + (width - bar) / 2
        y = PAD_T + plot_h - h
        tip = tips[i] if i < len(tips) else f"{x_labels[i]}: {_fmt(value)}"
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(bar, 1):.1f}" '
            f'height="{max(h, 0):.1f}"><title>{escape(tip)}</title></rect>'
        )
    return _frame(label, "bar", n, top, body, list(x_labels))


def line_chart(
    label: str, values: Sequence[float], x_labels: Sequence[str], tips: Sequence[str] = ()
) -> Markup:
    """A line through ``values`` with a dot per point."""
    n = len(values)
    top = max([*values, 0]) or 1
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    width = plot_w / max(n, 1)
    points = [
        (PAD_L + width * (i + 0.5), PAD_T + plot_h - plot_h * v / top) for i, v in enumerate(values)
    ]
    body = []
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline class="line" points="{path}"/>')
    for i, (x, y) in enumerate(points):
        tip = tips[i] if i < len(tips) else f"{x_labels[i]}: {_fmt(values[i])}"
        body.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3">'
            f"<title>{escape(tip)}</title></circle>"
        )
    return _frame(label, "line", n, top, body, list(x_labels))
