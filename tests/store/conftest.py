"""A ``store`` fixture per backend: add a backend by adding a factory to ``FACTORIES``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from relay.store import JobSpec, NewEvent, SQLiteStore, Store

StoreFactory = Callable[[], Store]
"""Makes a new, unopened store on the same data (to reopen after ``close``)."""


def _sqlite(tmp_path: Path) -> StoreFactory:
    path = tmp_path / "relay.db"
    return lambda: SQLiteStore(path)


FACTORIES: dict[str, Callable[[Path], StoreFactory]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(FACTORIES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    return FACTORIES[request.param](tmp_path)


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
