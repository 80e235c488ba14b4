"""The SQLite store's write statements keep their invariants: one head per (run, channel), the
oldest open job; dedup by key; each job's log holds its newest ``MAX_LOG`` entries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from relay.store import Job, SQLiteStore, StoreError, sqlite
from tests.store.conftest import new_event, specs

LEASE = 30.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "relay.db"


# The shared ``store`` fixture (tests/store/conftest.py), on its SQLite backend: tmp_path/relay.db.
pytestmark = pytest.mark.parametrize("make_store", ["sqlite"], indirect=True)


def heads(db: Path) -> dict[tuple[str, str], list[int]]:
    """(run, channel) -> the ids with ``head = 1``, checking that no finished job has one."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT run_id, channel, id, state FROM jobs WHERE head = 1").fetchall()
    finally:
        conn.close()
    assert all(state in ("pending", "inflight") for *_, state in rows), rows
    found: dict[tuple[str, str], list[int]] = {}
    for run_id, channel, key, _ in rows:
        found.setdefault((run_id, channel), []).append(key)
    return found


def oldest_open(db: Path) -> dict[tuple[str, str], list[int]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            """SELECT run_id, channel, min(id) FROM jobs WHERE state IN ('pending', 'inflight')
                GROUP BY run_id, channel"""
        ).fetchall()
    finally:
        conn.close()
    return {(run_id, channel): [key] for run_id, channel, key in rows}


async def take(store: SQLiteStore, now: float, event_id: str, channel: str = "c") -> Job:
    """Claim the job of ``event_id`` on ``channel``, giving back the others claimed with it."""
    jobs = await store.claim(now=now, lease=LEASE, limit=100)
    [job] = [j for j in jobs if (j.event_id, j.channel) == (event_id, channel)]
    for other in jobs:
        if other is not job:
            await store.release(other.id)
    return job


async def test_the_head_is_the_oldest_open_job_after_every_write(
    store: SQLiteStore, db: Path
) -> None:
    for i in range(5):
        await store.accept(new_event(f"e{i}", run_id="r", at=1000.0 + i), specs("c", "d"))
        assert heads(db) == oldest_open(db)
    e0 = await take(store, 1010.0, "e0")
    await store.mark_dead(e0.id, error="bad request", now=1010.0)  # hands over to e1
    assert heads(db) == oldest_open(db)
    e1 = await take(store, 1011.0, "e1")
    assert await store.replay(e0.id, now=1012.0) == 1  # e0 is the head again, e1 still inflight
    assert heads(db) == oldest_open(db)
    await store.mark_sent(e1.id, now=1013.0)  # not the head: the head stays e0
    assert heads(db)[("r", "c")] == [int(e0.id)]
    assert heads(db) == oldest_open(db)
    e0 = await take(store, 1014.0, "e0")
    await store.mark_sent(e0.id, now=1015.0)  # e2 next
    assert heads(db) == oldest_open(db)
    e2 = await take(store, 1016.0, "e2")
    record = await store.get_event("e3")
    assert record is not None
    e3 = next(j for j in record.jobs if j.channel == "c")
    await store.mark_sent(e3.id, now=1017.0)  # a pending job behind the head may be sent
    assert heads(db)[("r", "c")] == [int(e2.id)]
    await store.mark_dead(e2.id, error="gone", now=1018.0)  # over e3 (sent) to e4
    assert heads(db) == oldest_open(db)
    e4 = await take(store, 1019.0, "e4")
    await store.mark_sent(e4.id, now=1020.0)
    assert ("r", "c") not in heads(db)
    assert heads(db) == oldest_open(db)


async def test_a_job_finished_twice_changes_nothing_the_second_time(
    store: SQLiteStore, db: Path
) -> None:
    for i in range(2):
        await store.accept(new_event(f"e{i}", run_id="r", at=1000.0 + i), specs("c"))
    job = await take(store, 1010.0, "e0")
    await store.mark_sent(job.id, now=1011.0)
    await store.mark_sent(job.id, now=1012.0)
    await store.mark_dead(job.id, error="late", now=1013.0)

    record = await store.get_event("e0")
    assert record is not None
    [stored] = record.jobs
    assert (stored.state, stored.attempts) == ("sent", 1)
    assert [a.outcome for a in stored.log] == ["sent"]
    assert heads(db) == oldest_open(db)


async def test_a_duplicate_key_answers_the_first_event_even_under_its_id(
    store: SQLiteStore,
) -> None:
    await store.accept(new_event("e1", dedup_key="k"), specs("c"))

    again = await store.accept(new_event("e1", dedup_key="k"), specs("c"))
    other = await store.accept(new_event("e2", dedup_key="k"), specs("c"))

    assert (again.event_id, again.duplicate) == ("e1", True)
    assert (other.event_id, other.duplicate) == ("e1", True)
    assert [j.event_id for j in await store.claim(now=2000.0, lease=LEASE, limit=10)] == ["e1"]


async def test_an_event_id_stored_under_another_key_is_refused(store: SQLiteStore) -> None:
    await store.accept(new_event("e1", dedup_key="k1"), specs("c"))

    with pytest.raises(StoreError, match="UNIQUE"):
        await store.accept(new_event("e1", dedup_key="k2"), specs("c"))

    assert (await store.accept(new_event("e3", dedup_key="k2"), specs("c"))).duplicate is False


async def test_the_log_keeps_the_newest_entries_across_replays(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "MAX_LOG", 4)
    await store.accept(new_event("e1", at=1000.0), specs("c"))
    now = 1000.0
    for round_ in range(3):  # each: retry, dead, replayed (attempts restart at 0 each time)
        job = await take(store, now, "e1")
        await store.mark_retry(job.id, next_attempt_at=now, error=f"retry {round_}", now=now)
        job = await take(store, now, "e1")
        await store.mark_dead(job.id, error=f"dead {round_}", now=now)
        await store.replay(job.id, now=now)
        now += 1
    job = await take(store, now, "e1")
    await store.mark_sent(job.id, now=now)

    record = await store.get_event("e1")
    assert record is not None
    [stored] = record.jobs
    assert [(a.outcome, a.error) for a in stored.log] == [
        ("retry", "retry 2"),
        ("dead", "dead 2"),
        ("replayed", None),
        ("sent", None),
    ]
    assert stored.attempts == 1  # counted since the last replay: no bound on the log's length
