"""Several processes on one SQLite file: leases, shared rate limits, opening a fresh file
together, and two OS processes accepting and delivering from one queue."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store import SharedSQLiteStore, SQLiteStore, StoreError, open_store, sqlite
from relay.store.base import SharedRateLimits
from tests.delivery.test_ratelimit import BUCKET_CASES, BucketCase, assert_one_bucket_shared
from tests.store.conftest import new_event, specs

ROOT = Path(__file__).resolve().parents[2]
T0 = 1000.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "relay.db"


@pytest.fixture
async def workers(db: Path) -> AsyncIterator[tuple[SharedSQLiteStore, SharedSQLiteStore]]:
    """Two stores on one file, as two worker processes have."""
    a, b = SharedSQLiteStore(db), SharedSQLiteStore(db)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


# --- leases ------------------------------------------------------------------------------------


async def test_a_lease_is_held_by_one_store_until_it_expires(
    workers: tuple[SharedSQLiteStore, SharedSQLiteStore],
) -> None:
    a, b = workers
    assert await a.take_lease("reconcile", ttl=60.0, now=T0)
    assert not await b.take_lease("reconcile", ttl=60.0, now=T0 + 1)
    assert not await b.take_lease("reconcile", ttl=60.0, now=T0 + 59.9)
    assert await b.take_lease("stale", ttl=60.0, now=T0 + 1)  # another job, another lease

    assert await b.take_lease("reconcile", ttl=60.0, now=T0 + 60)
    assert not await a.take_lease("reconcile", ttl=60.0, now=T0 + 61)


async def test_the_holder_renews_its_lease(
    workers: tuple[SharedSQLiteStore, SharedSQLiteStore],
) -> None:
    """A lone process always gets it; the holder asking a bit early keeps it from the others."""
    a, b = workers
    assert await a.take_lease("reconcile", ttl=60.0, now=T0)
    assert await a.take_lease("reconcile", ttl=60.0, now=T0 + 59.9)

    assert not await b.take_lease("reconcile", ttl=60.0, now=T0 + 100)
    assert await b.take_lease("reconcile", ttl=60.0, now=T0 + 119.9)


async def test_a_lease_outlives_its_holder_and_is_kept_in_the_file(db: Path) -> None:
    a = SQLiteStore(db)
    await a.open()
    assert await a.take_lease("reconcile", ttl=60.0, now=T0)
    await a.close()

    b = SQLiteStore(db)
    await b.open()
    try:
        assert not await b.take_lease("reconcile", ttl=60.0, now=T0 + 30)
        assert await b.take_lease("reconcile", ttl=60.0, now=T0 + 60)
    finally:
        await b.close()


async def test_a_lease_defaults_to_the_wall_clock(
    workers: tuple[SharedSQLiteStore, SharedSQLiteStore],
) -> None:
    a, b = workers
    assert await a.take_lease("reconcile", ttl=600.0)
    assert not await b.take_lease("reconcile", ttl=600.0)


# --- shared rate limits ------------------------------------------------------------------------


@pytest.mark.parametrize("case", BUCKET_CASES.values(), ids=BUCKET_CASES.keys())
async def test_token_bucket_follows_the_in_process_rules(
    workers: tuple[SharedSQLiteStore, SharedSQLiteStore], case: BucketCase
) -> None:
    """The table the in-process limiter and the Redis script pass, taking turns on two stores."""
    waits = [
        await workers[i % 2].acquire_rate("k", case.per_second, case.burst, case.start + at)
        for i, (at, _) in enumerate(case.tries)
    ]
    assert waits == pytest.approx([wait for _, wait in case.tries])


async def test_workers_share_one_token_bucket_per_destination(
    workers: tuple[SharedSQLiteStore, SharedSQLiteStore],
) -> None:
    await assert_one_bucket_shared(*workers, T0)


async def test_acquire_rate_refuses_a_bucket_that_never_fills(
    workers: tuple[SharedSQLiteStore, SharedSQLiteStore],
) -> None:
    with pytest.raises(ValueError, match="per_second"):
        await workers[0].acquire_rate("k", 0.0, 1, T0)
    with pytest.raises(ValueError, match="burst"):
        await workers[0].acquire_rate("k", 1.0, 0, T0)


def test_open_store_shares_rate_limits_only_with_several_workers(tmp_path: Path) -> None:
    single = open_store("sqlite:///relay.db", tmp_path, sync="full")
    shared = open_store("sqlite:///relay.db", tmp_path, sync="normal", workers=4, create=False)

    assert type(single) is SQLiteStore
    assert not isinstance(single, SharedRateLimits)
    assert isinstance(shared, SharedSQLiteStore)
    assert isinstance(shared, SharedRateLimits)
    assert (shared.path, shared.sync, shared.create) == (tmp_path / "relay.db", "normal", False)


# --- opening one fresh file together -----------------------------------------------------------


async def test_a_fresh_file_being_set_up_elsewhere_is_waited_for(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite refuses to switch a file to WAL at once (no busy wait) while another connection
    writes it: the open tries again instead of failing."""
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    waits: list[float] = []

    def pause(seconds: float) -> None:
        if not waits:
            other.execute("ROLLBACK")
        waits.append(seconds)

    monkeypatch.setattr(sqlite, "_pause", pause)
    store = SQLiteStore(db)
    try:
        await store.open()
        await store.accept(new_event("e1"), specs("c"))
    finally:
        await store.close()
        other.close()
    assert waits


def test_connections_opening_a_fresh_file_at_once_all_succeed(tmp_path: Path) -> None:
    """The race itself (before the fix, about one round in twenty failed). Threads stand in for
    processes: SQLite locks each connection on its own either way."""
    errors: list[str] = []
    for round_ in range(20):
        path = tmp_path / f"fresh-{round_}.db"
        start = threading.Barrier(4)

        def connect(path: Path = path, start: threading.Barrier = start) -> None:
            store = SQLiteStore(path, sync="normal")
            start.wait()
            try:
                writer, reader, _ = store._connect()
            except StoreError as exc:
                errors.append(str(exc))
            else:
                writer.close()
                reader.close()

        threads = [threading.Thread(target=connect) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []


# --- two processes on one queue ----------------------------------------------------------------

WORKER = """
import asyncio, os, sys, time
from pathlib import Path
from relay.store import JobSpec, NewEvent, SharedSQLiteStore

RUNS, CHANNELS = 6, ("a", "b")


async def accept_all(store, me, events):
    async def one(i):
        eid = f"p{me}-{i}"
        event = NewEvent(eid, "key-" + eid, b"{}", "RUN_PROGRESS", f"r{i % RUNS}", "agent",
                         "running", time.time())
        await store.accept(event, [JobSpec(channel, "route") for channel in CHANNELS])
        print("accepted", eid, flush=True)
    for start in range(0, events, 10):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 10, events))))


def hold(marks, job):
    # One marker file per (run, channel) while one of its jobs is claimed: O_EXCL fails if
    # another job of the same run and channel is claimed (by either process).
    key = marks / f"{job.run_id}.{job.channel}"
    try:
        os.close(os.open(f"{key}.open", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        print("OVERLAP", job.id, flush=True)
        return None
    last = Path(f"{key}.last")
    before = int(last.read_text()) if last.exists() else 0
    if int(job.id) <= before:  # job ids grow in acceptance order
        print("ORDER", job.id, "after", before, flush=True)
    last.write_text(job.id)
    return Path(f"{key}.open")


async def main(path, me, events, total, marks):
    store = SharedSQLiteStore(Path(path), sync="normal")
    await store.open()
    accepting = asyncio.create_task(accept_all(store, me, events))
    skips = [(), ("a",), ("b",)]
    deadline = time.monotonic() + 30
    turn = 0
    while time.monotonic() < deadline:
        turn += 1
        jobs = await store.claim(now=time.time(), lease=600.0, limit=4,
                                 exclude_channels=skips[turn % 3])
        held = []
        for job in jobs:
            print("claimed", job.id, flush=True)
            held.append(hold(marks, job))
        await asyncio.sleep(0)
        for job, marker in zip(jobs, held):
            if marker is not None:
                marker.unlink()  # before the send is recorded: then the next may be claimed
            await store.mark_sent(job.id, now=time.time())
        if not jobs and accepting.done():
            sent = sum(s.count for s in await store.status() if s.state == "sent")
            if sent == total:
                break
    else:
        print("TIMEOUT", flush=True)
    await accepting
    await store.close()


asyncio.run(main(sys.argv[2], sys.argv[1], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])))
"""


async def test_two_processes_deliver_every_job_once_in_order(db: Path, tmp_path: Path) -> None:
    events, processes = 150, 2
    total = events * processes * 2
    marks = tmp_path / "marks"
    await asyncio.to_thread(marks.mkdir)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    pipe = asyncio.subprocess.PIPE
    args = [str(arg) for arg in (db, events, total, marks)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, str(me), *args, stdout=pipe, stderr=pipe, env=env
        )
        for me in range(processes)
    ]
    try:
        async with asyncio.timeout(60):
            outputs = [await proc.communicate() for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    lines = [line.split() for out, _ in outputs for line in out.decode().splitlines()]
    errors = "\n".join(err.decode() for _, err in outputs)
    assert [proc.returncode for proc in procs] == [0] * processes, errors

    problems = [line for line in lines if line[0] in ("OVERLAP", "ORDER", "TIMEOUT")]
    assert problems == []
    accepted = [line[1] for line in lines if line[0] == "accepted"]
    claimed = Counter(line[1] for line in lines if line[0] == "claimed")
    assert len(accepted) == events * processes
    assert len(claimed) == total
    assert set(claimed.values()) == {1}  # never claimed twice
    store = SQLiteStore(db, create=False)
    await store.open()
    try:
        assert {(s.channel, s.state, s.count) for s in await store.status()} == {
            ("a", "sent", total // 2),
            ("b", "sent", total // 2),
        }
        stored = [await store.get_event(eid) for eid in accepted]
        assert all(record is not None and len(record.jobs) == 2 for record in stored)
    finally:
        await store.close()
