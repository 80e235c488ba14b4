"""Every ``/api/`` endpoint against the real app, store, dispatcher and a local webhook target."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from relay.app import RELAY
from relay.dryrun import route_test, sample_bytes, sample_names
from relay.store import SQLiteStore
from tests.conftest import read_jsonl, sample, wait_until
from tests.ui.conftest import (
    HOSTILE_TITLE,
    Client,
    Hook,
    assert_no_secret,
    bearer,
    post_event,
)

RUN_FAILED = "c2d9e8f7-6a5b-4c3d-2e1f-0a9b8c7d6e5f"


async def get(client: Client, path: str, status: int = 200) -> Any:
    answer = await client.get(path, headers=bearer())
    text = await answer.text()
    assert answer.status == status, text
    assert_no_secret(text)
    return json.loads(text)


async def post(client: Client, path: str, body: bytes = b"", status: int = 200) -> Any:
    answer = await client.post(path, data=body, headers=bearer())
    text = await answer.text()
    assert answer.status == status, text
    return json.loads(text)


async def deliveries_of(client: Client, event_id: str) -> dict[str, str]:
    detail = await get(client, f"/api/events/{event_id}")
    return {d["channel"]: d["delivery"] for d in detail["deliveries"]}


def youtube(title: str = HOSTILE_TITLE) -> dict[str, Any]:
    body = sample("run_finished_completed_youtube")
    body["triggered_by"]["video_title"] = title
    return body


async def test_counts(client: Client, hook: Hook) -> None:
    assert await get(client, "/api/counts") == {
        "received": 0,
        "sent": 0,
        "pending": 0,
        "retrying": 0,
        "dead": 0,
    }
    hook.status = 400
    await post_event(client, sample("run_finished_failed"))  # archive + hook
    await post_event(client, sample("run_started_youtube"))  # archive

    async def settled() -> bool:
        counts = await get(client, "/api/counts")
        return bool(counts["sent"] == 2 and counts["dead"] == 1)

    await wait_until(settled)
    assert await get(client, "/api/counts") == {
        "received": 2,
        "sent": 2,
        "pending": 0,
        "retrying": 0,
        "dead": 1,
    }


async def test_events_newest_first_with_delivery_state_per_channel(
    client: Client, hook: Hook
) -> None:
    hook.status = 400
    failed = await post_event(client, sample("run_finished_failed"))
    started = await post_event(client, sample("run_started_youtube"))
    await wait_until(lambda: _delivered(client, failed, {"archive": "sent", "hook": "dead"}))

    body = await get(client, "/api/events")
    events = body["events"]
    assert [e["event_id"] for e in events] == [started, failed]
    assert body["next_before"] is None
    newest = events[0]
    assert newest["flag"] == "RUN_STARTED" and newest["status"] == "running"
    assert newest["agent_name"] == "Shorts cutter"
    assert newest["trigger"] == "youtube" and newest["title"] == "Never Gonna Give You Up"
    older = events[1]
    assert older["run_id"] == RUN_FAILED and older["trigger"] == "none"
    assert {d["channel"]: d["delivery"] for d in older["deliveries"]} == {
        "archive": "sent",
        "hook": "dead",
    }
    dead = next(d for d in older["deliveries"] if d["channel"] == "hook")
    assert dead["route"] == "failures" and dead["last_error"].startswith("HTTP 400")


async def _delivered(client: Client, event_id: str, expected: dict[str, str]) -> bool:
    return await deliveries_of(client, event_id) == expected


async def test_event_filters(client: Client) -> None:
    ids = {}
    for name in ("run_started_youtube", "run_progress", "run_finished_failed", "test"):
        ids[name] = await post_event(client, sample(name))

    async def listed(query: str) -> list[str]:
        events = (await get(client, "/api/events?" + query))["events"]
        return sorted(
            name for name, event_id in ids.items() for e in events if e["event_id"] == event_id
        )

    assert await listed("flag=RUN_PROGRESS") == ["run_progress"]
    assert await listed("status=failed") == ["run_finished_failed"]
    assert await listed("run_id=" + RUN_FAILED) == ["run_finished_failed"]
    assert await listed("agent=Shorts+cutter") == ["run_progress", "run_started_youtube", "test"]
    assert await listed("agent=123e4567-e89b-12d3-a456-789012345678&flag=TEST") == ["test"]
    assert await listed("flag=&status=&agent=") == sorted(ids)
    assert await listed("flag=NOPE") == []
    await wait_until(lambda: _all_sent(client))
    assert await listed("delivery=sent") == sorted(ids)
    assert await listed("delivery=dead") == []


async def _all_sent(client: Client) -> bool:
    counts = await get(client, "/api/counts")
    return bool(counts["sent"] > 0 and counts["pending"] == counts["retrying"] == 0)


async def test_events_page_through_with_next_before(client: Client) -> None:
    posted = []
    for n in range(5):
        posted.append(await post_event(client, {**sample("run_progress"), "n": n}))
    first = await get(client, "/api/events?limit=2")
    assert [e["event_id"] for e in first["events"]] == posted[:-3:-1]
    second = await get(client, f"/api/events?limit=2&before={first['next_before']}")
    assert [e["event_id"] for e in second["events"]] == posted[2:0:-1]
    third = await get(client, f"/api/events?limit=2&before={second['next_before']}")
    assert [e["event_id"] for e in third["events"]] == posted[:1]
    assert third["next_before"] is None


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=x", "before=-1", "before=abc", "delivery=lost"]
)
async def test_bad_list_parameters_are_400(client: Client, query: str) -> None:
    body = await get(client, "/api/events?" + query, status=400)
    assert body["error"]


async def test_event_detail_has_payload_routes_attempts_and_the_message_as_sent(
    client: Client, hook: Hook, tmp_path: Path
) -> None:
    hook.status = 503
    event_id = await post_event(client, sample("run_finished_failed"))
    await wait_until(lambda: _delivered(client, event_id, {"archive": "sent", "hook": "dead"}))

    detail = await get(client, f"/api/events/{event_id}")
    assert detail["payload"] == sample("run_finished_failed")
    assert detail["routes"] == ["all", "failures"]
    by_channel = {d["channel"]: d for d in detail["deliveries"]}
    archive, dead = by_channel["archive"], by_channel["hook"]

    (sent,) = archive["log"]
    assert sent["outcome"] == "sent" and sent["error"] is None
    line = read_jsonl(tmp_path / "deliveries.jsonl")[0]
    assert sent["rendered"] == line["text"] and "Failed" in sent["rendered"]

    # max_attempts 3: two counted retries, then dead with the reason.
    outcomes = [(a["outcome"], a["error"]) for a in dead["log"]]
    assert [o for o, _ in outcomes] == ["retry", "retry", "dead"]
    reason = "HTTP 503: webhook host 127.0.0.1 Service Unavailable"
    assert outcomes[0][1] == outcomes[1][1] == reason
    assert outcomes[2][1] == f"gave up after 3 attempts: {reason}"
    assert dead["last_error"] == outcomes[2][1]
    times = [a["at"] for a in dead["log"]]
    assert times == sorted(times) and dead["finished_at"] >= times[-1] - 1
    assert len(hook.bodies) == 3
    assert dead["attempts"] == 3  # as many as were made, the last one included

    deliveries = await get(client, f"/api/events/{event_id}/deliveries")
    assert deliveries == {"deliveries": detail["deliveries"]}


async def test_unknown_event_is_404(client: Client) -> None:
    assert (await get(client, "/api/events/nope", status=404))["error"]
    assert (await get(client, "/api/events/nope/deliveries", status=404))["error"]


async def test_dead_letters_and_replay_one_until_sent(client: Client, hook: Hook) -> None:
    hook.status = 400
    event_id = await post_event(client, youtube_failed())
    await wait_until(lambda: _delivered(client, event_id, {"archive": "sent", "hook": "dead"}))

    (letter,) = (await get(client, "/api/dead-letters"))["dead_letters"]
    assert letter["event_id"] == event_id and letter["channel"] == "hook"
    assert letter["route"] == "failures" and letter["reason"].startswith("HTTP 400")
    assert letter["flag"] == "RUN_FINISHED" and letter["status"] == "failed"
    assert letter["title"] == HOSTILE_TITLE
    assert letter["age_seconds"] >= 0 and letter["attempts"] == 1  # the refused try counts
    (hook_delivery,) = [
        d
        for d in (await get(client, f"/api/events/{event_id}"))["deliveries"]
        if d["channel"] == "hook"
    ]
    assert hook_delivery["attempts"] == len(hook_delivery["log"]) == 1

    hook.status = 200
    assert await post(client, f"/api/dead-letters/{letter['job_id']}/replay") == {"replayed": 1}
    await wait_until(lambda: _delivered(client, event_id, {"archive": "sent", "hook": "sent"}))
    assert (await get(client, "/api/dead-letters"))["dead_letters"] == []
    log = (await get(client, f"/api/events/{event_id}"))["deliveries"][1]["log"]
    assert [a["outcome"] for a in log] == ["dead", "replayed", "sent"]
    assert log[-1]["rendered"] == hook.bodies[-1]["text"]

    again = await client.post(f"/api/dead-letters/{letter['job_id']}/replay", headers=bearer())
    assert again.status == 404


def youtube_failed() -> dict[str, Any]:
    body = youtube()
    body["status"] = "failed"
    return body


async def test_replay_all(client: Client, hook: Hook) -> None:
    hook.status = 400
    first = await post_event(client, sample("run_finished_failed"))
    second = await post_event(client, youtube_failed())

    async def dead_count() -> int:
        return len((await get(client, "/api/dead-letters"))["dead_letters"])

    await wait_until(lambda: _equals(dead_count(), 2))
    hook.status = 200
    assert await post(client, "/api/dead-letters/replay") == {"replayed": 2}
    for event_id in (first, second):
        await wait_until(
            lambda e=event_id: _delivered(client, e, {"archive": "sent", "hook": "sent"})
        )
    assert await post(client, "/api/dead-letters/replay") == {"replayed": 0}


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_unknown_dead_letter_is_404(client: Client) -> None:
    for job_id in ("999", "abc", "9" * 23, str(2**63)):
        answer = await client.post(f"/api/dead-letters/{job_id}/replay", headers=bearer())
        assert answer.status == 404
        assert (await answer.json())["error"]


async def test_route_test_is_the_cli_code_path_and_sends_nothing(
    client: Client, hook: Hook, tmp_path: Path
) -> None:
    raw = sample_bytes("run_finished_failed")
    result = await post(client, "/api/route-test", raw)
    assert result == route_test(client.app[RELAY].live.current, raw)
    assert [(d["route"], d["channel"], d["type"]) for d in result["deliveries"]] == [
        ("all", "archive", "file"),
        ("failures", "hook", "webhook"),
    ]
    assert "Failed" in result["deliveries"][0]["text"]
    assert hook.bodies == []
    assert read_jsonl(tmp_path / "deliveries.jsonl") == []
    assert (await get(client, "/api/counts"))["received"] == 0


async def test_route_test_keeps_hostile_text_as_data(client: Client) -> None:
    result = await post(client, "/api/route-test", json.dumps(youtube()).encode())
    (archive,) = result["deliveries"]
    assert HOSTILE_TITLE in archive["text"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a Mosaic event"),
        (b'{"flag": "RUN_STARTED"}', "not a Mosaic event"),
        (b"", "not valid JSON"),
    ],
)
async def test_route_test_refuses_what_is_not_an_event(
    client: Client, body: bytes, fragment: str
) -> None:
    answer = await post(client, "/api/route-test", body, status=400)
    assert fragment in answer["error"]


async def test_route_test_of_a_test_event_reaches_only_test_routes(client: Client) -> None:
    deliveries = (await post(client, "/api/route-test", sample_bytes("test")))["deliveries"]
    assert [d["route"] for d in deliveries] == ["tests"]


async def test_samples(client: Client) -> None:
    assert (await get(client, "/api/samples")) == {"samples": sample_names()}
    assert await get(client, "/api/samples/run_progress") == sample("run_progress")
    for name in ("nope", "..%2Fcli", "%2E%2E"):
        answer = await client.get(f"/api/samples/{name}", headers=bearer())
        assert answer.status == 404


async def test_config_shows_the_running_config_with_secrets_masked(client: Client) -> None:
    config = await get(client, "/api/config")
    loaded = client.app[RELAY].live.current.loaded
    assert config["path"] == str(loaded.path)
    assert config["sha256"] == loaded.sha256
    assert config["loaded_at"] and config["last_reload"]["ok"] is True
    assert config["channels"]["archive"] == {
        "type": "file",
        "path": "deliveries.jsonl",
        "fsync": False,
    }
    hook_settings = config["channels"]["hook"]
    assert hook_settings["url"] == "**********"
    assert hook_settings["secret"] == "**********"
    assert hook_settings["headers"] == {"Authorization": "**********"}
    assert [r["name"] for r in config["routes"]] == ["all", "failures", "tests"]
    assert config["routes"][1]["match"] == {"status": ["failed"]}
    assert config["agents"] == {"123e4567-e89b-12d3-a456-789012345678": "Shorts cutter"}


async def test_config_shows_a_failed_reload_with_its_lines(
    client: Client, write_config: Callable[[str], Path]
) -> None:
    path = client.app[RELAY].live.current.loaded.path
    good = path.read_text()
    write_config(good.replace("to: [hook]", "to: [hoook]"))
    await client.app[RELAY].reloader.reload("test")
    reload = (await get(client, "/api/config"))["last_reload"]
    assert reload["ok"] is False and reload["trigger"] == "test"
    (line,) = reload["errors"]
    assert line.startswith("relay.yaml:") and "unknown channel 'hoook'" in line


def test_masking_urls() -> None:
    from relay.ui.present import mask_url

    assert mask_url("redis://:hunter2@127.0.0.1:6379/0") == "redis://**********@127.0.0.1:6379/0"
    assert mask_url("https://user:pw@host/x?y=1") == "https://**********@host/x?y=1"
    assert mask_url("sqlite:///relay.db") == "sqlite:///relay.db"


async def test_a_store_without_inspection_answers_501_and_keeps_the_rest(
    make_app: Callable[..., web.Application],
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
) -> None:
    client = await aiohttp_client(make_app(store=PlainStore(tmp_path / "plain.db")))
    for path in ("/api/events", "/api/events/x", "/api/events/x/deliveries"):
        body = await get(client, path, status=501)
        assert body["error"] == "not available with this store"
    await post_event(client, sample("run_started_youtube"))

    async def sent() -> bool:
        return bool((await get(client, "/api/counts"))["sent"] == 1)

    await wait_until(sent)
    counts = await get(client, "/api/counts")
    assert counts == {"received": None, "sent": 1, "pending": 0, "retrying": None, "dead": 0}
    assert (await get(client, "/api/dead-letters")) == {"dead_letters": []}
    assert (await post(client, "/api/dead-letters/replay")) == {"replayed": 0}
    assert (await post(client, "/api/route-test", sample_bytes("test")))["deliveries"]


class PlainStore:
    """A ``Store`` without the inspection methods (like a backend that lacks them)."""

    def __init__(self, path: Path) -> None:
        self._inner = SQLiteStore(path, sync="normal")

    def __getattr__(self, name: str) -> Any:
        if name in ("list_events", "get_event", "counts"):
            raise AttributeError(name)
        return getattr(self._inner, name)


async def test_a_card_job_keeps_the_text_it_showed_a_skipped_one_none(
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
    event_id = await post_event(client, sample("run_started_youtube"))
    await wait_until(lambda: _delivered(client, event_id, {"archive": "sent"}))
    (delivery,) = (await get(client, f"/api/events/{event_id}"))["deliveries"]
    assert delivery["mode"] == "card"
    [(outcome, rendered)] = [(a["outcome"], a["rendered"]) for a in delivery["log"]]
    assert outcome == "sent" and rendered.startswith("🚀 Started")
    again = await post_event(client, {**sample("run_started_youtube"), "seq": 2})
    await wait_until(lambda: _delivered(client, again, {"archive": "sent"}))
    (delivery,) = (await get(client, f"/api/events/{again}"))["deliveries"]
    assert delivery["log"][-1]["outcome"] == "sent"  # after a wait for the card's interval
    assert [a["rendered"] for a in delivery["log"]] == [None] * len(delivery["log"])
