"""`relay serve` with two worker processes on one port and one SQLite store (docs/workers.md).

A worker SIGKILLed mid-stream loses nothing acknowledged and is replaced; cards stay one per run
with forward-only edits; a reload through one worker reaches the other; `/metrics` counts what
every worker did; SIGTERM drains them all and the supervisor's death stops its workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Sink, wait_until
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.relay_process import RelayProcess, process_gone
from tests.test_cards import ORDER, check_run, config_text, finished, progress, started
from tests.test_replicas import event

SECRET = "workers-secret"
ADMIN = "workers-admin-token"
RUNS, EVENTS_PER_RUN = 150, 4


@pytest.fixture
async def relays() -> AsyncIterator[Callable[..., Any]]:
    started_relays: list[RelayProcess] = []

    async def launch(path: Path, workers: int = 2, *, watch: bool = True) -> RelayProcess:
        relay = await RelayProcess.launch(path, workers=workers, watch=watch)
        started_relays.append(relay)
        return relay

    yield launch
    for relay in started_relays:
        relay.kill()


def hook_config(folder: Path, hook: str, *, extra: dict[str, Any] | None = None) -> Path:
    path = folder / "relay.yaml"
    body = '{"run": {{ run_id | tojson }}, "seq": {{ event.seq | tojson }}}'
    config = {
        "auth": {"secrets": [SECRET]},
        "server": {"admin_token": ADMIN},
        "store": {"url": "sqlite:///relay.db", "sync": "full"},
        "delivery": {
            "lease": "2s",
            "backoff": {"initial": "10ms", "max": "100ms"},
            "shutdown_grace": "1s",
        },
        "channels": {"hook": {"type": "webhook", "url": hook, "body": body, "rate_limit": "off"}},
        "routes": [{"name": "all", "to": ["hook"]}],
        **(extra or {}),
    }
    path.write_text(json.dumps(config))
    return path


def open_jobs(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        found: int = conn.execute(
            "SELECT count(*) FROM jobs WHERE state IN ('pending', 'inflight')"
        ).fetchone()[0]
    return found


async def readyz(url: str) -> dict[str, Any]:
    """One answer over a new connection (the kernel picks the worker per connection)."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(url.replace("/webhooks/mosaic", "/readyz")) as answer,
    ):
        body: dict[str, Any] = await answer.json()
        return body


async def answers_by_worker(url: str, want: int = 2, tries: int = 200) -> dict[int, str]:
    """Each worker's config hash, asking over new connections until every worker answered."""
    seen: dict[int, str] = {}
    for _ in range(tries):
        body = await readyz(url)
        seen[body["worker"]] = body["config"]["sha256"]
        if len(seen) == want:
            break
    return seen


async def test_a_worker_killed_mid_stream_loses_nothing_acknowledged(
    tmp_path: Path, sink: tuple[Sink, str], relays: Callable[..., Any]
) -> None:
    recorder, hook = sink
    relay: RelayProcess = await relays(hook_config(tmp_path, hook))
    victims = relay.workers()
    assert len(victims) == 2
    accepted: list[tuple[str, int]] = []
    order = [(run, seq) for seq in range(EVENTS_PER_RUN) for run in range(RUNS)]
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for item in order:
        queue.put_nowait(item)
    killed = False

    async def poster(session: aiohttp.ClientSession) -> None:
        nonlocal killed
        while not queue.empty():
            run, seq = queue.get_nowait()
            try:
                async with session.post(
                    relay.url, data=event(run, seq), headers={"X-Mosaic-Signature": SECRET}
                ) as answer:
                    if answer.status == 202:
                        accepted.append((f"replica-run-{run:04d}", seq))
            except aiohttp.ClientError:
                pass  # a connection of the killed worker: not acknowledged, nothing promised
            if len(accepted) >= len(order) // 2 and not killed:
                killed = True
                os.kill(victims[0], signal.SIGKILL)

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True)  # new connections reach both workers
    ) as session:
        await asyncio.gather(*(poster(session) for _ in range(8)))
    assert killed
    assert len(accepted) >= len(order) * 0.9
    want = set(accepted)
    await wait_until(lambda: want <= set(recorder.arrivals), timeout=60)
    await wait_until(lambda: len(relay.workers()) == 2 and victims[0] not in relay.workers(), 20)
    assert "died (signal SIGKILL); starting a new one" in relay.log()
    # Per run, the deliveries came in the order the events were accepted.
    for run in {r for r, _ in accepted}:
        seqs = [s for r, s in recorder.arrivals if r == run]
        firsts = list(dict.fromkeys(seqs))  # a send repeated after the kill counts once
        assert firsts == sorted(firsts), (run, seqs)


async def test_cards_stay_one_per_run_with_forward_only_edits(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    relays: Callable[..., Any],
) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(config_text(fake_slack, fake_telegram))
    relay: RelayProcess = await relays(path)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:

        async def post(body: dict[str, Any]) -> int:
            async with session.post(relay.url, data=json.dumps(body)) as answer:
                return answer.status

        assert await post(started()) == 202
        statuses = [await post(progress(k)) for k in ORDER]
        assert statuses.count(200) == 1  # the repeated step 3 is a duplicate
        assert await post(finished()) == 202
    await wait_until(lambda: open_jobs(tmp_path / "relay.db") == 0, timeout=30)
    await check_run(fake_slack, fake_telegram)


async def test_a_reload_through_one_worker_reaches_the_other(
    tmp_path: Path, sink: tuple[Sink, str], relays: Callable[..., Any]
) -> None:
    _, hook = sink
    path = hook_config(tmp_path, hook)
    # The file watch is off: only the reload endpoint can tell the workers.
    relay: RelayProcess = await relays(path, watch=False)
    before = await answers_by_worker(relay.url)
    assert sorted(before) == [1, 2] and len(set(before.values())) == 1
    text = path.read_text().replace('"name": "all"', '"name": "everything"')
    path.write_text(text)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            relay.url.replace("/webhooks/mosaic", "/-/reload"),
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as answer,
    ):
        assert answer.status == 200
        new_sha = (await answer.json())["sha256"]

    async def every_worker_reloaded() -> bool:
        seen = await answers_by_worker(relay.url)
        return sorted(seen) == [1, 2] and set(seen.values()) == {new_sha}

    await wait_until(every_worker_reloaded, timeout=10)


async def test_metrics_count_what_every_worker_did(
    tmp_path: Path, sink: tuple[Sink, str], relays: Callable[..., Any]
) -> None:
    _, hook = sink
    relay: RelayProcess = await relays(hook_config(tmp_path, hook))
    posts, served = 40, set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for index in range(posts):
            async with session.post(
                relay.url, data=event(index, 0), headers={"X-Mosaic-Signature": SECRET}
            ) as answer:
                assert answer.status == 202
            served.add((await readyz(relay.url))["worker"])
        metrics_url = relay.url.replace("/webhooks/mosaic", "/metrics")
        totals = set()
        for _ in range(6):  # whichever worker answers, the sum is the same
            async with session.get(metrics_url) as answer:
                text = await answer.text()
            totals.add(
                _sample(
                    text, 'relay_webhooks_received_total{flag="RUN_PROGRESS",result="accepted"}'
                )
            )
    assert served == {1, 2}
    assert totals == {float(posts)}


def _sample(exposition: str, series: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in /metrics")


async def test_sigterm_drains_every_worker_and_exits_zero(
    tmp_path: Path, sink: tuple[Sink, str], relays: Callable[..., Any]
) -> None:
    _, hook = sink
    relay: RelayProcess = await relays(hook_config(tmp_path, hook))
    workers = relay.workers()
    assert len(workers) == 2
    relay.terminate()
    assert await relay.wait_exit(30) == 0
    assert all(process_gone(pid) for pid in workers)
    assert relay.log().count("relay stopping") >= 3  # the supervisor and each worker


async def test_workers_stop_when_their_supervisor_is_killed(
    tmp_path: Path, sink: tuple[Sink, str], relays: Callable[..., Any]
) -> None:
    _, hook = sink
    relay: RelayProcess = await relays(hook_config(tmp_path, hook))
    workers = relay.workers()
    assert len(workers) == 2
    relay.proc.kill()  # the supervisor only
    relay.proc.wait(timeout=10)
    await wait_until(lambda: all(process_gone(pid) for pid in workers), timeout=20)


async def test_one_worker_serves_alone_without_a_supervisor(
    tmp_path: Path, sink: tuple[Sink, str], relays: Callable[..., Any]
) -> None:
    _, hook = sink
    relay: RelayProcess = await relays(hook_config(tmp_path, hook), workers=1)
    assert relay.workers() == []
    assert "worker" not in await readyz(relay.url)
