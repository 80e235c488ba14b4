"""The overview page (``/ui/``) and ``/api/stats``: the numbers of the events posted, as charts
with tables and as JSON; hostile names as text; the same doors as every UI page."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from relay.receiver import SIGNATURE_HEADER
from relay.ui.pages import SECURITY_HEADERS
from tests.conftest import SECRET, sample, wait_until
from tests.ui.conftest import (
    HOSTILE_TITLE,
    Client,
    Hook,
    assert_no_secret,
    bearer,
    login,
    post_event,
)
from tests.ui.test_api import PlainStore, get

SHORTS = "123e4567-e89b-12d3-a456-789012345678"
"""``Shorts cutter`` in the test config's ``agents:``."""
OTHER_AGENT = "0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b"
HOSTILE_AGENT = HOSTILE_TITLE
EXPECTED_EVENTS = {"started": 1, "progress": 1, "finished": 5, "other": 0}
EXPECTED_DELIVERIES = {"sent": 7, "retried": 0, "dead": 2}
EXPECTED_REJECTED = {"401 bad signature": 2, "401 missing signature": 1, "400 invalid JSON": 1}
EXPECTED_AGENTS = {
    # agent shown: (finished, failed, partial_complete)
    "Shorts cutter": (2, 0, 0),
    OTHER_AGENT: (2, 1, 1),
    HOSTILE_AGENT: (1, 1, 0),
}


async def post_known_events(client: Client, hook: Hook) -> None:
    """Post the events the ``EXPECTED_*`` numbers count (the webhook channel refuses the two
    failed runs' deliveries: dead letters), and some webhooks the relay rejects."""
    hook.status = 400
    for name in (
        "run_started_youtube",
        "run_progress",
        "run_finished_completed_youtube",
        "run_finished_failed",
        "run_finished_partial_schedule",
        "run_cancelled_manual",
    ):
        await post_event(client, sample(name))
    hostile = {**sample("run_finished_failed"), "run_id": "hostile-run", "agent_id": HOSTILE_AGENT}
    await post_event(client, hostile)
    body = json.dumps(sample("run_progress"))
    for headers in ({SIGNATURE_HEADER: "wrong"}, {SIGNATURE_HEADER: "wrong"}, {}):
        assert (await client.post("/webhooks/mosaic", data=body, headers=headers)).status == 401
    answer = await client.post("/webhooks/mosaic", data="{", headers={SIGNATURE_HEADER: SECRET})
    assert answer.status == 400

    async def delivered() -> bool:
        counts = await get(client, "/api/counts")
        return bool(counts["sent"] == 7 and counts["dead"] == 2)

    await wait_until(delivered)


def totals(series: dict[str, list[int]]) -> dict[str, int]:
    return {key: sum(values) for key, values in series.items()}


async def stats(client: Client) -> dict[str, Any]:
    answer = await client.get("/api/stats", headers=bearer())
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    text = await answer.text()
    assert_no_secret(text)
    data: dict[str, Any] = json.loads(text)
    return data


async def test_stats_api_counts_the_events_posted(client: Client, hook: Hook) -> None:
    await post_known_events(client, hook)
    data = await stats(client)
    assert data["store_stats"] is True and data["latency_precision"] == 0.09
    for period, buckets in (("24h", 24), ("30d", 30)):
        entry = data["periods"][period]
        assert len(entry["starts"]) == buckets
        assert totals(entry["events"]) == EXPECTED_EVENTS
        assert totals(entry["deliveries"]) == EXPECTED_DELIVERIES
        # everything happened just now: in the last bucket
        assert {k: v[-1] for k, v in entry["events"].items()} == EXPECTED_EVENTS
        agents = {a["agent"]: (a["finished"], a["failed"], a["partial_complete"])
                  for a in entry["agents"]}  # fmt: skip
        assert agents == EXPECTED_AGENTS
        rates = {a["agent"]: a["failure_rate"] for a in entry["agents"]}
        assert rates == {"Shorts cutter": 0.0, OTHER_AGENT: 1.0, HOSTILE_AGENT: 1.0}
        (latency,) = entry["latency"]
        assert latency["channel"] == "archive" and latency["sent"] == 7
        assert 0 < latency["p50_seconds"] <= latency["p95_seconds"]
        assert {r["reason"]: r["count"] for r in entry["rejected"]} == EXPECTED_REJECTED
    assert data["dead_letters"] == [{"channel": "hook", "count": 2}]


async def test_stats_api_needs_the_admin(client: Client) -> None:
    assert (await client.get("/api/stats")).status == 401
    bad = await client.get("/api/stats", headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    await login(client)  # the session cookie is enough for a GET
    assert (await client.get("/api/stats")).status == 200


async def test_overview_page_shows_charts_with_tables(client: Client, hook: Hook) -> None:
    await post_known_events(client, hook)
    await login(client)
    answer = await client.get("/ui/")
    assert answer.status == 200
    for header, value in SECURITY_HEADERS.items():
        assert answer.headers[header] == value  # the CSP is unchanged
    text = await answer.text()
    assert_no_secret(text)
    assert '<a href="/ui/" aria-current="page">Overview</a>' in text
    assert "style=" not in text and "<script>" not in text
    # 2 periods × (events, deliveries, agents, latency, rejected) + dead letters
    assert text.count('role="img"') == 11
    assert text.count("<table") == 11
    # hostile agent ids are text, in the chart and in its table
    assert "<img" not in text and HOSTILE_TITLE not in text
    assert "&lt;img src=x onerror=" in text
    events = re.search(r'<figure class="chart-box" id="events-24h">(.*?)</figure>', text, re.S)
    assert events
    assert 'data-total="7"' in events.group(1)  # the 7 events of this hour, in its bar
    last_row = re.findall(r"<tr>(.*?)</tr>", events.group(1), re.S)[-1]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", last_row)[1:] == ["1", "1", "5", "0", "7"]
    dead = re.search(r'id="dead-letters">(.*?)</figure>', text, re.S)
    assert dead and '<td data-label="channel">hook</td><td data-label="count">2</td>' in dead.group(
        1
    )


async def test_overview_with_a_store_without_aggregates(
    make_app: Callable[..., web.Application],
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
) -> None:
    client = await aiohttp_client(make_app(store=PlainStore(tmp_path / "plain.db")))
    assert (await client.post("/webhooks/mosaic", data="{}")).status == 401
    data = await stats(client)
    assert data["store_stats"] is False and data["dead_letters"] is None
    assert "events" not in data["periods"]["24h"]
    assert data["periods"]["30d"]["rejected"] == [{"reason": "401 missing signature", "count": 1}]
    await login(client)
    text = await (await client.get("/ui/")).text()
    assert "not available with this store" in text
    assert text.count('role="img"') == 2  # the rejected webhooks of each period
