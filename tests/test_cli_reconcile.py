"""``relay reconcile --once [--dry-run]`` against FakeMosaic and a SQLite store."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relay.cli import main
from relay.store import SQLiteStore
from tests.conftest import BASE_CONFIG
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic

AGENT = "123e4567-e89b-12d3-a456-789012345678"


def write_config(tmp_path: Path, mosaic: str) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(BASE_CONFIG + mosaic)
    return path


def with_api(fake: FakeMosaic) -> str:
    return f"mosaic:\n  api_key: {DEFAULT_KEY}\n  api_url: {fake.url}\n"


async def relay(*argv: str) -> int:
    """The CLI in a thread (it runs its own event loop; the fake answers on this one)."""
    return await asyncio.to_thread(main, list(argv))


async def create_store(folder: Path) -> None:
    """The store a relay made when it served (store commands never create one)."""
    store = SQLiteStore(folder / "relay.db")
    await store.open()
    await store.close()


async def stored_events(db: Path) -> list[dict[str, object]]:
    store = SQLiteStore(db, create=False)
    await store.open()
    try:
        records = await store.list_events()
        events = [await store.get_event(r.event_id) for r in records]
        return [json.loads(e.body) for e in events if e is not None and e.body is not None]
    finally:
        await store.close()


@pytest.fixture
def failed_run(fake_mosaic: FakeMosaic) -> str:
    ended = datetime.now(UTC) - timedelta(minutes=10)
    fake_mosaic.add_run(
        "run-missed", agent_id=AGENT, created_at=ended, updated_at=ended, status="failed"
    )
    return "run-missed"


async def test_a_dry_run_prints_what_it_would_recover_and_stores_nothing(
    tmp_path: Path,
    fake_mosaic: FakeMosaic,
    failed_run: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, with_api(fake_mosaic))
    await create_store(tmp_path)

    assert await relay("reconcile", "--once", "--dry-run", "-c", str(config)) == 0

    out = capsys.readouterr().out
    assert "would recover 1 run end(s)" in out and f"would recover run {failed_run}" in out
    assert await stored_events(tmp_path / "relay.db") == []

    assert await relay("reconcile", "--once", "-c", str(config)) == 0
    out = capsys.readouterr().out
    assert f"recovered run {failed_run}" in out
    [event] = await stored_events(tmp_path / "relay.db")
    assert event["_relay"] == {"source": "reconciled"} and event["run_id"] == failed_run

    assert await relay("reconcile", "--once", "-c", str(config)) == 0
    assert "recovered 0 run end(s)" in capsys.readouterr().out


async def test_without_an_api_key_or_once_it_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "")
    assert await relay("reconcile", "--once", "-c", str(config)) == 1
    assert "mosaic.api_key is not set" in capsys.readouterr().err
    assert await relay("reconcile", "-c", str(config)) == 1
    assert "--once" in capsys.readouterr().err


async def test_an_api_error_is_a_one_line_failure(
    tmp_path: Path, fake_mosaic: FakeMosaic, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, with_api(fake_mosaic))
    await create_store(tmp_path)
    fake_mosaic.keys.clear()

    assert await relay("reconcile", "--once", "-c", str(config)) == 1
    err = capsys.readouterr().err
    assert "reconciliation failed (auth_error)" in err and DEFAULT_KEY not in err
