"""The Outbox page's chart of the last hour, as inline SVG: drawn on the server from the minute series, so
the page needs no front-end build, no script and no chart library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from outbox_relay.activity import HourActivity

WIDTH, HEIGHT = 720, 150
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 10, 22  # margins for the axis labels


@dataclass(frozen=True)
class Line:
    name: str
    color: str
    values: Sequence[int]


def minute_chart(title: str, minutes: Sequence[str], lines: Sequence[Line]) -> str:
    """One chart: a line per series over ``minutes`` ('YYYY-MM-DD HH:MM'), a y axis from 0 to the largest
    value, the time every 15 minutes, a legend; each point's value in a tooltip (``<title>``)."""
    top = max((max(line.values, default=0) for line in lines), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(minutes) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(value: int) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" class="axis">{top:,}</text>',
        f'<text x="{LEFT - 4}" y="{y(0):.1f}" text-anchor="end" class="axis">0</text>',
    ]
    for i in range(0, len(minutes), 15):
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - 6}" text-anchor="middle" class="axis">{escape(minutes[i][-5:])}</text>'
        )
    for n, line in enumerate(lines):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line.values))
        parts.append(
            f'<polyline class="series" data-series="{escape(line.name)}" fill="none" stroke="{line.color}" '
            f'stroke-width="2" points="{points}"/>'
        )
        for i, v in enumerate(line.values):
            if v:
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{line.color}">'
                    f"<title>{escape(minutes[i])} {escape(line.name)}: {v:,}</title></circle>"
                )
        parts.append(
            f'<text x="{LEFT + 8 + 110 * n}" y="{TOP + 8}" style="fill: {line.color}" class="legend">■ '
            f"{escape(line.name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def activity_charts(activity: HourActivity) -> list[str]:
    """The page's charts: rates per minute, and the backlog apart (its scale is another)."""
    if not activity.minutes:
        return []
    rates = [
        Line(name, color, values)
        for name, color, values in (
            ("published", "#1f77b4", activity.published),
            ("confirmed", "#2ca02c", activity.confirmed),
            ("failed", "#d62728", activity.failed),
        )
        if values is not None
    ]
    charts = [minute_chart("Rows per minute, last hour", activity.minutes, rates)] if rates else []
    if activity.backlog is not None:
        backlog = Line("backlog", "#ff7f0e", activity.backlog)
        charts.append(minute_chart("Backlog (rows not yet sent), last hour", activity.minutes, [backlog]))
    return charts
