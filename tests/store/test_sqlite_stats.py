"""The overview's aggregates in the SQLite store (``sqlite_stats``): exact counts per hour and
per UTC day, rolled up lazily, after restarts, prune and with two stores on one file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.store import JobSpec, NewEvent, SQLiteStore, sqlite_stats
from relay.store.base import AgentRuns, StoreInspector, StoreStats
from relay.store.sqlite import SharedSQLiteStore
from relay.store.sqlite_stats import bucket_value, latency_bucket

NOW = datetime(2026, 11, 30, 10, 30, tzinfo=UTC).timestamp()
"""10:30 UTC: the current hour began at 10:00, the current day at 00:00."""
HOUR = 3600.0
DAY = 86400.0
TODAY = datetime(2026, 11, 30, tzinfo=UTC).timestamp()


def event(n: int, at: float, *, flag: str = "RUN_PROGRESS", status: str = "running",
          agent: str = "agent-a", run: str | None = None) -> NewEvent:  # fmt: skip
    run_id = run or f"run-{n}"
    body = f'{{"flag":"{flag}","run_id":"{run_id}","n":{n}}}'.encode()
    return NewEvent(f"e{n}", f"k{n}", body, flag, run_id, agent, status, at)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "relay.db")
    await opened.open()
    yield opened
    await opened.close()


def series(stats: StoreStats, period: str, what: str) -> dict[str, tuple[int, ...]]:
    chosen = stats.hours if period == "hours" else stats.days
    return dict(getattr(chosen, what).stacks)


async def test_the_sqlite_store_is_a_stats_inspector(store: SQLiteStore) -> None:
    assert isinstance(store, StoreInspector)
    empty = await store.stats(NOW)
    assert len(empty.hours.events.starts) == 24 and len(empty.days.events.starts) == 30
    assert empty.hours.events.starts[-1] == TODAY + 10 * HOUR
    assert empty.days.events.starts[-1] == TODAY
    assert all(sum(v) == 0 for v in series(empty, "days", "events").values())
    assert empty.hours.agents == () and empty.dead_letters == ()


async def test_events_per_hour_and_day_across_boundaries(store: SQLiteStore) -> None:
    times = {
        1: NOW,  # this hour
        2: TODAY + 10 * HOUR,  # this hour's first instant
        3: TODAY + 10 * HOUR - 0.001,  # the hour before
        4: TODAY,  # today's first instant: hour 00
        5: TODAY - 0.001,  # yesterday 23:59:59.999: the oldest hour of 24 is 11:00 yesterday
        6: TODAY - 13 * HOUR,  # yesterday 11:00: in the 24 hours
        7: TODAY - 13 * HOUR - 1,  # yesterday 10:59:59: out of the 24 hours, in the 30 days
        8: TODAY - 29 * DAY,  # the oldest day of 30
        9: TODAY - 29 * DAY - 1,  # out of both
    }
    for n, at in times.items():
        await store.accept(event(n, at), [])
    await store.accept(event(10, NOW, flag="RUN_STARTED"), [])
    await store.accept(event(11, NOW, flag="TEST"), [])
    await store.accept(event(12, NOW, flag="SOMETHING_NEW"), [])
    stats = await store.stats(NOW)
    hours = series(stats, "hours", "events")
    assert hours["RUN_PROGRESS"][-1] == 2 and hours["RUN_PROGRESS"][-2] == 1
    assert hours["RUN_PROGRESS"][-11] == 1  # 00:00 today
    assert hours["RUN_PROGRESS"][-12] == 1  # 23:00 yesterday
    assert hours["RUN_PROGRESS"][0] == 1  # 11:00 yesterday (event 6; event 7 is out)
    assert sum(hours["RUN_PROGRESS"]) == 6
    assert hours["RUN_STARTED"][-1] == 1 and hours["other"][-1] == 2
    assert "TEST" not in hours and set(hours) == {
        "RUN_STARTED",
        "RUN_PROGRESS",
        "RUN_FINISHED",
        "other",
    }
    days = series(stats, "days", "events")
    assert days["RUN_PROGRESS"][-1] == 4  # 1, 2, 3, 4
    assert days["RUN_PROGRESS"][-2] == 3  # 5, 6, 7
    assert days["RUN_PROGRESS"][0] == 1  # 8 (9 is out)
    assert sum(days["RUN_PROGRESS"]) == 8


async def test_failure_rate_per_agent_counts_finished_runs(store: SQLiteStore) -> None:
    outcomes = [("agent-a", "completed"), ("agent-a", "failed"), ("agent-a", "partial_complete"),
                ("agent-a", "completed"), ("agent-b", "completed"), ("agent-b", "cancelled")]  # fmt: skip
    for n, (agent, status) in enumerate(outcomes):
        await store.accept(event(n, NOW - n, flag="RUN_FINISHED", status=status, agent=agent), [])
    await store.accept(event(50, NOW, flag="RUN_PROGRESS", status="failed", agent="agent-c"), [])
    await store.accept(event(51, NOW - 2 * DAY, flag="RUN_FINISHED", status="failed"), [])
    stats = await store.stats(NOW)
    assert stats.hours.agents == (
        AgentRuns("agent-a", finished=4, failed=1, partial=1),
        AgentRuns("agent-b", finished=2, failed=0, partial=0),
    )
    assert stats.hours.agents[0].failure_rate == 0.5
    assert stats.days.agents[0] == AgentRuns("agent-a", finished=5, failed=2, partial=1)


async def test_deliveries_latency_and_dead_letters(store: SQLiteStore) -> None:
    at = TODAY + 9 * HOUR + 1800  # 09:30: the hour before NOW's
    specs = [JobSpec("slack", "r"), JobSpec("mail", "r")]
    for n in range(4):
        await store.accept(event(n, at + n, run=f"run-{n}"), specs)
    jobs = await store.claim(now=at + 10, lease=60, limit=10)
    slack = [j for j in jobs if j.channel == "slack"]
    mail = [j for j in jobs if j.channel == "mail"]
    latencies = [0.2, 1.0, 2.0, 40.0]
    for job, seconds in zip(slack, latencies, strict=True):
        await store.mark_sent(job.id, now=job.created_at + seconds)
    await store.mark_retry(mail[0].id, next_attempt_at=NOW, error="503", now=NOW - 60)
    await store.mark_retry(mail[1].id, next_attempt_at=NOW, error="429", now=NOW - 60,
                           count_attempt=False)  # fmt: skip
    await store.mark_dead(mail[2].id, error="400", now=NOW - 30)
    await store.mark_dead(mail[3].id, error="400", now=NOW - 30)
    stats = await store.stats(NOW)
    hours = series(stats, "hours", "deliveries")
    assert hours["sent"][-2] == 4 and sum(hours["sent"]) == 4
    assert hours["retry"][-1] == 1  # the 429 wait is not a counted retry
    assert hours["dead"][-1] == 2
    assert series(stats, "days", "deliveries")["sent"][-1] == 4
    assert stats.dead_letters == (("mail", 2),)
    (latency,) = stats.hours.latency
    assert latency.channel == "slack" and latency.sent == 4
    assert latency.p50 == pytest.approx(1.0, rel=0.1)  # nearest rank: the 2nd of 4
    assert latency.p95 == pytest.approx(40.0, rel=0.1)
    assert stats.days.latency == stats.hours.latency


@pytest.mark.parametrize("seconds", [0.0004, 0.001, 0.0015, 0.2, 1.0, 2.0, 59.9, 3600.0, 86400.0])
def test_latency_buckets_are_within_nine_percent(seconds: float) -> None:
    estimate = bucket_value(latency_bucket(seconds))
    if seconds <= 0.001:
        assert estimate <= 0.001
    else:
        assert abs(estimate - seconds) / seconds <= 0.091


async def test_rollups_survive_a_restart_and_count_new_rows_once(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    first = SQLiteStore(path)
    await first.open()
    for n in range(5):
        await first.accept(event(n, NOW - n * HOUR), [])
    before = await first.stats(NOW)
    await first.close()
    again = SQLiteStore(path)
    await again.open()
    try:
        assert await again.stats(NOW) == before
        await again.accept(event(9, NOW), [])  # past the marks: counted live, then rolled up
        after = await again.stats(NOW)
        assert series(after, "hours", "events")["RUN_PROGRESS"][-1] == 2
        assert await again.stats(NOW) == after
    finally:
        await again.close()


async def test_rolls_up_in_chunks(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_stats, "CHUNK", 3)
    for n in range(10):
        await store.accept(event(n, NOW - n * 60, flag="RUN_FINISHED", status="failed"), [])
    stats = await store.stats(NOW)
    assert sum(series(stats, "hours", "events")["RUN_FINISHED"]) == 10
    assert stats.hours.agents == (AgentRuns("agent-a", finished=10, failed=10, partial=0),)


async def test_counts_stay_after_prune(store: SQLiteStore) -> None:
    for n in range(6):
        await store.accept(event(n, NOW - n * DAY, flag="RUN_FINISHED", status="completed"),
                           [JobSpec("slack", "r")])  # fmt: skip
        (job,) = await store.claim(now=NOW, lease=60, limit=1)
        await store.mark_sent(job.id, now=NOW - n * DAY + 1.5)
    assert await store.prune(older_than=NOW - 2.5 * DAY) == 3  # nothing counted before
    stats = await store.stats(NOW)
    assert sum(series(stats, "days", "events")["RUN_FINISHED"]) == 6
    assert sum(series(stats, "days", "deliveries")["sent"]) == 6
    assert stats.days.agents == (AgentRuns("agent-a", finished=6, failed=0, partial=0),)
    assert stats.days.latency[0].sent == 6
    assert len(await store.list_events(limit=50)) == 3


async def test_two_stores_on_one_file_share_the_rollups(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    a, b = SharedSQLiteStore(path), SharedSQLiteStore(path)
    await a.open()
    await b.open()
    try:
        for n in range(6):
            writer, reader = (a, b) if n % 2 else (b, a)
            await writer.accept(event(n, NOW - n * 60), [])
            assert sum(series(await reader.stats(NOW), "hours", "events")["RUN_PROGRESS"]) == n + 1
        stats_a, stats_b = await a.stats(NOW), await b.stats(NOW)
        assert stats_a == stats_b
        assert sum(series(stats_a, "days", "events")["RUN_PROGRESS"]) == 6
    finally:
        await a.close()
        await b.close()


async def test_prune_forgets_rollups_no_period_shows(store: SQLiteStore) -> None:
    await store.accept(event(1, NOW - 40 * DAY, flag="RUN_FINISHED", status="failed"), [])
    await store.accept(event(2, NOW - 29 * DAY, flag="RUN_FINISHED", status="failed"), [])
    await store.accept(event(3, NOW, flag="RUN_FINISHED", status="failed"), [])
    await store.prune(older_than=0)  # deletes no event; counts them, then trims the rollups
    hours = await store._read(lambda c: c.execute("SELECT hour FROM stats_runs").fetchall())
    assert sorted(h for (h,) in hours) == [int((NOW - 29 * DAY) // DAY) * 24, int(NOW // HOUR)]
    stats = await store.stats(NOW)
    assert stats.days.agents == (AgentRuns("agent-a", finished=2, failed=2, partial=0),)


async def test_old_days_are_folded_into_one_row_per_day(store: SQLiteStore) -> None:
    old_day = TODAY - 5 * DAY
    for n, at in enumerate(
        [old_day + 1, old_day + 5 * HOUR, old_day + 23 * HOUR, TODAY - 2 * HOUR, NOW]
    ):
        await store.accept(event(n, at), [])
    stats = await store.stats(NOW)
    rows = await store._read(lambda c: c.execute("SELECT hour, n FROM stats_events").fetchall())
    assert sorted(rows) == [
        (int(old_day // HOUR), 3),  # one row for the whole day
        (int((TODAY - 2 * HOUR) // HOUR), 1),  # yesterday stays by the hour
        (int(NOW // HOUR), 1),
    ]
    days = series(stats, "days", "events")["RUN_PROGRESS"]
    assert days[-6] == 3 and days[-2] == 1 and days[-1] == 1
    hours = series(stats, "hours", "events")["RUN_PROGRESS"]
    assert hours[-1] == 1 and hours[-13] == 1 and sum(hours) == 2
