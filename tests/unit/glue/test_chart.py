"""The page's inline SVG chart: one polyline per series with a point per minute, scaled to the largest
value, text escaped; valid XML without a script."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from outbox_relay.activity import HourActivity
from outbox_relay_airflow.outbox_page.chart import HEIGHT, Line, activity_charts, minute_chart

SVG = "{http://www.w3.org/2000/svg}"
MINUTES = [f"2026-12-07 10:{m:02d}" for m in range(60)]


def _points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in polyline.attrib["points"].split())]


def test_each_series_is_a_line_scaled_to_the_largest_value() -> None:
    published = [0] * 59 + [40]
    failed = [5] * 60
    root = ET.fromstring(minute_chart("Rows <per> minute", MINUTES, [Line("published", "#111", published),
                                                                      Line("failed", "#222", failed)]))  # fmt: skip
    lines = {p.attrib["data-series"]: _points(p) for p in root.iter(f"{SVG}polyline")}
    assert set(lines) == {"published", "failed"} and all(len(p) == 60 for p in lines.values())
    xs = [x for x, _ in lines["published"]]
    assert xs == sorted(xs)  # time runs left to right
    top_y, base_y = lines["published"][-1][1], lines["published"][0][1]
    assert top_y < base_y < HEIGHT  # the largest value is highest; zero on the axis
    assert lines["failed"][0][1] == pytest.approx(base_y - (base_y - top_y) * 5 / 40, abs=0.1)  # 1 decimal
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "40" in texts and "0" in texts and "10:00" in texts and "10:45" in texts
    assert root.find(f"{SVG}title").text == "Rows <per> minute"  # escaped in the source, read back whole
    tips = [t.text for c in root.iter(f"{SVG}circle") for t in c.iter(f"{SVG}title")]
    assert "2026-12-07 10:59 published: 40" in tips and len(tips) == 61  # points with a value only
    assert not list(root.iter(f"{SVG}script"))
    legend = {
        t.text: t.attrib.get("style") for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "legend"
    }
    assert legend == {"■ published": "fill: #111", "■ failed": "fill: #222"}  # inline: the page's CSS loses


def test_a_chart_of_nothing_but_zeroes_still_draws_its_axis() -> None:
    root = ET.fromstring(minute_chart("empty", MINUTES, [Line("published", "#111", [0] * 60)]))
    assert len(_points(next(root.iter(f"{SVG}polyline")))) == 60


def test_the_backlog_gets_a_chart_of_its_own_and_missing_series_are_left_out() -> None:
    activity = HourActivity(MINUTES, published=[1] * 60, confirmed=None, failed=[0] * 60, backlog=[1000] * 60)
    rates, backlog = (ET.fromstring(svg) for svg in activity_charts(activity))
    assert [p.attrib["data-series"] for p in rates.iter(f"{SVG}polyline")] == ["published", "failed"]
    assert [p.attrib["data-series"] for p in backlog.iter(f"{SVG}polyline")] == ["backlog"]
    assert activity_charts(HourActivity()) == []
