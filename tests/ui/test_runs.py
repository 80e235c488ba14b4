"""``/ui/runs``, ``/ui/runs/{run_id}`` and ``/api/runs`` against the real app and store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from relay.app import RELAY
from relay.ui.pages import SECURITY_HEADERS
from relay.ui.timeline import message_link
from tests.conftest import sample, wait_until
from tests.ui.conftest import HOSTILE_TITLE, Client, Hook, bearer, login, post_event
from tests.ui.test_api import PlainStore, get
from tests.ui.test_pages import assert_escaped, page

RUN = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"
OTHER = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"
PROGRESS = [(2, 1, 0), (4, 1, 1), (7, 0, 1)]
"""(completed, in_progress, failed) of each RUN_PROGRESS the run gets."""
THUMB = "https://cdn.example.com/thumbs/out-1.jpg"


def run_events(run_id: str = RUN, title: str = HOSTILE_TITLE) -> list[dict[str, Any]]:
    """A YouTube run: started, three progress events (each with a changed node), finished
    failed with two outputs (one with a thumbnail, one with a ``javascript:`` URL)."""
    started = sample("run_started_youtube")
    started.update(
        run_id=run_id, node_status_counts={"completed": 0, "in_progress": 8, "failed": 0}
    )
    started["triggered_by"]["video_title"] = title
    events = [started]
    for i, (completed, running, failed) in enumerate(PROGRESS):
        progress = sample("run_progress")
        progress.update(
            run_id=run_id,
            node_status_counts={"completed": completed, "in_progress": running, "failed": failed},
        )
        progress["updated_nodes"][0].update(
            original_node_id=f"node-{i}", status="failed" if i == 1 else "completed", outputs=[]
        )
        events.append(progress)
    finished = sample("run_finished_failed")
    finished.update(
        run_id=run_id,
        agent_id=started["agent_id"],
        triggered_by=started["triggered_by"],
        node_status_counts={"completed": 7, "in_progress": 0, "failed": 1},
        outputs=[
            {
                "id": "out-1",
                "video_url": "https://cdn.example.com/out-1.mp4",
                "thumbnail_url": THUMB,
            },
            {
                "id": "out-2",
                "video_url": "javascript:alert(1)",
                "thumbnail_url": "data:image/png,x",
            },
        ],
    )
    events.append(finished)
    return events


async def post_run(client: Client, run_id: str = RUN) -> list[str]:
    return [await post_event(client, body) for body in run_events(run_id)]


async def settled_run(client: Client, run_id: str, delivery: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def done() -> bool:
        found.update(await get(client, f"/api/runs/{run_id}"))
        states = {d["delivery"] for e in found["events"] for d in e["deliveries"]}
        # Every delivery done: the health is "dead" as soon as one is, others may still run.
        return bool(found["run"]["delivery"] == delivery) and states <= {"sent", "dead"}

    await wait_until(done)
    return found


async def test_the_api_lists_a_run_with_its_numbers(client: Client, hook: Hook) -> None:
    hook.status = 400
    await post_run(client)
    await settled_run(client, RUN, "dead")
    listed = await get(client, "/api/runs")
    assert listed["next_before"] is None
    [run] = listed["runs"]
    assert run["run_id"] == RUN and run["agent_name"] == "Shorts cutter"
    assert (run["trigger"], run["title"], run["status"], run["ended"]) == (
        "youtube", HOSTILE_TITLE, "failed", True,
    )  # fmt: skip
    assert (run["events"], run["outputs"], run["delivery"]) == (5, 2, "dead")
    assert run["duration"] == run["ended_at"] - run["started_at"] >= 0


async def test_the_api_filters_and_pages(client: Client, hook: Hook) -> None:
    hook.status = 400
    await post_run(client)
    await post_event(client, {**sample("run_started_youtube"), "run_id": OTHER})
    await post_event(client, sample("test"))  # no run
    await settled_run(client, RUN, "dead")

    async def ids(query: str) -> list[str]:
        return [r["run_id"] for r in (await get(client, f"/api/runs?{query}"))["runs"]]

    assert await ids("") == [OTHER, RUN]
    assert await ids("status=failed") == [RUN]
    assert await ids("status=running") == [OTHER]
    assert await ids("delivery=dead") == [RUN]
    assert await ids("agent=Shorts+cutter&trigger=youtube") == [OTHER, RUN]
    assert await ids("agent=someone-else") == []
    first = await get(client, "/api/runs?limit=1")
    assert [r["run_id"] for r in first["runs"]] == [OTHER]
    rest = await get(client, "/api/runs?" + f"limit=1&before={first['next_before']}")
    assert [r["run_id"] for r in rest["runs"]] == [RUN]
    await get(client, "/api/runs?delivery=nope", status=400)
    await get(client, "/api/runs?before=" + "x" * 700, status=400)


async def test_the_api_gives_a_runs_timeline(client: Client, hook: Hook) -> None:
    hook.status = 400
    ids = await post_run(client)
    detail = await settled_run(client, RUN, "dead")
    assert [e["event_id"] for e in detail["events"]] == ids
    assert [e["flag"] for e in detail["events"]] == [
        "RUN_STARTED", "RUN_PROGRESS", "RUN_PROGRESS", "RUN_PROGRESS", "RUN_FINISHED",
    ]  # fmt: skip
    assert [p["completed"] for p in detail["progress"]] == [0, 2, 4, 7, 7]
    assert [p["total"] for p in detail["progress"]] == [8, 3, 6, 8, 8]
    assert detail["events"][2]["updated_nodes"] == [{"id": "node-1", "status": "failed"}]
    outputs = {o["id"]: o for o in detail["outputs"]}
    assert outputs["out-1"]["thumbnail_url"] == THUMB
    assert outputs["out-2"]["video_url"] is None and outputs["out-2"]["thumbnail_url"] is None
    finished = detail["events"][-1]
    assert {d["channel"]: d["delivery"] for d in finished["deliveries"]} == {
        "archive": "sent", "hook": "dead",
    }  # fmt: skip
    assert [a["outcome"] for a in finished["deliveries"][1]["log"]][-1] == "dead"
    await get(client, "/api/runs/nope", status=404)


async def test_the_api_needs_the_admin(client: Client) -> None:
    for path in ("/api/runs", f"/api/runs/{RUN}"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers=bearer("wrong"))).status == 401


async def test_runs_page_rows_filters_and_hostile_title(client: Client, hook: Hook) -> None:
    await login(client)
    hook.status = 400
    await post_run(client)
    await settled_run(client, RUN, "dead")
    text = await page(client, "/ui/runs?status=failed")
    row = text[text.index(f'data-run-id="{RUN}"') :]
    row = row[: row.index("</tr>")]
    for fragment in ("Shorts cutter", "youtube", ">failed<", 'class="badge st-dead"', ">2<"):
        assert fragment in row
    assert f'href="/ui/runs/{RUN}"' in row
    assert_escaped(text)
    assert 'value="failed"' in text  # the filter stays in the form
    assert "No runs match these filters" in await page(client, "/ui/runs?status=cancelled")
    assert (await client.get("/ui/runs?delivery=nope")).status == 400


async def test_run_page_shows_the_timeline_chart_and_outputs(client: Client, hook: Hook) -> None:
    await login(client)
    hook.status = 400
    ids = await post_run(client)
    await settled_run(client, RUN, "dead")
    answer = await client.get(f"/ui/runs/{RUN}")
    text = await answer.text()
    assert answer.status == 200
    csp = answer.headers["Content-Security-Policy"]
    assert "img-src 'self' https: http:" in csp and "script-src 'self'" in csp
    assert [text.index(f'data-event-id="{i}"') for i in ids] == sorted(
        text.index(f'data-event-id="{i}"') for i in ids
    )
    assert text.count('<polyline class="line') == 3 and 'role="img"' in text
    for completed, running, failed in PROGRESS:
        assert f"{completed}/{completed + running + failed} completed" in text
    assert "<code>node-1</code>" in text
    assert f'<img src="{THUMB}"' in text and "javascript:" not in text and "data:image" not in text
    assert "hook: 1 attempt, dead" in text
    assert_escaped(text.replace(f'<img src="{THUMB}"', ""))
    assert "<script>" not in text
    assert (await client.get("/ui/runs/nope")).status == 404


async def test_other_pages_keep_their_image_policy(client: Client) -> None:
    await login(client)
    answer = await client.get("/ui/runs")
    assert answer.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert "img-src 'self';" in answer.headers["Content-Security-Policy"]


async def test_events_link_to_their_runs_timeline(client: Client) -> None:
    await login(client)
    await post_run(client)
    test = await post_event(client, sample("test"))
    text = await page(client, "/ui/events")
    assert f'href="/ui/runs/{RUN}"' in text
    row = text[text.index(f'data-event-id="{test}"') :]
    assert 'href="/ui/events?run_id=' in row[: row.index("</tr>")]
    assert 'href="/ui/runs" aria-current="page"' in await page(client, "/ui/runs")


async def test_a_stale_and_a_reconciled_event_are_marked(client: Client) -> None:
    await login(client)
    await post_event(client, {**sample("run_started_youtube"), "run_id": RUN})
    state = client.app[RELAY]
    stale = {**sample("run_progress"), "run_id": RUN, "flag": "RUN_STALE", "updated_nodes": []}
    await state.receiver.ingest.built(stale, "watch", silent_for=7200)
    await state.receiver.ingest.built(
        {**sample("run_finished_failed"), "run_id": RUN}, "reconciled"
    )
    text = await page(client, f"/ui/runs/{RUN}")
    assert "stale · silent 2h 00m" in text
    assert ">reconciled</span>" in text
    assert "src-reconciled" in text and "src-watch" in text


async def test_a_live_card_with_its_message_link(client: Client) -> None:
    await login(client)
    await post_event(client, {**sample("run_started_youtube"), "run_id": RUN})
    store = client.app[RELAY].store
    await store.put_ref(RUN, "archive", "C0123ABC", "1700000000.000100")
    await store.put_card_state(RUN, "archive", '{"rank":[0,3,2],"last_edit":1700000000.0}')
    detail = await get(client, f"/api/runs/{RUN}")
    [card] = detail["cards"]
    assert card["shows"] == {"ended": False, "finished_nodes": 3, "completed_nodes": 2}
    assert card["link"] is None  # a file channel has no message address
    text = await page(client, f"/ui/runs/{RUN}")
    assert "message <code>1700000000.000100</code>" in text


@pytest.mark.parametrize(
    ("kind", "channel_id", "message_id", "link"),
    [
        (
            "slack",
            "C0123ABC",
            "1700000000.000100",
            "https://slack.com/archives/C0123ABC/p1700000000000100",
        ),
        ("slack", "C0123ABC", "nope", None),
        ("slack", "#video-alerts", "1700000000.000100", None),
        ("telegram", "-1001234567890", "42", "https://t.me/c/1234567890/42"),
        ("telegram", "-1001234567890", "42:photo", "https://t.me/c/1234567890/42"),
        ("telegram", "-4001234", "42", None),  # a basic group: no link
        ("telegram", "12345", "42", None),  # a private chat
        ("email", "a@example.com", "<x@y>", None),
        (None, "C1", "1.2", None),
    ],
)
def test_message_links(
    kind: str | None, channel_id: str, message_id: str, link: str | None
) -> None:
    assert message_link(kind, channel_id, message_id) == link


async def test_runs_with_a_store_without_inspection(
    make_app: Callable[..., web.Application],
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
) -> None:
    client = await aiohttp_client(make_app(store=PlainStore(tmp_path / "plain.db")))
    await login(client)
    assert "not available with this store" in await page(client, "/ui/runs")
    assert (await client.get(f"/ui/runs/{RUN}")).status == 501
    assert (await client.get("/api/runs", headers=bearer())).status == 501


async def test_a_card_route_shows_the_card_text_as_it_stands(
    write_config: Callable[[str], Path],
    hook: Hook,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    from relay.app import build_app
    from relay.config import load_config
    from tests.ui.conftest import ui_config

    text = ui_config(hook.url).replace(
        "  - name: all\n    to: [archive]\n", "  - name: all\n    to: [archive]\n    mode: card\n"
    )
    client = await aiohttp_client(build_app(load_config(write_config(text), env={})))
    started = sample("run_started_youtube")
    await post_event(client, started)

    shown: list[str] = []

    async def card_shown() -> bool:
        detail = await get(client, f"/api/runs/{started['run_id']}")
        shown[:] = [card["text"] for card in detail["cards"] if card["text"]]
        return bool(shown)

    await wait_until(card_shown)
    assert shown[0].startswith("🚀 Started")
