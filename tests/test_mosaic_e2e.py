"""Reconciliation and the stale-run watch end to end: the relay on a port, FakeMosaic on another,
webhooks over HTTP, alerts read from the file channel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, Relay, build_app
from relay.config import load_config
from relay.mosaic import MosaicClient, RetryPolicy
from relay.mosaic.settings import MosaicSettings
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SECRET, read_jsonl, wait_until
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic
from tests.fakes.slack import FakeSlack

Client = TestClient[Any, web.Application]
PATH = "/webhooks/mosaic"
AGENT = "123e4567-e89b-12d3-a456-789012345678"
RUN = "c2d9e8f7-6a5b-4c3d-2e1f-0a9b8c7d6e5f"
COUNTS = {"completed": 6, "in_progress": 0, "failed": 2}
ONE_TRY = RetryPolicy(attempts=1)


def mosaic_config(fake: FakeMosaic, extra: str = "") -> str:
    return BASE_CONFIG + (
        f"mosaic:\n  api_key: {DEFAULT_KEY}\n  api_url: {fake.url}\n"
        f"  reconcile: {{interval: 1h, lookback: 24h}}\n{extra}"
    )


def finished_webhook(**changes: Any) -> dict[str, Any]:
    return {
        "flag": "RUN_FINISHED",
        "agent_id": AGENT,
        "run_id": RUN,
        "status": "failed",
        "status_message": "Render node ran out of credits",
        "node_status_counts": COUNTS,
        "inputs": [],
        "outputs": [],
        "triggered_by": None,
        **changes,
    }


@pytest.fixture
def start_relay(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Callable[..., Awaitable[Client]]:
    """The relay on a port; its Mosaic client tries each call once (no backoff in tests)."""

    async def start(config: str) -> Client:
        path = tmp_path / "relay.yaml"
        path.write_text(config)
        app = build_app(load_config(path, env={}), check_channels=False)
        relay = app[RELAY]

        def one_try_client(settings: MosaicSettings) -> MosaicClient:
            assert settings.api_key is not None
            return MosaicClient(
                settings.api_key, base_url=settings.api_url, session=relay.session, retry=ONE_TRY
            )

        relay.reconciler.client_factory = one_try_client
        relay.stale_watch.client_factory = one_try_client
        return await aiohttp_client(app)

    return start


async def post(client: Client, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = await client.post(PATH, data=json.dumps(body), headers={SIGNATURE_HEADER: SECRET})
    return answer.status, await answer.json()


def alerts(tmp_path: Path) -> list[dict[str, Any]]:
    return read_jsonl(tmp_path / "deliveries.jsonl")


async def job_count(relay: Relay) -> int:
    return sum(row.count for row in await relay.store.status())


def add_failed_run(fake: FakeMosaic) -> None:
    """A run that failed 10 minutes ago: its webhook reached no relay."""
    now = datetime.now(UTC)
    fake.add_run(
        RUN,
        agent_id=AGENT,
        created_at=now - timedelta(hours=1),
        updated_at=now - timedelta(minutes=10),
        status="failed",
        status_message="Render node ran out of credits",
        node_status_counts=COUNTS,
        needs_credits=True,
    )


async def test_a_run_end_sent_while_the_relay_was_down_alerts_once_then_the_late_webhook_is_a_duplicate(
    start_relay: Callable[..., Awaitable[Client]], fake_mosaic: FakeMosaic, tmp_path: Path
) -> None:
    add_failed_run(fake_mosaic)

    client = await start_relay(mosaic_config(fake_mosaic))  # the relay comes back
    relay = client.app[RELAY]

    # (a) one failure alert, from the pass at start (well within one interval of an hour)
    await wait_until(lambda: len(alerts(tmp_path)) == 1)
    [alert] = alerts(tmp_path)
    assert (alert["run_id"], alert["flag"], alert["status"]) == (RUN, "RUN_FINISHED", "failed")
    assert relay.reconciler.last is not None and relay.reconciler.last.recovered == [RUN]
    stored = await relay.store.get_event(alert["event_id"])
    assert stored is not None and stored.body is not None
    assert json.loads(stored.body)["_relay"] == {"source": "reconciled"}

    # (b) the real webhook arrives late: 200 duplicate, nothing is sent twice
    status, answer = await post(client, finished_webhook())
    assert (status, answer) == (200, {"status": "duplicate", "event_id": alert["event_id"]})
    assert await job_count(relay) == 1
    # a later, different event of the relay is delivered: the queue moved on without a 2nd alert
    status, _ = await post(client, {**finished_webhook(), "flag": "RUN_PROGRESS"})
    assert status == 202
    await wait_until(lambda: len(alerts(tmp_path)) == 2)
    assert [a["flag"] for a in alerts(tmp_path)] == ["RUN_FINISHED", "RUN_PROGRESS"]


@pytest.mark.parametrize("fault", ["unreachable", "429", "500", "hanging"])
async def test_webhooks_are_relayed_whatever_the_api_does(
    start_relay: Callable[..., Awaitable[Client]],
    fake_mosaic: FakeMosaic,
    tmp_path: Path,
    fault: str,
) -> None:
    add_failed_run(fake_mosaic)
    config = mosaic_config(fake_mosaic)
    if fault == "unreachable":
        await fake_mosaic.go_down(refuse=True)
    elif fault == "hanging":
        fake_mosaic.slow_next(path="/agent_runs")
    else:
        fake_mosaic.fail_next(5, status=int(fault))

    client = await start_relay(config)
    relay = client.app[RELAY]
    if fault == "hanging":
        await wait_until(lambda: fake_mosaic.holding == 1)
    else:
        await wait_until(lambda: relay.reconciler.last is not None)
        assert relay.reconciler.last is not None
        assert relay.reconciler.last.result == "unavailable"

    status, _ = await post(client, finished_webhook(run_id="other-run", status="completed"))
    assert status == 202
    await wait_until(lambda: len(alerts(tmp_path)) == 1)
    assert alerts(tmp_path)[0]["run_id"] == "other-run"
    metrics = await (await client.get("/metrics")).text()
    if fault != "hanging":
        assert 'relay_reconcile_passes_total{result="unavailable"} 1.0' in metrics
        label = "unreachable" if fault == "unreachable" else fault
        assert f'relay_mosaic_api_errors_total{{status="{label}"}} 1.0' in metrics
    else:
        fake_mosaic.release()
        await wait_until(lambda: relay.reconciler.last is not None)


async def test_a_hung_run_alerts_once_as_stale_and_its_finish_alerts_normally(
    start_relay: Callable[..., Awaitable[Client]], fake_mosaic: FakeMosaic, tmp_path: Path
) -> None:
    fake_mosaic.add_run(
        RUN,
        agent_id=AGENT,
        node_status_counts={"completed": 7, "in_progress": 1, "failed": 0},
        created_at=datetime.now(UTC) - timedelta(hours=3),
    )
    client = await start_relay(mosaic_config(fake_mosaic, "  stale_after: 2h\n"))
    relay = client.app[RELAY]
    # The test runs the checks itself: the background watch's first check (due at start, but
    # late on a busy machine) must not find the run first.
    for task in relay.mosaic_tasks:
        task.cancel()
    await asyncio.gather(*relay.mosaic_tasks, return_exceptions=True)
    # The relay heard of the run's start two hours and a minute ago, and nothing since.
    relay.receiver.ingest.clock = lambda: time.time() - 2 * 3600 - 60
    started = {**finished_webhook(), "flag": "RUN_STARTED", "status": "running"}
    started["node_status_counts"] = {"completed": 0, "in_progress": 10, "failed": 0}
    assert (await post(client, started))[0] == 202
    await wait_until(lambda: len(alerts(tmp_path)) == 1)
    relay.receiver.ingest.clock = time.time

    assert await relay.stale_watch.check_once() == [RUN]
    assert await relay.stale_watch.check_once() == []  # once per stale_after period
    await wait_until(lambda: len(alerts(tmp_path)) == 2)
    stale = alerts(tmp_path)[1]
    assert (stale["flag"], stale["status"]) == ("RUN_STALE", "running")
    body = await relay.store.get_event(stale["event_id"])
    assert body is not None and body.body is not None
    payload = json.loads(body.body)
    assert payload["_relay"]["source"] == "watch"
    assert payload["_relay"]["silent_for"] >= 2 * 3600
    assert payload["node_status_counts"]["completed"] == 7  # Mosaic's counts, asked just now
    assert fake_mosaic.calls_for("GET /agent_run/{run_id}")

    finished = finished_webhook(
        status="completed", node_status_counts={"completed": 10, "in_progress": 0, "failed": 0}
    )
    assert (await post(client, finished))[0] == 202
    await wait_until(lambda: len(alerts(tmp_path)) == 3)
    assert alerts(tmp_path)[2]["flag"] == "RUN_FINISHED"
    relay.stale_watch.clock = lambda: time.time() + 5 * 3600
    assert await relay.stale_watch.check_once() == []  # never after the run ends
    assert len(alerts(tmp_path)) == 3


async def test_reconciliation_turned_on_by_a_reload_runs_at_once(
    start_relay: Callable[..., Awaitable[Client]], fake_mosaic: FakeMosaic, tmp_path: Path
) -> None:
    add_failed_run(fake_mosaic)
    client = await start_relay(BASE_CONFIG)
    relay = client.app[RELAY]
    assert relay.reconciler.last is None

    (tmp_path / "relay.yaml").write_text(mosaic_config(fake_mosaic))
    assert (await relay.reloader.reload("test"))["ok"]

    await wait_until(lambda: len(alerts(tmp_path)) == 1)
    assert alerts(tmp_path)[0]["run_id"] == RUN


async def test_a_card_left_running_is_finished_by_the_reconciled_end(
    start_relay: Callable[..., Awaitable[Client]],
    fake_mosaic: FakeMosaic,
    fake_slack: FakeSlack,
    tmp_path: Path,
) -> None:
    card_route = f"""
  team-slack:
    type: slack
    token: xoxb-test-token
    channel: "#video-alerts"
    api_url: {fake_slack.api_url}
    rate_limit: off
routes:
  - name: cards
    to: [team-slack]
    mode: card
"""
    config = mosaic_config(fake_mosaic).replace("\nroutes:\n", card_route, 1)
    config = config.replace("  - name: all\n    to: [archive]\n", "", 1)
    client = await start_relay(config)
    started = {**finished_webhook(), "flag": "RUN_STARTED", "status": "running"}
    started["node_status_counts"] = {"completed": 0, "in_progress": 8, "failed": 0}
    assert (await post(client, started))[0] == 202
    await wait_until(lambda: len(fake_slack.messages("#video-alerts")) == 1)
    assert fake_slack.messages("#video-alerts")[0].text.startswith("🚀")

    add_failed_run(fake_mosaic)  # its RUN_FINISHED webhook never arrived
    relay = client.app[RELAY]
    await relay.reconciler.run_once()

    def finished_card() -> bool:
        (card,) = fake_slack.messages("#video-alerts")
        return card.text.startswith("❌")

    await wait_until(finished_card)  # the same message, edited: not a second post
