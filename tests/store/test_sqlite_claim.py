"""The SQLite claim with channels to skip: the same jobs as a walk over every due head, read per
channel so that a saturated channel's backlog is never walked."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store import Job, SQLiteStore, sqlite
from tests.store.conftest import new_event, specs

T0 = 1000.0
CHANNELS = ("alpha", "busy", "c", "d")

WALK_SQL = sqlite.CLAIM_SQL.replace("ORDER BY", "AND j.channel NOT IN ({}) ORDER BY")
"""The claim before channels were read one by one: every due head, skipping the excluded."""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "relay.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(db, sync="normal")
    await opened.open()
    yield opened
    await opened.close()


def walk(conn: sqlite3.Connection, now: float, limit: int, excluded: list[str]) -> list[str]:
    sql = WALK_SQL.format(", ".join("?" * len(excluded)))
    return [str(row[0]) for row in conn.execute(sql, (now, *excluded, limit))]


@pytest.mark.parametrize("seed", range(6))
async def test_claim_takes_the_jobs_a_walk_over_every_head_takes(
    store: SQLiteStore, db: Path, seed: int
) -> None:
    """Random accepts, claims (some channels skipped, some leases expiring), sends, retries,
    dead letters and replays: every claim returns what the walk finds, in its order."""
    rng = random.Random(seed)
    reader = sqlite3.connect(db)
    inflight: list[Job] = []
    claims = skipping = 0
    now = T0
    try:
        for step in range(400):
            now += rng.choice([0.0, 0.5, 1.0])  # ties on due_at are ordered by id
            roll = rng.random()
            if roll < 0.4:
                event = new_event(f"e{step}", run_id=f"r{rng.randrange(10)}", at=now)
                await store.accept(event, specs(*rng.sample(CHANNELS, rng.randint(1, 3))))
            elif roll < 0.75:
                at = now + rng.uniform(-3, 30)  # some leases and retries are due, some not
                limit = rng.randint(1, 8)
                excluded = rng.sample([*CHANNELS, "unknown"], rng.randint(0, 3))
                expected = walk(reader, at, limit, excluded)
                jobs = await store.claim(
                    now=at, lease=rng.uniform(1, 20), limit=limit, exclude_channels=excluded
                )
                assert [job.id for job in jobs] == expected, (step, excluded)
                assert all(job.state == "inflight" for job in jobs)
                inflight += jobs
                claims += 1
                skipping += bool(excluded and expected)
            elif roll < 0.97 and inflight:
                job = inflight.pop(rng.randrange(len(inflight)))
                outcome = rng.choice(["sent", "sent", "retry", "dead", "release"])
                if outcome == "sent":
                    await store.mark_sent(job.id, now=now)
                elif outcome == "retry":
                    later = now + rng.uniform(0, 10)
                    await store.mark_retry(job.id, next_attempt_at=later, error="x", now=now)
                elif outcome == "dead":
                    await store.mark_dead(job.id, error="x", now=now)
                else:
                    await store.release(job.id)
            else:
                await store.replay(None, now=now)
    finally:
        reader.close()
    assert claims > 100 and skipping > 30  # the comparison was made often, and not on nothing


# --- cost ----------------------------------------------------------------------------------------


async def backlog(store: SQLiteStore, busy: int, other: int) -> None:
    """``busy`` runs queued on channel ``busy`` (each its own head), then ``other`` runs on each
    of two other channels: the busy channel's jobs are the most overdue."""
    runs = [("busy", i) for i in range(busy)]
    runs += [(channel, i) for channel in ("alpha", "d") for i in range(other)]
    for start in range(0, len(runs), 500):
        await asyncio.gather(
            *(
                store.accept(new_event(f"{c}-{i}", run_id=f"{c}-{i}", at=T0 + n), specs(c))
                for n, (c, i) in enumerate(runs[start : start + 500], start)
            )
        )


def vm_steps(db: Path, run: str, *, limit: int) -> tuple[int, int]:
    """SQLite VM instructions one claim skipping ``busy`` runs (``run``: ``claim`` or ``walk``),
    and how many jobs it took; rolled back."""
    conn = sqlite3.connect(db, isolation_level=None)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.set_progress_handler(count, 1)
        if run == "claim":
            taken = len(sqlite._claim(conn, T0 + 10**6, T0 + 2 * 10**6, limit, ("busy",)))
        else:
            taken = len(walk(conn, T0 + 10**6, limit, ["busy"]))
        conn.set_progress_handler(None, 1)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return steps, taken


async def test_a_claim_skipping_a_saturated_channel_does_not_read_its_backlog(
    db: Path, tmp_path: Path
) -> None:
    """Counted in SQLite VM instructions, so the figure does not depend on the machine: with 40
    times the backlog the per-channel claim costs the same (1,756 steps both), the walk over
    every head 20 times as much (1,007 -> 20,507)."""
    steps: dict[tuple[int, str], int] = {}
    for busy in (100, 4000):
        path = tmp_path / f"backlog-{busy}.db"
        store = SQLiteStore(path, sync="normal")
        await store.open()
        try:
            await backlog(store, busy=busy, other=20)
        finally:
            await store.close()
        for run in ("claim", "walk"):
            steps[busy, run], taken = vm_steps(path, run, limit=10)
            assert taken == 10

    assert steps[4000, "claim"] < 1.2 * steps[100, "claim"], steps
    assert steps[4000, "walk"] > 10 * steps[100, "walk"], steps  # what the count would show


async def test_the_per_channel_claim_reads_only_its_index(store: SQLiteStore, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        for sql, args in [
            (sqlite._FIRST_CHANNEL_SQL, ()),
            (sqlite._NEXT_CHANNEL_SQL, ("a",)),
            (sqlite._CHANNEL_HEADS_SQL, ("a", T0, 10)),
        ]:
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
            assert plan and all("USING INDEX jobs_channel_due" in step for step in plan), plan
            assert not any("TEMP B-TREE" in step for step in plan), plan
    finally:
        conn.close()
