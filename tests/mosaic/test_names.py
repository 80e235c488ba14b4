"""Agents' names in Mosaic: the in-memory names, the background resolver against the fake API,
and, end to end, names in messages, routes and the dashboard without ever delaying a delivery."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, build_app
from relay.config import load_config
from relay.mosaic import MosaicClient, RetryPolicy
from relay.mosaic.names import MAX_PENDING, AgentNames, NameResolver
from relay.mosaic.settings import MosaicSettings
from relay.receiver import SIGNATURE_HEADER
from relay.store import Store
from relay.store.base import AgentName
from relay.store.sqlite import SQLiteStore
from tests.conftest import BASE_CONFIG, SECRET, read_jsonl, wait_until
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic

Client = TestClient[Any, web.Application]
AGENT = "0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b"
OTHER = "9f9f9f9f-0000-4000-8000-000000000001"
SHORTS = "123e4567-e89b-12d3-a456-789012345678"
ONE_TRY = RetryPolicy(attempts=1)
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the in-memory names ------------------------------------------------------------------------


def test_a_miss_notes_the_id_once_and_a_learned_name_answers() -> None:
    clock = Clock()
    names = AgentNames(clock=clock)
    assert names.get(AGENT) is None
    assert AGENT not in names
    assert names.pending == [AGENT]
    names.learn({AGENT: AgentName("Clip cutter", clock.now)})
    assert names.take_pending() == [AGENT]
    assert names.get(AGENT) == "Clip cutter"
    assert dict(names) == {AGENT: "Clip cutter"}
    assert names.pending == []


def test_a_name_older_than_a_day_still_answers_and_is_noted_for_a_refresh() -> None:
    clock = Clock()
    names = AgentNames(clock=clock)
    names.learn({AGENT: AgentName("Clip cutter", clock.now)})
    clock.now += DAY - 1
    assert names.get(AGENT) == "Clip cutter" and names.pending == []
    clock.now += 1
    assert names.get(AGENT) == "Clip cutter" and names.pending == [AGENT]


def test_an_agent_mosaic_does_not_know_has_no_name_and_is_not_asked_again_for_a_day() -> None:
    clock = Clock()
    names = AgentNames(clock=clock)
    names.learn({AGENT: AgentName(None, clock.now)})
    assert names.get(AGENT) is None and names.pending == [] and len(names) == 0
    clock.now += DAY
    assert names.get(AGENT) is None and names.pending == [AGENT]


def test_a_failed_lookup_is_not_noted_again_before_its_retry_time() -> None:
    clock = Clock()
    names = AgentNames(clock=clock)
    names.failed(AGENT, 300.0)
    assert names.get(AGENT) is None and names.pending == []
    clock.now += 300.0
    assert names.get(AGENT) is None and names.pending == [AGENT]


def test_pending_ids_are_bounded() -> None:
    names = AgentNames()
    for n in range(MAX_PENDING + 10):
        names.get(f"agent-{n}")
    assert len(names.pending) == MAX_PENDING


def test_an_older_answer_does_not_replace_a_newer_one() -> None:
    names = AgentNames()
    names.learn({AGENT: AgentName("New", 20.0)})
    names.learn({AGENT: AgentName("Old", 10.0)})
    assert names.cached(AGENT) == AgentName("New", 20.0)


# --- the resolver against the fake API ----------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = SQLiteStore(tmp_path / "relay.db", sync="normal")
    await opened.open()
    yield opened
    await opened.close()


def resolver_for(fake: FakeMosaic, store: Store, clock: Clock, **settings: Any) -> NameResolver:
    mosaic = MosaicSettings.model_validate(
        {"api_key": DEFAULT_KEY, "api_url": fake.url, **settings}
    )

    def client(current: MosaicSettings) -> MosaicClient:
        assert current.api_key is not None
        return MosaicClient(current.api_key, base_url=current.api_url, retry=ONE_TRY)

    return NameResolver(store, AgentNames(clock=clock), lambda: mosaic, client, clock=clock)


async def test_a_noted_agent_is_resolved_cached_in_the_store_and_not_asked_again(
    fake_mosaic: FakeMosaic, store: Store
) -> None:
    fake_mosaic.add_agent(AGENT, name="Clip cutter")
    clock = Clock()
    resolver = resolver_for(fake_mosaic, store, clock)
    names = resolver.names
    assert names.get(AGENT) is None
    assert await resolver.run_once() == 1
    assert names.get(AGENT) == "Clip cutter"
    assert await store.agent_names() == {AGENT: AgentName("Clip cutter", clock.now)}
    assert [call.path for call in fake_mosaic.calls] == [f"/agent/{AGENT}"]
    assert await resolver.run_once() == 0
    assert len(fake_mosaic.calls) == 1

    # A day later the name is asked again; meanwhile the old one shows.
    fake_mosaic.add_agent(AGENT, name="Clip cutter v2")
    clock.now += DAY
    assert names.get(AGENT) == "Clip cutter"
    assert await resolver.run_once() == 1
    assert names.get(AGENT) == "Clip cutter v2"


async def test_a_404_is_cached_without_a_name(fake_mosaic: FakeMosaic, store: Store) -> None:
    clock = Clock()
    resolver = resolver_for(fake_mosaic, store, clock)
    resolver.names.get(AGENT)
    assert await resolver.run_once() == 1
    assert await store.agent_names() == {AGENT: AgentName(None, clock.now)}
    assert resolver.names.get(AGENT) is None
    assert await resolver.run_once() == 0


@pytest.mark.parametrize("status", [500, 429])
async def test_a_failed_lookup_caches_nothing_and_is_tried_again_later(
    fake_mosaic: FakeMosaic, store: Store, status: int
) -> None:
    fake_mosaic.add_agent(AGENT, name="Clip cutter")
    fake_mosaic.fail_next(status=status)
    clock = Clock()
    resolver = resolver_for(fake_mosaic, store, clock)
    resolver.names.get(AGENT)
    assert await resolver.run_once() == 1
    assert await store.agent_names() == {}
    assert resolver.names.get(AGENT) is None and resolver.names.pending == []
    clock.now += 300.0
    assert resolver.names.get(AGENT) is None
    assert await resolver.run_once() == 1
    assert resolver.names.get(AGENT) == "Clip cutter"


async def test_a_refused_key_stops_the_round(tmp_path: Path, store: Store) -> None:
    async with FakeMosaic(keys=()) as fake:
        clock = Clock()
        resolver = resolver_for(fake, store, clock)
        for agent_id in (AGENT, OTHER):
            resolver.names.get(agent_id)
        assert await resolver.run_once() == 1  # the first 401 ends it
        assert resolver.names.get(OTHER) is None and resolver.names.pending == []
        assert await store.agent_names() == {}


async def test_a_name_another_replica_cached_is_taken_without_an_api_call(
    fake_mosaic: FakeMosaic, store: Store
) -> None:
    clock = Clock()
    resolver = resolver_for(fake_mosaic, store, clock)
    await resolver.reload()
    await store.put_agent_name(AGENT, AgentName("From the other replica", clock.now))
    resolver.names.get(AGENT)
    assert await resolver.run_once() == 0
    assert resolver.names.get(AGENT) == "From the other replica"
    assert fake_mosaic.calls == []


async def test_names_off_looks_nothing_up(fake_mosaic: FakeMosaic, store: Store) -> None:
    resolver = resolver_for(fake_mosaic, store, Clock(), agent_names=False)
    resolver.names.get(AGENT)
    assert not resolver.enabled
    assert await resolver.run_once() == 0
    assert fake_mosaic.calls == []


# --- end to end ---------------------------------------------------------------------------------


def names_config(fake: FakeMosaic, extra_routes: str = "") -> str:
    config = BASE_CONFIG.replace("auth:", "server:\n  admin_token: adm1n-t0ken-for-tests\nauth:", 1)
    return (
        config
        + extra_routes
        + (
            f"mosaic:\n  api_key: {DEFAULT_KEY}\n  api_url: {fake.url}\n  reconcile: off\n"
            "  stale_after: off\n  run_url: https://edit.mosaic.so/runs/{run_id}\n"
        )
    )


@pytest.fixture
def start_relay(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Callable[[str], Awaitable[Client]]:
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

        relay.names.client_factory = one_try_client
        return await aiohttp_client(app)

    return start


def webhook(agent_id: str = AGENT, run_id: str = "run-1", **changes: Any) -> dict[str, Any]:
    return {
        "flag": "RUN_FINISHED",
        "agent_id": agent_id,
        "run_id": run_id,
        "status": "failed",
        "node_status_counts": {"completed": 1, "in_progress": 0, "failed": 1},
        **changes,
    }


async def post(client: Client, body: dict[str, Any]) -> None:
    headers = {SIGNATURE_HEADER: SECRET}
    answer = await client.post("/webhooks/mosaic", data=json.dumps(body), headers=headers)
    assert answer.status == 202, await answer.text()


def delivered(tmp_path: Path) -> list[dict[str, Any]]:
    return read_jsonl(tmp_path / "deliveries.jsonl")


async def test_a_lookup_mosaic_holds_does_not_delay_the_delivery_then_the_name_shows(
    start_relay: Callable[[str], Awaitable[Client]], fake_mosaic: FakeMosaic, tmp_path: Path
) -> None:
    fake_mosaic.add_agent(AGENT, name="Clip cutter")
    fake_mosaic.slow_next(path="/agent/{agent_id}")  # held until released
    client = await start_relay(names_config(fake_mosaic))
    relay = client.app[RELAY]

    await post(client, webhook(run_id="run-1"))
    # Delivered while the lookup waits for Mosaic: the delivery never waits for a name.
    await wait_until(lambda: len(delivered(tmp_path)) == 1 and fake_mosaic.holding == 1)
    [first] = delivered(tmp_path)
    assert "agent 0b7e2a10" in first["text"]
    assert "https://edit.mosaic.so/runs/run-1" in first["text"]

    fake_mosaic.release()
    await wait_until(
        lambda: (
            relay.live.current.api_names is not None
            and relay.live.current.api_names.get(AGENT) == "Clip cutter"
        )
    )
    await post(client, webhook(run_id="run-2"))
    await wait_until(lambda: len(delivered(tmp_path)) == 2)
    assert "Clip cutter" in delivered(tmp_path)[1]["text"]
    assert await relay.store.agent_names() == {
        AGENT: AgentName("Clip cutter", (await relay.store.agent_names())[AGENT].fetched_at)
    }
    # relay.yaml's agents: names its agent; Mosaic is never asked about it.
    await post(client, webhook(agent_id=SHORTS, run_id="run-3"))
    await wait_until(lambda: len(delivered(tmp_path)) == 3)
    assert "Shorts cutter" in delivered(tmp_path)[2]["text"]
    assert all(call.path != f"/agent/{SHORTS}" for call in fake_mosaic.calls)

    # The dashboard shows the name too.
    answer = await client.get(
        "/api/events", headers={"Authorization": "Bearer adm1n-t0ken-for-tests"}
    )
    events = (await answer.json())["events"]
    assert [e["agent_name"] for e in events] == ["Shorts cutter", "Clip cutter", "Clip cutter"]


@pytest.mark.parametrize("status", [500, 404])
async def test_a_failed_or_unknown_lookup_leaves_the_short_id(
    start_relay: Callable[[str], Awaitable[Client]],
    fake_mosaic: FakeMosaic,
    tmp_path: Path,
    status: int,
) -> None:
    if status == 500:
        fake_mosaic.add_agent(AGENT, name="Clip cutter")
        fake_mosaic.fail_next(10, status=500)
    client = await start_relay(names_config(fake_mosaic))
    await post(client, webhook(run_id="run-1"))
    await wait_until(lambda: len(delivered(tmp_path)) == 1)
    await wait_until(lambda: any(call.path == f"/agent/{AGENT}" for call in fake_mosaic.calls))
    await post(client, webhook(run_id="run-2"))
    await wait_until(lambda: len(delivered(tmp_path)) == 2)
    assert all("agent 0b7e2a10" in line["text"] for line in delivered(tmp_path))


async def test_a_route_names_an_agent_by_its_name_in_mosaic(
    start_relay: Callable[[str], Awaitable[Client]], fake_mosaic: FakeMosaic, tmp_path: Path
) -> None:
    fake_mosaic.add_agent(AGENT, name="Clip cutter")
    routes = "  - name: clip-cutter\n    match: {agent: Clip cutter}\n    to: [clips]\n"
    config = names_config(fake_mosaic, routes).replace(
        "channels:\n", "channels:\n  clips:\n    type: file\n    path: clips.jsonl\n", 1
    )
    client = await start_relay(config)
    relay = client.app[RELAY]
    await post(client, webhook(run_id="run-1"))  # the name is not known yet: no match
    await wait_until(lambda: len(delivered(tmp_path)) == 1)
    await wait_until(
        lambda: (
            relay.live.current.api_names is not None
            and relay.live.current.api_names.get(AGENT) == "Clip cutter"
        )
    )
    await post(client, webhook(run_id="run-2"))
    await wait_until(lambda: len(read_jsonl(tmp_path / "clips.jsonl")) == 1)
    assert read_jsonl(tmp_path / "clips.jsonl")[0]["run_id"] == "run-2"
