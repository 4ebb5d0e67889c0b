"""Charts for the desk as inline SVG, drawn on the server (no script, no outside service).

Each function returns :class:`markupsafe.Markup` ready to place in a page: a
``<div class="chart-box">`` holding the chart drawn twice, wide (``svg.chart.wide``, the
``width`` asked for) and narrow (``svg.chart.narrow``, :data:`NARROW` units across, fewer
labels) for a phone, where a wide chart would be too small to read or would push the page
sideways; the stylesheet shows one of the two. Each ``<svg>`` has ``role="img"``, a
``<title>`` and a ``<desc>`` saying what it shows in words, and classes (``bar-sent``,
``bar-failed``, ``line``, ``threshold`` ...) that the desk's stylesheet colours for light and
dark mode. The left margin grows with the y labels ("0.25 %"), so none is cut. No ``style``
attribute is used, so the desk's Content-Security-Policy needs no inline styles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["HALF", "NARROW", "WIDTH", "Bar", "bar_chart", "line_chart", "nice_ceiling",
           "rate_chart"]

WIDTH, HEIGHT = 900, 250
#: The width of a chart that shares the page with another one.
HALF = 560
#: The width of every chart's phone drawing (shown at about 300 to 500 px).
NARROW = 360
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 16, 32
MAX_LABELS = 8
#: Room per character of a y label at the largest font the stylesheet gives ticks (18 units).
_CHAR = 11


@dataclass(frozen=True, slots=True)
class Bar:
    """One x position: its ``label`` and stacked ``values`` as ``(css class, value)``."""

    label: str
    values: tuple[tuple[str, float], ...]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least ``value`` (≥ 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(title: str, desc: str, body: list[str], *, css: str, width: int) -> Markup:
    return Markup(
        f'<svg class="chart {css}" viewBox="0 0 {width} {HEIGHT}" role="img" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>{''.join(body)}</svg>")


def _both(draw: Callable[[int], Markup], width: int) -> Markup:
    """The chart drawn at ``width`` and at :data:`NARROW`, in one box."""
    return Markup('<div class="chart-box">') + draw(width) + draw(NARROW) + Markup("</div>")


def _size(width: int) -> str:
    return "wide" if width > NARROW else "narrow"


def _y_texts(top_value: float, percent: bool) -> list[str]:
    return [f"{top_value * f * 100:g} %" if percent else _fmt(top_value * f)
            for f in (0.0, 0.5, 1.0)]


def _left(top_value: float, percent: bool = False) -> int:
    """The left margin: room for the longest y label."""
    return max(LEFT, 14 + _CHAR * max(len(t) for t in _y_texts(top_value, percent)))


def _axes(top_value: float, labels: Sequence[str], *, width: int,
          percent: bool = False) -> list[str]:
    """Horizontal grid lines with y labels (0, half, top) and up to MAX_LABELS x labels
    (half as many on a chart narrower than :data:`WIDTH`, a quarter on a phone's)."""
    left = _left(top_value, percent)
    plot_w, plot_h = width - left - RIGHT, HEIGHT - TOP - BOTTOM
    out = []
    for fraction, text in zip((0.0, 0.5, 1.0), _y_texts(top_value, percent), strict=True):
        y = TOP + plot_h * (1 - fraction)
        out.append(f'<line class="grid" x1="{left}" x2="{width - RIGHT}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{escape(text)}</text>')
    n = len(labels)
    if n:
        most = (MAX_LABELS if width >= WIDTH else
                MAX_LABELS // 2 if width > NARROW else MAX_LABELS // 4 + 1)
        every = max(1, math.ceil(n / most))
        step = plot_w / n
        for i in range(0, n, every):
            x = left + step * (i + 0.5)
            out.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 8}" '
                       f'text-anchor="middle">{escape(labels[i])}</text>')
    return out


def bar_chart(bars: Sequence[Bar], *, title: str, desc: str, width: int = WIDTH) -> Markup:
    """Stacked bars, one per item of ``bars`` (e.g. messages per minute: sent, failed);
    ``width`` in viewBox units (:data:`HALF` for a chart in half a page)."""
    top = nice_ceiling(max((sum(v for _, v in b.values) for b in bars), default=0))

    def draw(width: int) -> Markup:
        left = _left(top)
        plot_w, plot_h = width - left - RIGHT, HEIGHT - TOP - BOTTOM
        body = _axes(top, [b.label for b in bars], width=width)
        if bars:
            step = plot_w / len(bars)
            bar_w = min(48.0, max(1.0, step * 0.72))
            for i, bar in enumerate(bars):
                x = left + step * i + (step - bar_w) / 2
                base = float(TOP + plot_h)
                for css, value in bar.values:
                    if value <= 0:
                        continue
                    h = plot_h * value / top
                    base -= h
                    body.append(f'<rect class="{escape(css)}" x="{x:.1f}" y="{base:.1f}" '
                                f'width="{bar_w:.1f}" height="{h:.1f}"><title>'
                                f"{escape(bar.label)}: {_fmt(value)}</title></rect>")
        return _frame(title, desc, body, css=f"bars {_size(width)}", width=width)

    return _both(draw, width)


def line_chart(points: Sequence[tuple[str, float]], *, title: str, desc: str,
               width: int = WIDTH) -> Markup:
    """A line through ``(label, value)`` points with a light area under it (e.g. list size
    per day); the y axis starts at zero so growth is not exaggerated."""
    top = nice_ceiling(max((v for _, v in points), default=0))

    def draw(width: int) -> Markup:
        left = _left(top)
        plot_w, plot_h = width - left - RIGHT, HEIGHT - TOP - BOTTOM
        body = _axes(top, [label for label, _ in points], width=width)
        if points:
            step = plot_w / len(points)
            xy = [(left + step * (i + 0.5), TOP + plot_h * (1 - v / top))
                  for i, (_, v) in enumerate(points)]
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            floor = TOP + plot_h
            body.append(f'<polygon class="area" points="{xy[0][0]:.1f},{floor} {path} '
                        f'{xy[-1][0]:.1f},{floor}"/>')
            body.append(f'<polyline class="line" points="{path}"/>')
            last_x, last_y = xy[-1]
            body.append(f'<circle class="dot" cx="{last_x:.1f}" cy="{last_y:.1f}" r="3.5">'
                        f"<title>{escape(points[-1][0])}: {_fmt(points[-1][1])}</title>"
                        "</circle>")
        return _frame(title, desc, body, css=f"lines {_size(width)}", width=width)

    return _both(draw, width)


def rate_chart(rates: Sequence[tuple[str, float | None]], *, threshold: float, title: str,
               desc: str, threshold_label: str, width: int = WIDTH) -> Markup:
    """Bars of a rate per item (e.g. complaint rate per edition) with ``threshold`` drawn
    as a dashed line; bars over it get the class ``over``. The scale always shows the
    threshold with room above it."""
    highest = max((r for _, r in rates if r is not None), default=0.0)
    top = nice_ceiling(max(threshold * 1.4, highest * 1.1) * 10_000) / 10_000

    def draw(width: int) -> Markup:
        left = _left(top, percent=True)
        plot_w, plot_h = width - left - RIGHT, HEIGHT - TOP - BOTTOM
        body = _axes(top, [label for label, _ in rates], width=width, percent=True)
        if rates:
            step = plot_w / len(rates)
            bar_w = max(1.0, step * 0.6)
            for i, (label, rate) in enumerate(rates):
                if rate is None:
                    continue
                h = max(1.0, plot_h * rate / top) if rate > 0 else 0.0
                x = left + step * i + (step - bar_w) / 2
                css = "bar-rate over" if rate > threshold else "bar-rate"
                body.append(f'<rect class="{css}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" '
                            f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(label)}: '
                            f"{rate * 100:.3f} %</title></rect>")
        y = TOP + plot_h * (1 - threshold / top)
        body.append(f'<line class="threshold" x1="{left}" x2="{width - RIGHT}" '
                    f'y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(f'<text class="threshold-label" x="{width - RIGHT - 4}" y="{y - 6:.1f}" '
                    f'text-anchor="end">{escape(threshold_label)}</text>')
        return _frame(title, desc, body, css=f"rates {_size(width)}", width=width)

    return _both(draw, width)
