"""The UI in a real headless Chromium (Debian's ``chromium``) driven by Playwright.

Without Playwright or ``/usr/bin/chromium`` these tests skip, unless ``RELAY_REQUIRE_BROWSER=1``
(CI) makes that a failure. Screenshots of every page go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay.ui.state import UI
from tests.conftest import sample
from tests.ui.conftest import ADMIN_TOKEN, HOSTILE_TITLE, Client, Hook, post_event
from tests.ui.test_api import youtube_failed

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # the ``browser`` fixture skips, or fails when a browser is required
    async_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
OTHER_RUN = "4b1e0c9a-2f3d-4e5b-8c7d-6a5b4c3d2e1f"


def missing_browser() -> str | None:
    if async_playwright is None:
        return "Playwright for Python is not installed (pip install playwright)"
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    reason = missing_browser()
    if reason is not None:
        if os.environ.get("RELAY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"RELAY_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    assert async_playwright is not None
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def server(
    make_app: Callable[..., web.Application],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> TestServer:
    app = make_app()
    app[UI].refresh_seconds = 0.25
    return await aiohttp_server(app)


@pytest.fixture
async def webhook(server: TestServer, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    """A client that posts signed webhooks to the relay the browser looks at."""
    return await aiohttp_client(server)


async def open_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


async def log_in(page: Any, server: TestServer, path: str = "/ui/events") -> None:
    await page.goto(str(server.make_url(path)))
    await expect(page).to_have_url(re.compile(r".*/ui/login\?next=.*"))
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(str(server.make_url(path)))


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.locator("body").screenshot(path=str(ARTIFACTS / f"{name}.png"))


def row(page: Any, event_id: str) -> Any:
    return page.locator(f'tr[data-event-id="{event_id}"]')


async def test_log_in_see_events_arrive_live_and_open_one(
    browser: Any, server: TestServer, webhook: Client, hook: Hook
) -> None:
    page = await open_page(browser)
    await page.goto(str(server.make_url("/ui/events")))
    await page.fill("#token", "not-the-token")
    await page.click("button[type=submit]")
    await expect(page.locator("[role=alert]")).to_have_text("Wrong admin token.")
    await shot(page, "login")
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(str(server.make_url("/ui/events")))
    await expect(page.locator("text=No events.")).to_be_visible()

    hook.status = 400
    ids = [
        await post_event(webhook, sample(name))
        for name in ("run_started_youtube", "run_progress", "run_finished_completed_youtube")
    ]
    hostile = await post_event(webhook, {**youtube_failed(), "run_id": OTHER_RUN})

    # The page refreshes itself: no reload.
    await expect(row(page, hostile)).to_be_visible()
    for event_id in ids:
        await expect(row(page, event_id)).to_be_visible()
    await expect(row(page, hostile).locator(".badge")).to_have_text(["archive: sent", "hook: dead"])
    await expect(row(page, hostile).locator(".title")).to_have_text(HOSTILE_TITLE)
    assert await page.locator("main img, main script").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await expect(page.locator('[data-count="received"]')).to_have_text("4")
    await expect(page.locator('[data-count="dead"]')).to_have_text("1")
    await shot(page, "events")

    # Filters survive the refresh.
    await page.select_option("select[name=flag]", "RUN_FINISHED")
    await page.click("#filters button[type=submit]")
    await expect(page).to_have_url(re.compile(r".*flag=RUN_FINISHED.*"))
    await expect(page.locator("tr[data-event-id]")).to_have_count(2)
    progress = await post_event(webhook, {**sample("run_progress"), "n": 2})
    # Another run's end: a run ends once (a second identical end would be a duplicate).
    finished = await post_event(
        webhook, {**sample("run_finished_completed_youtube"), "run_id": "second-run-ending"}
    )
    await expect(row(page, finished)).to_be_visible()
    await expect(page.locator("tr[data-event-id]")).to_have_count(3)
    assert await row(page, progress).count() == 0
    assert await page.input_value("select[name=flag]") == "RUN_FINISHED"
    assert "flag=RUN_FINISHED" in page.url

    await row(page, hostile).locator("td").first.locator("a").click()
    await expect(page).to_have_url(str(server.make_url(f"/ui/events/{hostile}")))
    await expect(page.locator(".facts .title")).to_have_text(HOSTILE_TITLE)
    assert json.dumps(HOSTILE_TITLE) in await page.locator("pre.payload").inner_text()
    archive = page.locator("section.delivery", has_text="archive")
    await expect(archive.locator("pre.message")).to_contain_text("Failed")
    dead = page.locator("section.delivery", has_text="hook")
    await expect(dead.locator(".log .badge")).to_have_text(["dead"])
    await expect(dead.locator(".log")).to_contain_text("HTTP 400")
    assert await page.evaluate("window.__pwned") is None
    await shot(page, "event")
    assert page.js_errors == []


async def test_replay_dead_letters_and_see_them_turn_sent(
    browser: Any, server: TestServer, webhook: Client, hook: Hook
) -> None:
    hook.status = 400
    events = []
    for n in range(3):
        events.append(await post_event(webhook, {**youtube_failed(), "run_id": f"run-{n}"}))
    page = await open_page(browser)
    await log_in(page, server, "/ui/dead-letters")
    await expect(page.locator("table.dead tbody tr")).to_have_count(3)
    await expect(page.locator("table.dead .title").first).to_have_text(HOSTILE_TITLE)
    await shot(page, "dead_letters")
    hook.status = 200

    # One from its row.
    first = page.locator(
        "table.dead tbody tr", has=page.locator(f'a[href="/ui/events/{events[0]}"]')
    )
    await first.locator("button[data-replay]").click()
    await expect(page.locator("#result")).to_have_text(
        "Replayed 1 dead letter: delivery starts now."
    )
    await expect(page.locator("table.dead tbody tr")).to_have_count(2)
    await page.goto(str(server.make_url(f"/ui/events/{events[0]}")))
    await expect(
        page.locator("section.delivery", has_text="hook").locator("h3 .badge")
    ).to_have_text("sent")

    # One from its event's page: the badge turns sent in place.
    await page.goto(str(server.make_url(f"/ui/events/{events[1]}")))
    card = page.locator("section.delivery", has_text="hook")
    await expect(card.locator("h3 .badge")).to_have_text("dead")
    await card.locator("button[data-replay]").click()
    await expect(page.locator("#result")).to_contain_text("Replayed 1 dead letter")
    await expect(card.locator("h3 .badge")).to_have_text("sent")
    await expect(card.locator(".log .badge")).to_have_text(["dead", "replayed", "sent"])

    # The rest with "Replay all", after confirming.
    await page.goto(str(server.make_url("/ui/dead-letters")))
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click('button[data-replay="all"]')
    await expect(page.locator("#result")).to_have_text(
        "Replayed 1 dead letter: delivery starts now."
    )
    await expect(page.locator("text=No dead letters.")).to_be_visible()
    await expect(page.locator('[data-count="dead"]')).to_have_text("0")
    sent = {body["event_id"] for body in hook.bodies[-3:]}
    assert sent == set(events)
    assert page.js_errors == []


async def test_route_tester_previews_and_sends_nothing(
    browser: Any, server: TestServer, hook: Hook
) -> None:
    page = await open_page(browser)
    await log_in(page, server, "/ui/route-test")
    await page.select_option("#sample", "run_finished_failed")
    await expect(page.locator("#event-json")).to_have_value(
        json.dumps(sample("run_finished_failed"), indent=2)
    )
    await page.click("#route-test button[type=submit]")
    previews = page.locator("#rt-result article")
    await expect(previews.locator("h3")).to_have_text(["→ archive (file)", "→ hook (webhook)"])
    await expect(previews.first.locator("pre.message")).to_contain_text("Failed")
    await expect(previews.first.locator(".meta")).to_contain_text("route all")
    await shot(page, "route_test")

    await page.fill("#event-json", json.dumps(youtube_failed()))
    await page.click("#route-test button[type=submit]")
    await expect(previews.first.locator("pre.message")).to_contain_text(HOSTILE_TITLE)
    assert await page.locator("#rt-result img, #rt-result script").count() == 0
    assert await page.evaluate("window.__pwned") is None

    await page.fill("#event-json", "{not json")
    await page.click("#route-test button[type=submit]")
    await expect(page.locator("#rt-result .error")).to_contain_text("not valid JSON")

    assert hook.bodies == []
    await expect(page.locator('[data-count="received"]')).to_have_text("0")
    assert page.js_errors == []


async def test_config_phone_width_and_log_out(
    browser: Any, server: TestServer, webhook: Client, hook: Hook
) -> None:
    await post_event(webhook, youtube_failed())
    page = await open_page(browser)
    await log_in(page, server, "/ui/config")
    await expect(page.locator("h1")).to_have_text("Config")
    await expect(page.locator("text=Succeeded")).to_be_visible()
    content = await page.content()
    assert "**********" in content
    for secret in (ADMIN_TOKEN, "hook-header-s3cret", "hook-hmac-s3cret"):
        assert secret not in content
    await shot(page, "config")

    phone = await open_page(browser, PHONE)
    await log_in(phone, server, "/ui/events")
    for path in ("/ui/events", "/ui/dead-letters", "/ui/route-test", "/ui/config"):
        await phone.goto(str(server.make_url(path)))
        overflow = await phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
    await phone.goto(str(server.make_url("/ui/events")))
    await expect(phone.locator("tr[data-event-id] .title")).to_have_text(HOSTILE_TITLE)
    await shot(phone, "events_phone")

    await phone.click(".logout button")
    await expect(phone).to_have_url(str(server.make_url("/ui/login")))
    await phone.goto(str(server.make_url("/ui/events")))
    await expect(phone).to_have_url(re.compile(r".*/ui/login\?next=.*"))
    assert phone.js_errors == [] and page.js_errors == []
