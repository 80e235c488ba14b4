"""The server-rendered pages: content, escaping of event text, no secrets, headers."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import markupsafe
from aiohttp import web

from relay.app import RELAY
from relay.mosaic.reconcile import PassReport
from relay.ui.pages import PAGE_SIZE
from tests.conftest import sample, wait_until
from tests.ui.conftest import (
    HOSTILE_TITLE,
    Client,
    Hook,
    assert_no_secret,
    bearer,
    login,
    post_event,
)
from tests.ui.test_api import PlainStore, get, youtube_failed

PAGES = ["/ui/events", "/ui/dead-letters", "/ui/route-test", "/ui/config"]


async def page(client: Client, path: str, status: int = 200) -> str:
    answer = await client.get(path, allow_redirects=False)
    text = await answer.text()
    assert answer.status == status, text[:500]
    assert_no_secret(text)
    return text


def assert_escaped(text: str, shown: str = HOSTILE_TITLE) -> None:
    """The hostile title is there as text (``shown``, HTML-escaped): none of its markup survives."""
    escaped = str(markupsafe.escape(shown))
    assert escaped in text
    assert html.unescape(escaped) == shown
    assert "<img" not in text
    assert "<script>window" not in text


async def settled(client: Client, event_id: str, expected: dict[str, str]) -> None:
    async def done() -> bool:
        answer = await client.get(f"/api/events/{event_id}", headers=bearer())
        detail: dict[str, Any] = await answer.json()
        return {d["channel"]: d["delivery"] for d in detail["deliveries"]} == expected

    await wait_until(done)


async def test_every_page_renders_with_security_headers(client: Client) -> None:
    await login(client)
    for path in PAGES:
        answer = await client.get(path)
        assert answer.status == 200, path
        assert answer.content_type == "text/html"
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Frame-Options"] == "DENY"
        text = await answer.text()
        assert_no_secret(text)
        assert 'data-count="received"' in text and 'href="/ui/static/app.css"' in text
        assert "<script>" not in text  # no inline script: the CSP allows none


async def test_ui_root_is_the_overview(client: Client) -> None:
    await login(client)
    answer = await client.get("/ui", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/ui/"
    answer = await client.get("/ui/", allow_redirects=False)
    assert answer.status == 200 and "<h1>Overview</h1>" in await answer.text()


async def test_static_files(client: Client) -> None:
    css = await client.get("/ui/static/app.css")
    assert css.status == 200 and css.content_type == "text/css"
    assert "@media (max-width" in await css.text()
    js = await client.get("/ui/static/app.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    for name in ("nope.js", "..%2F__init__.py", "%2E%2E%2Fpages.py"):
        assert (await client.get(f"/ui/static/{name}")).status == 404


async def test_events_page_rows_states_and_hostile_title(client: Client, hook: Hook) -> None:
    await login(client)
    hook.status = 400
    failed = await post_event(client, youtube_failed())
    started = await post_event(client, sample("run_started_youtube"))
    await settled(client, failed, {"archive": "sent", "hook": "dead"})
    text = await page(client, "/ui/events")
    assert text.index(f'data-event-id="{started}"') < text.index(f'data-event-id="{failed}"')
    row = text[text.index(f'data-event-id="{failed}"') :]
    row = row[: row.index("</tr>")]
    for fragment in ("RUN_FINISHED", "failed", "Shorts cutter", "youtube"):
        assert fragment in row
    assert "archive: sent" in row and "hook: dead" in row
    assert f'href="/ui/events/{failed}"' in row
    assert_escaped(text)


async def test_events_page_filters_and_keeps_them_in_the_form(client: Client) -> None:
    await login(client)
    progress = await post_event(client, sample("run_progress"))
    finished = await post_event(client, sample("run_finished_failed"))
    text = await page(client, "/ui/events?flag=RUN_PROGRESS&status=&agent=Shorts+cutter")
    assert progress in text and finished not in text
    assert "<option selected>RUN_PROGRESS</option>" in text
    assert "<option>DIGEST</option>" in text  # the messages of digests and quiet hours
    assert 'name="agent" list="agents" value="Shorts cutter"' in text
    text = await page(client, "/ui/events?flag=TEST")
    assert "No events match these filters." in text


async def test_events_page_pages_keeping_the_filters(client: Client) -> None:
    await login(client)
    for n in range(PAGE_SIZE + 2):
        await post_event(client, {**sample("run_progress"), "n": n})
    text = await page(client, "/ui/events?flag=RUN_PROGRESS")
    assert text.count("data-event-id=") == PAGE_SIZE
    older = re.search(r'href="/ui/events\?(flag=RUN_PROGRESS&amp;before=\d+)">Older', text)
    assert older, "no link to older events"
    text = await page(client, "/ui/events?" + html.unescape(older.group(1)))
    assert text.count("data-event-id=") == 2
    assert 'href="/ui/events?flag=RUN_PROGRESS">← Newest' in text
    assert "Older →" not in text


async def test_event_page_shows_payload_attempts_and_message(client: Client, hook: Hook) -> None:
    await login(client)
    hook.status = 400
    event_id = await post_event(client, youtube_failed())
    await settled(client, event_id, {"archive": "sent", "hook": "dead"})
    text = await page(client, f"/ui/events/{event_id}")
    assert_escaped(text)
    assert "Routes matched" in text and "<code>all</code>, <code>failures</code>" in text
    assert "Message as sent" in text and "Failed" in text
    assert "HTTP 400" in text
    assert 'data-replay="' in text
    assert "&#34;flag&#34;: &#34;RUN_FINISHED&#34;" in text  # the pretty payload
    assert f'href="/ui/route-test?event={event_id}"' in text
    await page(client, "/ui/events/nope", status=404)


async def test_dead_letters_page(client: Client, hook: Hook) -> None:
    await login(client)
    text = await page(client, "/ui/dead-letters")
    assert "No dead letters." in text and 'data-replay="all"' not in text
    hook.status = 400
    event_id = await post_event(client, youtube_failed())
    await settled(client, event_id, {"archive": "sent", "hook": "dead"})
    text = await page(client, "/ui/dead-letters")
    assert_escaped(text)
    assert 'data-replay="all"' in text and "Replay all (1)" in text
    assert "HTTP 400" in text and f'href="/ui/events/{event_id}"' in text


async def test_route_tester_page_lists_samples_and_prefills_a_stored_event(
    client: Client,
) -> None:
    await login(client)
    text = await page(client, "/ui/route-test")
    assert '<option value="run_finished_failed">' in text
    assert 'id="event-json"' in text
    event_id = await post_event(client, youtube_failed())
    text = await page(client, f"/ui/route-test?event={event_id}")
    assert_escaped(text, json.dumps(HOSTILE_TITLE, ensure_ascii=False))
    assert "&#34;flag&#34;: &#34;RUN_FINISHED&#34;" in text


async def test_config_page(client: Client, write_config: Callable[[str], Path]) -> None:
    await login(client)
    relay = client.app[RELAY]
    text = await page(client, "/ui/config")
    assert relay.live.current.loaded.sha256 in text
    assert str(relay.live.current.loaded.path) in text
    assert "Succeeded" in text and "**********" in text
    for name in ("archive", "hook", "failures", "Shorts cutter"):
        assert name in text
    path = relay.live.current.loaded.path
    write_config(path.read_text().replace("to: [hook]", "to: [<b>hoook</b>]"))
    assert relay.reloader is not None
    await relay.reloader.reload("test")
    text = await page(client, "/ui/config")
    assert "Failed — the previous config keeps serving" in text
    assert re.search(r"relay\.yaml:\d+: routes\[1\]\.to", text)
    assert "&lt;b&gt;hoook&lt;/b&gt;" in text and "<b>hoook" not in text


async def test_pages_with_a_store_without_inspection(
    make_app: Callable[..., web.Application],
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
) -> None:
    client = await aiohttp_client(make_app(store=PlainStore(tmp_path / "plain.db")))
    await login(client)
    text = await page(client, "/ui/events")
    assert "not available with this store" in text
    assert 'data-count="received">–<' in text.replace("\n", "").replace(" ", "")
    for path in ("/ui/dead-letters", "/ui/route-test", "/ui/config"):
        await page(client, path)


async def test_config_page_lists_rejected_webhooks_escaped_and_without_the_secret(
    client: Client,
) -> None:
    await login(client)
    assert "None since the relay started" in await page(client, "/ui/config")
    wrong = {"X-Mosaic-Signature": "a-wrong-secret-value"}
    assert (await client.post("/webhooks/mosaic", json=sample("test"), headers=wrong)).status == 401
    text = await page(client, "/ui/config")
    assert "bad signature" in text and "401" in text and "127.0.0.1" in text
    assert "a-wrong-secret-value" not in text
    api = await client.get("/api/config", headers=bearer())
    (rejection,) = (await api.json())["rejected_webhooks"]
    assert (rejection["status"], rejection["reason"]) == (401, "bad signature")


async def test_config_page_and_api_show_the_last_reconcile(
    client: Client, write_config: Callable[[str], Path]
) -> None:
    await login(client)
    relay = client.app[RELAY]
    assert (await get(client, "/api/config"))["reconcile"] == {"state": "off"}
    assert "<dt>Reconcile</dt><dd>off</dd>" in await page(client, "/ui/config")

    path = relay.live.current.loaded.path
    mosaic = "mosaic:\n  api_key: mk_test_key_0123456789\n  api_url: http://127.0.0.1:9\n"
    write_config(path.read_text() + mosaic)
    assert (await relay.reloader.reload("test"))["ok"]
    assert "no pass yet" in await page(client, "/ui/config")
    relay.reconciler.last = PassReport(time.time() - 180, "ok", listed=5, recovered=["r1"])

    shown = (await get(client, "/api/config"))["reconcile"]
    assert shown["state"] == "on" and shown["interval"] == 300 and shown["lookback"] == 86400
    assert shown["last_pass"]["recovered"] == 1 and shown["last_pass"]["result"] == "ok"
    assert shown["last_pass"]["ago"] >= 180
    assert re.search(r"last reconcile: 3m \d\ds ago, 1 recovered", await page(client, "/ui/config"))
