"""A ``store`` fixture per backend: add a backend by adding a factory to ``FACTORIES``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from relay.store import JobSpec, NewEvent, RedisStore, SQLiteStore, Store
from tests.redis_server import RedisServer, redis_namespace, redis_server  # noqa: F401

StoreFactory = Callable[[], Store]
"""Makes a new, unopened store on the same data (to reopen after ``close``)."""


def _sqlite(request: pytest.FixtureRequest) -> StoreFactory:
    path: Path = request.getfixturevalue("tmp_path") / "relay.db"
    return lambda: SQLiteStore(path)


def _redis(request: pytest.FixtureRequest) -> StoreFactory:
    server: RedisServer = request.getfixturevalue("redis_server")
    namespace: str = request.getfixturevalue("redis_namespace")
    return lambda: RedisStore(server.url, namespace=namespace, sync=server.sync)


FACTORIES: dict[str, Callable[[pytest.FixtureRequest], StoreFactory]] = {
    "sqlite": _sqlite,
    "redis": _redis,
}
"""Backend name -> factory; a factory asks ``request`` for the fixtures it needs."""


@pytest.fixture(params=sorted(FACTORIES))
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    return FACTORIES[request.param](request)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    opened = make_store()
    await opened.open()
    yield opened
    await opened.close()


def new_event(
    event_id: str,
    *,
    run_id: str = "run-1",
    at: float = 1000.0,
    dedup_key: str | None = "",
    flag: str = "RUN_PROGRESS",
    status: str = "running",
) -> NewEvent:
    """An event whose dedup key defaults to ``key-<event_id>``; ``dedup_key=None`` = never dedup."""
    key = f"key-{event_id}" if dedup_key == "" else dedup_key
    body = f'{{"flag":"{flag}","run_id":"{run_id}","n":"{event_id}"}}'.encode()
    return NewEvent(event_id, key, body, flag, run_id, "agent-1", status, at)


def specs(*channels: str, route: str = "route-1") -> Sequence[JobSpec]:
    return [JobSpec(channel, route) for channel in channels]
