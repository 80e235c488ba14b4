"""The stale-run watch on a fake clock (the store's and the watch's), with and without the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.events import Event
from relay.ingest import canonical_json
from relay.mosaic.stale import StaleWatch, check_interval
from tests.fakes.mosaic import FakeMosaic
from tests.mosaic.rig import AGENT, Rig, open_rig

STALE_AFTER = 7200.0
TRIGGER = {"type": "manual", "trigger_id": "t1"}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    opened = await open_rig(tmp_path)
    opened.use(None)
    yield opened
    await opened.store.close()


def watch(rig: Rig) -> StaleWatch:
    return StaleWatch(
        rig.store, rig.ingest, rig.current, rig.client, metrics=rig.metrics, clock=rig.clock
    )


async def webhook(rig: Rig, run_id: str = "run-1", **fields: Any) -> None:
    payload = {
        "flag": "RUN_STARTED",
        "agent_id": AGENT,
        "run_id": run_id,
        "status": "running",
        "node_status_counts": {"completed": 7, "in_progress": 3, "failed": 0},
        "triggered_by": TRIGGER,
        **fields,
    }
    await rig.ingest.event(Event.model_validate(payload), canonical_json(payload))


async def test_a_quiet_run_is_reported_stale_once_per_period_from_what_the_relay_knows(
    rig: Rig,
) -> None:
    await webhook(rig)
    watcher = watch(rig)
    rig.now += STALE_AFTER - 1
    assert await watcher.check_once() == []

    rig.now += 61
    assert await watcher.check_once() == ["run-1"]
    assert await watcher.check_once() == []
    rig.now += STALE_AFTER - 1
    assert await watcher.check_once() == []
    rig.now += 2
    assert await watcher.check_once() == ["run-1"]

    first, second = await rig.events("RUN_STALE")
    assert first["_relay"] == {"source": "watch", "silent_for": STALE_AFTER + 60}
    assert second["_relay"]["silent_for"] == 2 * STALE_AFTER + 61  # since the last real news
    assert (first["status"], first["agent_id"], first["triggered_by"]) == (
        "running",
        AGENT,
        TRIGGER,
    )
    assert first["node_status_counts"] == {"completed": 7, "in_progress": 3, "failed": 0}
    assert Event.model_validate(first).source == "watch"
    assert rig.metrics.registry.get_sample_value("relay_stale_runs_total") == 2


async def test_a_run_that_ended_is_never_reported_stale(rig: Rig) -> None:
    await webhook(rig)
    await webhook(rig, flag="RUN_FINISHED", status="completed")
    await webhook(rig, "run-2", flag="RUN_PROGRESS", status="cancelled")
    rig.now += 10 * STALE_AFTER

    assert await watch(rig).check_once() == []


async def test_off_reports_nothing(rig: Rig) -> None:
    await webhook(rig)
    rig.use(None, stale_after="off")
    rig.now += 10 * STALE_AFTER

    assert await watch(rig).check_once() == []


async def test_with_the_api_a_run_that_ended_is_reconciled_instead(
    rig: Rig, fake_mosaic: FakeMosaic
) -> None:
    rig.use(fake_mosaic)
    fake_mosaic.add_run(
        "run-1",
        agent_id=AGENT,
        status="failed",
        node_status_counts={"completed": 7, "in_progress": 0, "failed": 3},
        needs_credits=True,
    )
    await webhook(rig)
    rig.now += STALE_AFTER + 1

    assert await watch(rig).check_once() == []

    [end] = await rig.events("RUN_FINISHED")
    assert end["_relay"] == {"source": "reconciled"}
    assert (end["status"], end["needs_credits"]) == ("failed", True)
    assert end["triggered_by"] == TRIGGER  # the API's run has none: the relay's last known
    assert await rig.events("RUN_STALE") == []
    assert rig.metrics.registry.get_sample_value("relay_runs_recovered_total") == 1
    rig.now += 10 * STALE_AFTER
    assert await watch(rig).check_once() == []


async def test_with_the_api_a_run_still_running_is_stale_with_its_counts_now(
    rig: Rig, fake_mosaic: FakeMosaic
) -> None:
    rig.use(fake_mosaic)
    fake_mosaic.add_run(
        "run-1", agent_id=AGENT, node_status_counts={"completed": 9, "in_progress": 1, "failed": 0}
    )
    await webhook(rig)
    rig.now += STALE_AFTER + 1

    assert await watch(rig).check_once() == ["run-1"]
    [stale] = await rig.events("RUN_STALE")
    assert stale["node_status_counts"] == {"completed": 9, "in_progress": 1, "failed": 0}


async def test_when_the_api_fails_the_watch_reports_from_what_it_knows_after_one_call(
    rig: Rig, fake_mosaic: FakeMosaic
) -> None:
    rig.use(fake_mosaic)
    fake_mosaic.fail_next(10, status=500)
    await webhook(rig, "run-1")
    await webhook(rig, "run-2")
    rig.now += STALE_AFTER + 1

    assert sorted(await watch(rig).check_once()) == ["run-1", "run-2"]
    assert len(fake_mosaic.calls) == 1
    value = rig.metrics.registry.get_sample_value(
        "relay_mosaic_api_errors_total", {"status": "500"}
    )
    assert value == 1


def test_the_check_interval_is_a_tenth_of_stale_after_within_bounds() -> None:
    assert check_interval(7200) == 300
    assert check_interval(600) == 60
    assert check_interval(1) == 1
