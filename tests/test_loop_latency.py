"""A huge signed event does not stall the server: /healthz answers within 100 ms throughout.

The event is ~700 KB with 20,000 ``updated_nodes``, delivered to 17 file channels, or sent to the
route tester. /healthz is polled every 20 ms, from before the event arrives until all its work is
done, and the slowest answer is the measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import relay.receiver as receiver_module
from relay.app import RELAY, build_app
from relay.config import load_config
from relay.events import Event
from relay.receiver import canonical_json, new_event_id
from relay.store import JobSpec, NewEvent
from tests.conftest import SECRET, read_jsonl, wait_until

Client = TestClient[Any, web.Application]
CHANNELS = [f"file-{i:02d}" for i in range(17)]
ADMIN = "latency-admin-token"
MAX_LATENCY = 0.1
POLL_INTERVAL = 0.02
CONFIG = f"""
auth:
  secrets: ["{SECRET}"]
server:
  admin_token: "{ADMIN}"
store:
  url: sqlite:///relay.db
  sync: normal
delivery:
  backoff: {{initial: 10ms, max: 50ms}}
channels: {{{", ".join(f"{name}: {{type: file, path: {name}.jsonl}}" for name in CHANNELS)}}}
routes:
  - to: [{", ".join(CHANNELS)}]
"""


def huge_event() -> bytes:
    """~700 KB: 20,000 updated nodes, every 1,000th with an output."""
    nodes: list[dict[str, Any]] = [{"original_node_id": f"node-{i:05d}"} for i in range(20_000)]
    for i in range(0, 20_000, 1_000):
        nodes[i]["outputs"] = [{"id": f"o{i}", "video_url": f"https://example.com/{i}.mp4"}]
    event = {
        "flag": "RUN_PROGRESS",
        "agent_id": "123e4567-e89b-12d3-a456-789012345678",
        "run_id": "big-run",
        "status": "running",
        "node_status_counts": {"completed": 10_000, "in_progress": 10_000, "failed": 0},
        "updated_nodes": nodes,
    }
    body = json.dumps(event, separators=(",", ":")).encode()
    assert 600_000 < len(body) < 1_000_000
    return body


@pytest.fixture
async def client(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[Client]:
    path = tmp_path / "relay.yaml"
    path.write_text(CONFIG)
    yield await aiohttp_client(build_app(load_config(path, env={})))


class HealthPoller:
    """Polls ``GET /healthz`` every 20 ms until stopped.

    A poll's latency counts from when it was due, as for a client on its own: a loop blocked
    while the poller sleeps shows too, not only one blocked during a request.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.latencies: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        due = time.perf_counter()
        while True:
            async with self.client.get("/healthz") as answer:
                assert answer.status == 200
                await answer.read()
            answered = time.perf_counter()
            self.latencies.append(answered - due)
            due = answered + POLL_INTERVAL
            await asyncio.sleep(POLL_INTERVAL)

    async def _polls(self, count: int) -> None:
        expected = len(self.latencies) + count
        await wait_until(lambda: len(self.latencies) >= expected)

    async def __aenter__(self) -> HealthPoller:
        # A full collection of the test process's own heap is not the relay's doing.
        gc.collect()
        self._task = asyncio.create_task(self._poll())
        await self._polls(3)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._polls(2)  # the last poll started after the work was done
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def stored_event(client: Client, body: bytes) -> tuple[NewEvent, list[JobSpec]]:
    """The event and its jobs as the receiver stores them."""
    payload = json.loads(body)
    event = Event.model_validate(payload)
    canonical = canonical_json(payload)
    jobs = [
        JobSpec(channel=d.channel, route=d.route.name, template=d.template, mode=d.route.mode)
        for d in client.app[RELAY].live.current.router.match(event)
    ]
    new = NewEvent(
        event_id=new_event_id(),
        dedup_key=hashlib.sha256(canonical).hexdigest(),
        body=canonical,
        flag=event.flag,
        run_id=event.run_id,
        agent_id=event.agent_id,
        status=event.status,
        received_at=time.time(),
    )
    return new, jobs


async def test_healthz_answers_within_100ms_while_a_huge_event_goes_to_17_channels(
    client: Client, tmp_path: Path
) -> None:
    relay = client.app[RELAY]
    new, jobs = stored_event(client, huge_event())
    assert len(jobs) == len(CHANNELS)

    def delivered() -> bool:
        return all(read_jsonl(tmp_path / f"{name}.jsonl") for name in CHANNELS)

    async with HealthPoller(client) as poller:
        await relay.store.accept(new, jobs)
        relay.dispatcher.notify()
        await wait_until(delivered, timeout=60)
    assert max(poller.latencies) < MAX_LATENCY, sorted(poller.latencies)[-5:]
    line = read_jsonl(tmp_path / f"{CHANNELS[-1]}.jsonl")[0]
    assert "10000/20000 nodes done" in line["text"]
    assert "… and 19 more outputs" in line["text"]


async def test_healthz_answers_within_100ms_while_the_route_tester_takes_a_huge_event(
    client: Client,
) -> None:
    body = huge_event()
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    async with HealthPoller(client) as poller:
        answer = await client.post("/api/route-test", data=body, headers=headers)
        result = await answer.json()
    assert answer.status == 200, result
    assert max(poller.latencies) < MAX_LATENCY, sorted(poller.latencies)[-5:]
    assert [d["channel"] for d in result["deliveries"]] == CHANNELS
    assert all("… and 19 more outputs" in d["text"] for d in result["deliveries"])


async def test_healthz_answers_within_100ms_while_a_huge_webhook_is_accepted(
    client: Client, tmp_path: Path
) -> None:
    """The webhook's own parse, validation and canonical JSON run off the loop for such a body."""
    body = huge_event()
    headers = {"X-Mosaic-Signature": SECRET, "Content-Type": "application/json"}
    async with HealthPoller(client) as poller:
        answer = await client.post("/webhooks/mosaic", data=body, headers=headers)
        assert answer.status == 202, await answer.text()
    assert max(poller.latencies) < MAX_LATENCY, sorted(poller.latencies)[-5:]


async def test_a_big_webhook_body_is_parsed_off_the_event_loop(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed_on: list[str] = []
    real = receiver_module.parse_json

    def spy(body: bytes) -> Any:
        parsed_on.append(threading.current_thread().name)
        return real(body)

    monkeypatch.setattr(receiver_module, "parse_json", spy)
    headers = {"X-Mosaic-Signature": SECRET}
    assert (await client.post("/webhooks/mosaic", data=huge_event(), headers=headers)).status == 202
    small = json.dumps({"flag": "TEST", "agent_id": "a", "run_id": "r", "status": "running"})
    assert (await client.post("/webhooks/mosaic", data=small, headers=headers)).status == 200
    main = threading.main_thread().name
    assert parsed_on[0] != main  # the big one in a worker thread
    assert parsed_on[1] == main  # a small one inline: a thread hop would cost more than it saves
