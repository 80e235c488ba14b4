"""Digests and quiet hours end to end: webhooks in, held in the store, one message per window
out, on a fake clock (``build_app(clock=...)``) and real files as channels."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, Relay, build_app
from relay.config import load_config
from relay.digest.flusher import SETTLE
from relay.digest.groups import digest_group, flush_key
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import SECRET, read_jsonl, sample, wait_until
from tests.fakes.clock import FakeClock

Client = TestClient[Any, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
BERLIN = ZoneInfo("Europe/Berlin")

DIGEST_CONFIG = f"""\
auth: {{secrets: ["{SECRET}"]}}
store: {{url: sqlite:///relay.db, sync: normal}}
delivery: {{backoff: {{initial: 10ms, max: 20ms}}, shutdown_grace: 1s}}
channels:
  team: {{type: file, path: team.jsonl}}
  archive: {{type: file, path: archive.jsonl}}
routes:
  - name: daily-youtube
    match: {{flag: RUN_FINISHED, trigger: youtube}}
    to: [team, archive]
    mode: digest
    digest: {{schedule: "0 9 * * *", timezone: Europe/Berlin}}
"""

QUIET_CONFIG = f"""\
auth: {{secrets: ["{SECRET}"]}}
store: {{url: sqlite:///relay.db, sync: normal}}
delivery: {{backoff: {{initial: 10ms, max: 20ms}}, shutdown_grace: 1s}}
channels:
  night:
    type: file
    path: night.jsonl
    quiet_hours:
      from: "22:00"
      to: "08:00"
      timezone: Europe/Berlin
      except: {{status: [failed]}}
routes:
  - to: [night]
"""


def berlin(*parts: int) -> float:
    return datetime(*parts, tzinfo=BERLIN).timestamp()  # type: ignore[misc]


def finished(run: str, title: str, status: str = "completed") -> dict[str, Any]:
    body = sample("run_finished_completed_youtube")
    body["run_id"] = run
    body["status"] = status
    body["triggered_by"]["video_title"] = title
    return body


async def post(client: Client, body: dict[str, Any]) -> None:
    answer = await client.post(
        "/webhooks/mosaic", data=json.dumps(body), headers={SIGNATURE_HEADER: SECRET}
    )
    assert answer.status == 202, await answer.text()


async def start(aiohttp_client: MakeClient, config: Path, clock: FakeClock) -> tuple[Client, Relay]:
    app = build_app(load_config(config, env={}), clock=clock, check_channels=False)
    client = await aiohttp_client(app)
    return client, app[RELAY]


async def held(relay: Relay) -> dict[str, int]:
    return {group.channel: group.count for group in await relay.store.held_groups()}


async def test_a_day_of_events_is_one_digest_per_window_per_channel(
    aiohttp_client: MakeClient, write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    clock = FakeClock(berlin(2026, 11, 29, 9, 0, 30))
    client, relay = await start(aiohttp_client, write_config(DIGEST_CONFIG), clock)
    titles = [f"Video <b>{n}</b> *bold* @everyone" for n in range(6)]
    for n, title in enumerate(titles):
        await post(client, finished(f"run-{n}", title))
        clock.advance(3 * 3600)  # the last at 2026-11-30 00:00; the window ends at 09:00
    await post(client, sample("run_started_youtube"))  # not matched: never held
    assert await held(relay) == {"team": 6, "archive": 6}
    metrics = await (await client.get("/metrics")).text()
    assert 'relay_held_events{channel="team",kind="digest"} 6.0' in metrics
    fire = berlin(2026, 11, 30, 9, 0)
    assert await relay.flusher.run_once(clock.now()) == fire + SETTLE
    assert read_jsonl(tmp_path / "team.jsonl") == []

    clock.advance_to(fire + SETTLE)
    for name in ("team", "archive"):
        await wait_until(lambda name=name: len(read_jsonl(tmp_path / f"{name}.jsonl")) == 1)
    [message] = read_jsonl(tmp_path / "team.jsonl")
    assert message["flag"] == "DIGEST"
    assert message["route"] == "daily-youtube"
    text = message["text"]
    assert text.startswith("📋 daily-youtube: 6 runs")
    assert "Sun 29 Nov 09:00 – Mon 30 Nov 09:00 CET" in text
    assert "✅ Finished: 6" in text
    for title in titles:
        assert text.count(title) == 1  # plain text: the title exactly as sent
    assert text.index(titles[5]) < text.index(titles[0])  # newest first
    assert await held(relay) == {}
    metrics = await (await client.get("/metrics")).text()
    assert 'relay_digests_total{kind="digest",late="no"} 2.0' in metrics
    assert "relay_held_events{" not in metrics

    # The next window starts empty and gets only what comes after.
    await post(client, finished("run-late", "Tomorrow's video"))
    clock.advance_to(berlin(2026, 12, 1, 9, 0) + SETTLE)
    await wait_until(lambda: len(read_jsonl(tmp_path / "team.jsonl")) == 2)
    second = read_jsonl(tmp_path / "team.jsonl")[1]["text"]
    assert second.startswith("📋 daily-youtube: 1 run\n")
    assert "Tomorrow's video" in second and "Video" not in second
    assert len(read_jsonl(tmp_path / "archive.jsonl")) == 2


async def test_exactly_once_across_a_restart_in_the_middle_of_a_window(
    aiohttp_client: MakeClient, write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    config = write_config(DIGEST_CONFIG)
    clock = FakeClock(berlin(2026, 11, 30, 10, 0))
    client, relay = await start(aiohttp_client, config, clock)
    for n in range(3):
        await post(client, finished(f"before-{n}", f"Before restart {n}"))
    await client.close()

    clock.advance(6 * 3600)
    client, relay = await start(aiohttp_client, config, clock)
    for n in range(2):
        await post(client, finished(f"after-{n}", f"After restart {n}"))
    fire = berlin(2026, 12, 1, 9, 0)
    # A flush that was cut short after taking the team's events: the next one finishes it.
    group = digest_group("daily-youtube", "team")
    taken = await relay.store.take_held(group, before=fire, key=flush_key(group, fire))
    assert len(taken) == 5

    clock.advance_to(fire + SETTLE)
    for name in ("team", "archive"):
        await wait_until(lambda name=name: len(read_jsonl(tmp_path / f"{name}.jsonl")) == 1)
        [message] = read_jsonl(tmp_path / f"{name}.jsonl")
        assert message["text"].startswith("📋 daily-youtube: 5 runs")
        for n in range(3):
            assert message["text"].count(f"Before restart {n}") == 1
    assert await relay.store.taken_keys() == []
    # Another round (or replica) finds nothing more to send.
    await relay.flusher.run_once(clock.now())
    assert len(read_jsonl(tmp_path / "team.jsonl")) == 1


async def test_a_window_missed_while_down_is_sent_once_when_back_marked_late(
    aiohttp_client: MakeClient, write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    config = write_config(DIGEST_CONFIG)
    clock = FakeClock(berlin(2026, 11, 30, 10, 0))
    client, _ = await start(aiohttp_client, config, clock)
    await post(client, finished("run-1", "Held over the outage"))
    await client.close()

    clock.advance_to(berlin(2026, 12, 1, 15, 0))  # down at 09:00
    client, relay = await start(aiohttp_client, config, clock)
    await wait_until(lambda: len(read_jsonl(tmp_path / "team.jsonl")) == 1)
    text = read_jsonl(tmp_path / "team.jsonl")[0]["text"]
    assert "Sent late: the relay was not running when this window ended." in text
    assert "Held over the outage" in text
    await relay.flusher.run_once(clock.now())
    assert len(read_jsonl(tmp_path / "team.jsonl")) == 1


async def test_quiet_hours_hold_and_release_on_a_dst_change_night(
    aiohttp_client: MakeClient, write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    # The night of 28 to 29 March 2026: Berlin's clocks go from 02:00 CET to 03:00 CEST.
    clock = FakeClock(berlin(2026, 3, 28, 21, 30))
    client, relay = await start(aiohttp_client, write_config(QUIET_CONFIG), clock)
    night = tmp_path / "night.jsonl"
    await post(client, finished("evening", "Before the quiet hours"))
    await wait_until(lambda: len(read_jsonl(night)) == 1)

    clock.advance_to(berlin(2026, 3, 28, 23, 0))
    await post(client, finished("quiet-1", "Held at 23:00"))
    await post(client, finished("failing", "Fails at night", status="failed"))
    await wait_until(lambda: len(read_jsonl(night)) == 2)  # except: failures still go out
    assert read_jsonl(night)[1]["status"] == "failed"
    clock.advance_to(berlin(2026, 3, 29, 3, 30))
    await post(client, finished("quiet-2", "Held at 03:30 summer time"))
    assert await held(relay) == {"night": 2}

    # 08:00 CEST is 06:00 UTC (not 07:00 UTC, as it would be in winter).
    end = datetime(2026, 3, 29, 6, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert await relay.flusher.run_once(clock.now()) == end + SETTLE
    clock.advance_to(end + SETTLE)
    await wait_until(lambda: len(read_jsonl(night)) == 3)
    released = read_jsonl(night)[2]
    assert released["flag"] == "DIGEST" and released["route"] == "quiet-hours"
    assert released["text"].startswith("🌙 Quiet hours: 2 runs held")
    assert "Held at 23:00" in released["text"] and "Held at 03:30" in released["text"]
    assert "Fails at night" not in released["text"]

    await post(client, finished("morning", "After the quiet hours"))
    await wait_until(lambda: len(read_jsonl(night)) == 4)
    assert read_jsonl(night)[3]["flag"] == "RUN_FINISHED"
