"""The SVG charts: well-formed, bars proportional to the numbers, hostile labels as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from relay.ui.charts import Bars, Stacked, horizontal_bars, nice_max, stacked_bars
from tests.ui.conftest import HOSTILE_TITLE

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # raises on anything not well-formed


def child(element: ET.Element, path: str) -> ET.Element:
    found = element.find(path)
    assert found is not None, path
    return found


def rects(root: ET.Element, key: str) -> list[ET.Element]:
    return [
        r for r in root.iter(f"{SVG}rect") if r.get("class") == f"k-{key}" and r.get("data-value")
    ]


def test_stacked_bars_are_proportional_and_labelled() -> None:
    chart = Stacked(
        "Deliveries per hour",
        ("10:00", "11:00", "12:00"),
        (("sent", "sent", (10, 0, 5)), ("dead", "dead", (10, 0, 0))),
    )
    root = parse(stacked_bars(chart))
    assert root.get("role") == "img" and root.get("aria-label") == "Deliveries per hour"
    assert child(root, f"{SVG}title").text == "Deliveries per hour"
    sent, dead = rects(root, "sent"), rects(root, "dead")
    assert [r.get("data-value") for r in sent] == ["10", "5"] and len(dead) == 1
    heights = [float(r.get("height", "0")) for r in sent]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert float(dead[0].get("height", "0")) == pytest.approx(heights[0])
    # stacked: the dead part sits on top of the sent part of the same bar
    assert float(dead[0].get("y", "0")) + heights[0] == pytest.approx(float(sent[0].get("y", "0")))
    bars = root.findall(f"{SVG}g[@class='bar']")
    assert [b.get("data-total") for b in bars] == ["20", "0", "5"]
    assert child(bars[0], f"{SVG}title").text == "10:00: sent 10, dead 10"
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks == ["10:00", "11:00", "12:00"]
    axis = [t.text for t in child(root, f"{SVG}g[@class='axis']").iter(f"{SVG}text")]
    assert axis == ["20", "0"]  # nice_max(20)


def test_an_empty_stacked_chart_draws_no_bar() -> None:
    root = parse(stacked_bars(Stacked("Nothing", ("a", "b"), (("sent", "sent", (0, 0)),))))
    assert rects(root, "sent") == []


def test_horizontal_bars_are_proportional_to_the_scale() -> None:
    chart = Bars(
        "Failure rate",
        (("failure", "failure rate"),),
        (("agent one", (0.5,), "50%"), ("agent two", (0.25,), "25%")),
        scale=1.0,
    )
    root = parse(horizontal_bars(chart))
    widths = [float(r.get("width", "0")) for r in rects(root, "failure")]
    assert widths[0] == pytest.approx(2 * widths[1])
    rows = root.findall(f"{SVG}g[@class='row']")
    assert [r.get("data-label") for r in rows] == ["agent one", "agent two"]
    assert [child(r, f"{SVG}text[@class='value']").text for r in rows] == ["50%", "25%"]


def test_horizontal_bars_with_two_series_and_no_scale() -> None:
    chart = Bars("Latency", (("p50", "p50"), ("p95", "p95")), (("slack", (1.0, 4.0), "p50 1 s"),))
    root = parse(horizontal_bars(chart))
    (p50,), (p95,) = rects(root, "p50"), rects(root, "p95")
    assert float(p95.get("width", "0")) == pytest.approx(4 * float(p50.get("width", "0")))
    legend = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend == ["p50", "p95"]


def test_hostile_labels_are_text() -> None:
    markup = str(
        horizontal_bars(
            Bars(HOSTILE_TITLE, (("dead", "count"),), ((HOSTILE_TITLE, (1.0,), HOSTILE_TITLE),))
        )
    )
    markup += str(stacked_bars(Stacked(HOSTILE_TITLE, (HOSTILE_TITLE,), (("sent", "sent", (1,)),))))
    assert "<script" not in markup and "<img" not in markup and 'onerror="' not in markup
    for svg in markup.split("</svg>")[:-1]:
        root = parse(svg + "</svg>")
        assert root.get("aria-label") == HOSTILE_TITLE
    assert "style=" not in markup  # the CSP blocks inline styles


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (20, 20), (21, 25), (240, 250), (0.3, 0.5)]
)
def test_nice_max(value: float, top: float) -> None:
    assert nice_max(value) == top
