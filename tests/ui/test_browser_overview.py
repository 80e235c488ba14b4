"""The overview in a real headless Chromium: the charts and their tables show the numbers of
the events posted, hostile names stay text, and both colour schemes are readable. Screenshots go
to ``test-artifacts/ui/`` (skips without a browser, as ``test_browser``)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.ui.conftest import Client, Hook
from tests.ui.test_browser import (  # noqa: F401 (fixtures)
    DESKTOP,
    browser,
    log_in,
    server,
    shot,
    webhook,
)
from tests.ui.test_overview import (
    EXPECTED_AGENTS,
    EXPECTED_DELIVERIES,
    EXPECTED_EVENTS,
    EXPECTED_REJECTED,
    post_known_events,
)

with contextlib.suppress(ImportError):  # without it the ``browser`` fixture skips
    from playwright.async_api import expect

LUMINANCE = """(selector) => {
    const lum = (css) => {
        const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
            v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const text = document.querySelector(selector);
    const box = text.closest(".chart-box");
    return [lum(getComputedStyle(text).fill), lum(getComputedStyle(box).backgroundColor)];
}"""
"""The relative luminance of a chart's text and of its box's background."""


async def table(page: Any, chart_id: str) -> list[list[str]]:
    """The rows of a chart's table of numbers, opened as a reader would."""
    await page.locator(f"#{chart_id} summary").click()
    rows = page.locator(f"#{chart_id} table tbody tr")
    return [
        [cell.strip() for cell in await rows.nth(i).locator("td").all_inner_texts()]
        for i in range(await rows.count())
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_overview_charts_match_the_events_posted(
    browser: Any,  # noqa: F811
    server: TestServer,  # noqa: F811
    webhook: Client,  # noqa: F811
    hook: Hook,
    scheme: str,
) -> None:
    await post_known_events(webhook, hook)
    context = await browser.new_context(viewport=DESKTOP, color_scheme=scheme)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await log_in(page, server, "/ui/")
    await expect(page.locator("h1")).to_have_text("Overview")
    await expect(page.locator("nav a[aria-current=page]")).to_have_text("Overview")

    # The bars: this hour's (the last) holds every event and delivery.
    for chart, expected in (
        ("events-24h", EXPECTED_EVENTS),
        ("deliveries-24h", EXPECTED_DELIVERIES),
    ):
        bar = page.locator(f"#{chart} svg g.bar").last
        await expect(bar).to_have_attribute("data-total", str(sum(expected.values())))
        await expect(page.locator(f"#{chart} svg g.bar")).to_have_count(24)
        await expect(page.locator(f"#{chart} svg")).to_have_attribute("role", "img")
    await expect(page.locator("#events-30d svg g.bar")).to_have_count(30)

    await shot(page, f"overview-{scheme}")  # charts only: the tables are closed

    # The tables under the charts say the same.
    events = await table(page, "events-24h")
    assert len(events) == 24 and events[-1][1:] == [str(v) for v in EXPECTED_EVENTS.values()] + [
        "7"
    ]
    deliveries = await table(page, "deliveries-30d")
    assert deliveries[-1][1:] == [str(v) for v in EXPECTED_DELIVERIES.values()] + ["9"]
    agents = {row[0]: tuple(int(n) for n in row[1:4]) for row in await table(page, "agents-24h")}
    assert agents == EXPECTED_AGENTS  # the hostile agent id shown as text
    await expect(page.locator("#agents-24h svg g.row")).to_have_count(3)
    await expect(page.locator("#agents-24h svg g.row text.value").first).to_have_text(
        "100% · 2 of 2"
    )
    rejected = {row[0]: int(row[1]) for row in await table(page, "rejected-24h")}
    assert rejected == EXPECTED_REJECTED
    assert await table(page, "dead-letters") == [["hook", "2"]]
    latency = await table(page, "latency-24h")
    assert [row[:2] for row in latency] == [["archive", "7"]]
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("main img, main script").count() == 0

    # Readable: the charts' text contrasts with their background in this scheme.
    text, background = await page.evaluate(LUMINANCE, "#events-24h svg .axis text")
    assert (background < 0.2) == (scheme == "dark")
    assert (max(text, background) + 0.05) / (min(text, background) + 0.05) >= 4.5
    assert errors == []
    await context.close()
