"""The runs page and a run's timeline in headless Chromium (see ``test_browser`` for the setup).

Screenshots go to ``test-artifacts/ui/`` (``runs``, ``run``, and their ``_dark`` versions)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay.delivery.clock import SystemClock
from relay.ui.state import UI
from tests.ui import test_browser
from tests.ui.conftest import HOSTILE_TITLE, Client, Hook, post_event
from tests.ui.test_browser import PHONE, log_in, open_page, shot
from tests.ui.test_runs import PROGRESS, RUN, run_events

with contextlib.suppress(ImportError):  # the ``browser`` fixture skips (or fails in CI)
    from playwright.async_api import expect

browser = test_browser.browser
webhook = test_browser.webhook
"""``test_browser``'s fixtures (``webhook`` posts to this module's ``server``)."""


def png(width: int = 16, height: int = 9) -> bytes:
    """A small gradient image (the outputs' thumbnail)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((40 + 12 * x, 90 + 8 * y, 200)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = png()


class ShiftedClock(SystemClock):
    """The wall clock moved ahead by ``shift`` seconds, for runs that last minutes."""

    def __init__(self) -> None:
        self.shift = 0.0

    def now(self) -> float:
        return time.time() + self.shift

    async def wait(self, wake: asyncio.Event, deadline: float) -> None:
        await super().wait(wake, deadline - self.shift)


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
async def server(
    make_app: Callable[..., web.Application],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    clock: ShiftedClock,
) -> TestServer:
    app = make_app(clock=clock)
    app[UI].refresh_seconds = 0.25
    return await aiohttp_server(app)


@pytest.fixture
async def thumbs(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    """Where the outputs' thumbnails are (a local server: the browser loads them itself)."""

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/thumb.png", image)
    return await aiohttp_server(app)


async def local_only(page: Any) -> None:
    """Nothing leaves 127.0.0.1 (the samples name example.com URLs)."""
    await page.context.route(
        re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort()
    )


async def test_runs_page_and_a_runs_timeline(
    browser: Any,
    server: TestServer,
    webhook: Client,
    hook: Hook,
    thumbs: TestServer,
    clock: ShiftedClock,
) -> None:
    hook.status = 400
    thumb = str(thumbs.make_url("/thumb.png"))
    events = run_events()
    events[-1]["outputs"][0]["thumbnail_url"] = thumb
    ids = []
    for body in events:  # a run of six minutes
        ids.append(await post_event(webhook, body))
        clock.shift += 72
    for n, trigger in enumerate(("schedule", "manual")):  # two more runs, still running
        other = {
            **events[1],
            "run_id": f"5e1d{n}a7c-3b2f-4d6e-9a8b-7c6d5e4f3a2b",
            "triggered_by": {"type": trigger},
        }
        await post_event(webhook, other)
    page = await open_page(browser)
    await local_only(page)
    await log_in(page, server, "/ui/runs")

    row = page.locator(f'tr[data-run-id="{RUN}"]')
    await expect(page.locator("tr[data-run-id]")).to_have_count(3)
    await expect(page.locator("tr[data-run-id] .status")).to_have_text(
        ["running", "running", "failed"]
    )
    await expect(row.locator(".badge")).to_have_text("dead")  # the hook refused the failure
    await expect(row.locator(".title")).to_have_text(HOSTILE_TITLE)
    await expect(row.locator(".status")).to_have_text("failed")
    await expect(row.locator("td.outputs")).to_have_text("2")
    await expect(row.locator("td[data-label=Agent] a")).to_have_text("Shorts cutter")
    assert await page.locator("main img, main script").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await shot(page, "runs")

    await row.locator("td[data-label=Agent] a").click()
    await expect(page).to_have_url(str(server.make_url(f"/ui/runs/{RUN}")))
    await expect(page.locator(".facts .title")).to_have_text(HOSTILE_TITLE)
    await expect(page.locator("#run-events")).to_have_text(str(len(ids)))
    steps = page.locator("ol.timeline > li")
    await expect(steps).to_have_count(len(ids))
    assert [await step.get_attribute("data-event-id") for step in await steps.all()] == ids
    await expect(steps.locator(".head strong")).to_have_text(
        ["RUN_STARTED", *["RUN_PROGRESS"] * len(PROGRESS), "RUN_FINISHED"]
    )
    shown = [(0, 8, 0), *PROGRESS, (7, 0, 1)]
    for step, (completed, running, failed) in zip(await steps.all(), shown, strict=True):
        total = completed + running + failed
        await expect(step.locator("[data-counts]")).to_contain_text(
            f"{completed}/{total} completed"
        )
    await expect(steps.nth(2).locator(".nodes li")).to_have_text(["node-1 failed"])

    # The step chart and its table say the same numbers.
    await expect(page.locator("#progress-chart polyline")).to_have_count(3)
    await expect(page.locator("#progress-chart circle")).to_have_count(len(shown))
    await page.locator("#progress-table summary").click()
    cells = page.locator(".progress-rows tbody td[data-label=Completed]")
    await expect(cells).to_have_text([str(c) for c, _, _ in shown])

    # The thumbnail came from its URL (allowed on this page only); the javascript: one did not.
    image = page.locator(".output img")
    await expect(image).to_have_count(1)
    assert await image.evaluate("img => img.complete && img.naturalWidth") == 16
    assert await page.locator('a[href^="javascript:"]').count() == 0

    finished = steps.last
    await expect(finished.locator(".deliveries .badge")).to_have_text(
        ["archive: sent", "hook: dead"]
    )
    refused = finished.locator("details", has_text="hook:")
    await refused.locator("summary").click()
    await expect(refused.locator(".log")).to_contain_text("HTTP 400")
    assert await page.locator("main script, main img:not(.output img)").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await shot(page, "run")

    dark = await browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    night = await dark.new_page()
    await local_only(night)
    await log_in(night, server, f"/ui/runs/{RUN}")
    background = await night.evaluate("getComputedStyle(document.body).backgroundColor")
    line = await night.locator("#progress-chart .l-completed").evaluate(
        "el => getComputedStyle(el).stroke"
    )
    assert background != line
    await shot(night, "run_dark")
    await night.goto(str(server.make_url("/ui/runs")))
    await shot(night, "runs_dark")

    phone = await open_page(browser, PHONE)
    await local_only(phone)
    await log_in(phone, server, f"/ui/runs/{RUN}")
    for path in (f"/ui/runs/{RUN}", "/ui/runs"):
        await phone.goto(str(server.make_url(path)))
        overflow = await phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
    assert page.js_errors == [] and phone.js_errors == []


async def test_an_events_run_link_opens_its_timeline(
    browser: Any, server: TestServer, webhook: Client
) -> None:
    started = await post_event(webhook, run_events()[0])
    page = await open_page(browser)
    await local_only(page)
    await log_in(page, server, "/ui/events")
    await page.locator(f'tr[data-event-id="{started}"] td[data-label=Run] a').click()
    await expect(page).to_have_url(str(server.make_url(f"/ui/runs/{RUN}")))
    await expect(page.locator("ol.timeline > li")).to_have_count(1)
    await expect(page.locator("nav a[aria-current=page]")).to_have_text("Runs")
