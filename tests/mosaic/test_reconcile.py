"""The reconciler against FakeMosaic and a real SQLite store, on a fake clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from relay.events import TERMINAL_STATUSES, Event
from relay.ingest import canonical_json
from relay.mosaic.reconcile import Reconciler
from relay.mosaic.settings import ReconcileSettings
from tests.fakes.mosaic import FakeMosaic
from tests.mosaic.rig import AGENT, NOW, Rig, open_rig

HOUR = timedelta(hours=1)
FAILED_COUNTS = {"completed": 6, "in_progress": 0, "failed": 2}


@pytest.fixture
async def rig(tmp_path: Path, fake_mosaic: FakeMosaic) -> AsyncIterator[Rig]:
    opened = await open_rig(tmp_path)
    opened.use(fake_mosaic)
    yield opened
    await opened.store.close()


def reconciler(rig: Rig) -> Reconciler:
    return Reconciler(
        rig.store, rig.ingest, rig.current, rig.client, metrics=rig.metrics, clock=rig.clock
    )


def add_failed_run(fake: FakeMosaic, run_id: str = "run-failed", ago: timedelta = HOUR) -> None:
    fake.add_run(
        run_id,
        agent_id=AGENT,
        created_at=NOW - ago - HOUR,
        updated_at=NOW - ago,
        status="failed",
        status_message="Render node ran out of credits",
        node_status_counts=FAILED_COUNTS,
        needs_credits=True,
        errors=["node 3f1a: insufficient credits"],
        triggered_by={"type": "manual", "trigger_id": "t1"},
    )


def metric(rig: Rig, name: str, **labels: str) -> float:
    return rig.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_run_end_never_received_is_ingested_as_reconciled(
    rig: Rig, fake_mosaic: FakeMosaic
) -> None:
    add_failed_run(fake_mosaic)
    fake_mosaic.add_run("still-running", agent_id=AGENT, created_at=NOW - HOUR)

    report = await reconciler(rig).run_once()

    assert (report.result, report.recovered, report.listed) == ("ok", ["run-failed"], 1)
    [event] = await rig.events()
    assert event["_relay"] == {"source": "reconciled"}
    assert Event.model_validate(event).source == "reconciled"
    assert event["flag"] == "RUN_FINISHED" and event["status"] == "failed"
    assert event["node_status_counts"] == FAILED_COUNTS
    assert event["status_message"] == "Render node ran out of credits"
    assert event["needs_credits"] is True  # asked GET /agent_run for the failed run
    assert event["errors"] == ["node 3f1a: insufficient credits"]
    assert event["triggered_by"]["type"] == "manual"
    assert rig.notified  # the dispatcher is woken like for a webhook
    assert metric(rig, "relay_runs_recovered_total") == 1
    assert metric(rig, "relay_reconcile_passes_total", result="ok") == 1


async def test_a_run_end_already_received_is_not_ingested_again(
    rig: Rig, fake_mosaic: FakeMosaic
) -> None:
    add_failed_run(fake_mosaic)
    webhook = {
        "flag": "RUN_FINISHED",
        "agent_id": AGENT,
        "run_id": "run-failed",
        "status": "failed",
        "node_status_counts": FAILED_COUNTS,
        "outputs": [],
    }
    await rig.ingest.event(Event.model_validate(webhook), canonical_json(webhook))

    report = await reconciler(rig).run_once()

    assert report.recovered == []
    assert len(await rig.events()) == 1


async def test_unchanged_runs_cost_no_store_lookup_and_a_restart_repeats_nothing(
    rig: Rig, fake_mosaic: FakeMosaic, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_failed_run(fake_mosaic)
    first = reconciler(rig)
    await first.run_once()
    lookups: list[int] = []
    original = rig.store.known_dedup_keys

    async def counting(keys: list[str]) -> set[str]:
        lookups.append(len(keys))
        return await original(keys)

    monkeypatch.setattr(rig.store, "known_dedup_keys", counting)
    rig.now += 300
    assert (await first.run_once()).recovered == []
    assert lookups == []  # same updated_at: skipped without asking the store

    restarted = reconciler(rig)  # a new process: nothing in memory, the store remembers
    assert (await restarted.run_once()).recovered == []
    assert lookups == [1]
    assert len(await rig.events()) == 1


async def test_a_resumed_run_that_ends_again_with_other_counts_is_a_new_end(
    rig: Rig, fake_mosaic: FakeMosaic
) -> None:
    add_failed_run(fake_mosaic)
    watcher = reconciler(rig)
    await watcher.run_once()
    fake_mosaic.update_run(
        "run-failed",
        status="completed",
        node_status_counts={"completed": 8, "in_progress": 0, "failed": 0},
        updated_at=NOW + timedelta(minutes=1),
    )
    rig.now += 600

    assert (await watcher.run_once()).recovered == ["run-failed"]
    assert [e["status"] for e in await rig.events("RUN_FINISHED")] == ["failed", "completed"]


async def test_a_run_that_ended_moments_ago_waits_for_its_webhook(
    rig: Rig, fake_mosaic: FakeMosaic
) -> None:
    add_failed_run(fake_mosaic, ago=timedelta(seconds=5))
    watcher = reconciler(rig)

    assert (await watcher.run_once()).recovered == []
    rig.now += 300
    assert (await watcher.run_once()).recovered == ["run-failed"]


async def test_each_pass_covers_the_whole_lookback_window(
    rig: Rig, fake_mosaic: FakeMosaic
) -> None:
    add_failed_run(fake_mosaic, "inside", ago=timedelta(hours=20))
    add_failed_run(fake_mosaic, "outside", ago=timedelta(hours=30))

    report = await reconciler(rig).run_once()

    assert report.recovered == ["inside"]
    [listing] = fake_mosaic.calls_for("GET /agent_runs")
    assert set(listing.body["status"].split(",")) == TERMINAL_STATUSES


async def test_a_dry_run_reports_and_ingests_nothing(rig: Rig, fake_mosaic: FakeMosaic) -> None:
    add_failed_run(fake_mosaic)
    watcher = reconciler(rig)

    assert (await watcher.run_once(dry_run=True)).recovered == ["run-failed"]
    assert await rig.events() == []
    assert watcher.last is None
    assert (await watcher.run_once()).recovered == ["run-failed"]


async def test_off_without_a_key_or_when_turned_off(rig: Rig, fake_mosaic: FakeMosaic) -> None:
    add_failed_run(fake_mosaic)
    rig.use(None)
    assert (await reconciler(rig).run_once()).result == "off"
    rig.use(fake_mosaic, reconcile="off")
    assert (await reconciler(rig).run_once()).result == "off"
    assert fake_mosaic.calls == []


async def test_a_refused_key_is_logged_once_as_a_configuration_error(
    rig: Rig, fake_mosaic: FakeMosaic, caplog: pytest.LogCaptureFixture
) -> None:
    fake_mosaic.keys.clear()
    watcher = reconciler(rig)
    with caplog.at_level(logging.WARNING, logger="relay.reconcile"):
        assert (await watcher.run_once()).result == "auth_error"
        rig.now += 300
        assert (await watcher.run_once()).result == "auth_error"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "configuration error" in errors[0].getMessage()
    assert metric(rig, "relay_mosaic_api_errors_total", status="401") == 2


@pytest.mark.parametrize("status", [429, 500])
async def test_an_api_that_fails_is_a_warning_and_the_next_pass_recovers(
    rig: Rig, fake_mosaic: FakeMosaic, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    add_failed_run(fake_mosaic)
    fake_mosaic.fail_next(status=status)
    watcher = reconciler(rig)
    with caplog.at_level(logging.WARNING, logger="relay.reconcile"):
        report = await watcher.run_once()
    assert report.result == "unavailable" and report.recovered == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert metric(rig, "relay_mosaic_api_errors_total", status=str(status)) == 1
    assert metric(rig, "relay_reconcile_passes_total", result="unavailable") == 1

    rig.now += 300
    assert (await watcher.run_once()).recovered == ["run-failed"]


async def test_an_unreachable_api_is_counted_as_such(rig: Rig, fake_mosaic: FakeMosaic) -> None:
    await fake_mosaic.go_down(refuse=True)

    assert (await reconciler(rig).run_once()).result == "unavailable"
    assert metric(rig, "relay_mosaic_api_errors_total", status="unreachable") == 1


async def test_another_replica_holding_the_lease_skips_the_pass(
    rig: Rig, fake_mosaic: FakeMosaic, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def held(name: str, *, ttl: float) -> bool:
        assert (name, ttl) == ("reconcile", 300.0)
        return False

    monkeypatch.setattr(rig.store, "take_lease", held)
    assert (await reconciler(rig).run_once()).result == "skipped"
    assert fake_mosaic.calls == []


async def test_the_settings_are_read_at_each_pass(rig: Rig, fake_mosaic: FakeMosaic) -> None:
    add_failed_run(fake_mosaic, ago=timedelta(hours=30))
    watcher = reconciler(rig)
    assert (await watcher.run_once()).recovered == []
    rig.use(fake_mosaic, reconcile=ReconcileSettings(interval=60, lookback=48 * 3600))
    assert (await watcher.run_once()).recovered == ["run-failed"]


async def test_api_calls_of_a_pass_over_1000_runs(
    rig: Rig, fake_mosaic: FakeMosaic, capsys: pytest.CaptureFixture[str]
) -> None:
    """800 completed, 100 failed and 100 running runs in the lookback window."""
    for n in range(1000):
        status = "completed" if n < 800 else "failed" if n < 900 else "running"
        ago = timedelta(minutes=5 + n)
        fake_mosaic.add_run(
            f"run-{n:04}", agent_id=AGENT, created_at=NOW - ago, updated_at=NOW - ago, status=status
        )
    watcher = reconciler(rig)

    first = await watcher.run_once()  # nothing stored: every end is recovered
    rig.now += 300
    second = await watcher.run_once()  # nothing changed
    restarted = await reconciler(rig).run_once()  # a new process, every end stored

    with capsys.disabled():
        print(
            f"\nAPI calls per pass over 1000 runs (900 ended): first {first.api_calls} "
            f"(recovered {len(first.recovered)}), unchanged {second.api_calls}, "
            f"after a restart {restarted.api_calls}"
        )
    assert len(first.recovered) == 900
    assert first.api_calls == 9 + 100  # 9 pages of 100, GET /agent_run per failed run recovered
    assert second.api_calls == restarted.api_calls == 9
    assert second.recovered == restarted.recovered == []
