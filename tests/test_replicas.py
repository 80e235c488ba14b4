"""Two `relay serve` replicas sharing one Redis: 2,000 events, one replica SIGKILLed mid-stream.

Every event that got a 2xx is delivered, in order per run, and at most the sends that were in
flight at the kill are repeated (the dead replica's leases run out and the survivor takes over).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Sink, sample, wait_until
from tests.redis_server import RedisServer, start_server
from tests.relay_process import RelayProcess

SECRET = "replica-secret"
RUNS, EVENTS_PER_RUN = 400, 5
WORKERS = 8


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = start_server(folder)  # its own: the replicas use the default namespace
    yield server
    server.stop()


def config(folder: Path, redis_url: str, hook: str) -> Path:
    path = folder / "relay.yaml"
    body = '{"run": {{ run_id | tojson }}, "seq": {{ event.seq | tojson }}}'
    path.write_text(
        json.dumps(
            {
                "auth": {"secrets": [SECRET]},
                "store": {"url": redis_url, "sync": "full"},
                "delivery": {
                    "workers": WORKERS,
                    "lease": "2s",
                    "backoff": {"initial": "10ms", "max": "100ms"},
                    "shutdown_grace": "1s",
                },
                "channels": {
                    "hook": {"type": "webhook", "url": hook, "body": body, "rate_limit": "off"}
                },
                "routes": [{"name": "all", "to": ["hook"]}],
            }
        )
    )
    return path


def event(run: int, seq: int) -> bytes:
    body = sample("run_progress")
    body.update(run_id=f"replica-run-{run:04d}", seq=seq)
    body["node_status_counts"] = {"completed": seq, "in_progress": EVENTS_PER_RUN, "failed": 0}
    return json.dumps(body).encode()


@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker-each", "2-workers-each"])
async def test_two_replicas_deliver_every_accepted_event_once_in_order(
    tmp_path: Path, redis: RedisServer, sink: tuple[Sink, str], workers: int
) -> None:
    recorder, hook = sink
    path = config(tmp_path, redis.url, hook)
    first = await RelayProcess.launch(path, workers=workers)
    second = await RelayProcess.launch(path, workers=workers)
    replicas = [first, second]
    accepted: list[tuple[str, int]] = []
    # Events of one run go out in sequence; runs interleave across both replicas.
    order = [(run, seq) for seq in range(EVENTS_PER_RUN) for run in range(RUNS)]
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for item in order:
        queue.put_nowait(item)
    turn = itertools.count()
    shared: list[float] = []  # what the second replica had sent when it was killed

    async def poster(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            run, seq = queue.get_nowait()
            live = [r for r in replicas if r.alive]
            target = live[next(turn) % len(live)]
            try:
                async with session.post(
                    target.url, data=event(run, seq), headers={"X-Mosaic-Signature": SECRET}
                ) as answer:
                    if answer.status == 202:
                        accepted.append((f"replica-run-{run:04d}", seq))
            except aiohttp.ClientError:
                pass  # the killed replica: not accepted, nothing promised
            if len(accepted) == len(order) // 2 and second.alive:
                shared.append(await sent_by(session, second))
                second.kill()

    try:
        async with aiohttp.ClientSession() as session:
            # One poster per run slice keeps each run's events in order of posting.
            await asyncio.gather(*(poster(session) for _ in range(16)))
        assert not second.alive
        assert len(accepted) >= len(order) * 0.9
        want = set(accepted)
        await wait_until(lambda: want <= set(recorder.arrivals), timeout=60)
    finally:
        for replica in replicas:
            if replica.alive:
                replica.stop()

    delivered = recorder.arrivals
    repeats = len(delivered) - len(set(delivered))
    assert repeats <= 2 * WORKERS * workers, f"{repeats} repeated sends"
    assert set(delivered) <= set(_keys(order))
    by_run: dict[str, list[int]] = defaultdict(list)
    for run, seq in delivered:
        if not by_run[run] or by_run[run][-1] != seq:
            by_run[run].append(seq)
    accepted_by_run: dict[str, list[int]] = defaultdict(list)
    for run, seq in accepted:
        accepted_by_run[run].append(seq)
    for run, seqs in accepted_by_run.items():
        # (An event stored just before the kill but never answered may be delivered too.)
        shown = [seq for seq in by_run[run] if seq in seqs]
        assert shown == seqs, f"{run}: accepted {seqs}, delivered {by_run[run]}"
    assert shared and shared[0] > 0  # the killed replica did share the work


async def sent_by(session: aiohttp.ClientSession, relay: RelayProcess) -> float:
    """Messages ``relay`` (all its workers) has sent, from its ``/metrics``."""
    async with session.get(relay.url.replace("/webhooks/mosaic", "/metrics")) as answer:
        text = await answer.text()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("relay_deliveries_total{") and 'outcome="sent"' in line
    )


def _keys(order: list[tuple[int, int]]) -> list[tuple[str, int]]:
    return [(f"replica-run-{run:04d}", seq) for run, seq in order]
