"""What only the SQLite store does: files, pragmas, group commit, crash safety, URLs."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store import (
    AcceptResult,
    JobSpec,
    RedisStore,
    SQLiteStore,
    StoreError,
    open_store,
    sqlite,
)
from tests.store.conftest import new_event, specs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "relay.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(db)
    await opened.open()
    yield opened
    await opened.close()


def lock_writes(db: Path) -> sqlite3.Connection:
    """Hold the database's write lock from another connection until ``ROLLBACK``."""
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


# --- files and pragmas -------------------------------------------------------------------------


async def test_create_false_refuses_a_missing_store(db: Path) -> None:
    store = SQLiteStore(db, create=False)

    with pytest.raises(StoreError, match="does not exist"):
        await store.open()

    assert not await asyncio.to_thread(db.exists)
    await store.close()


async def test_create_false_opens_an_existing_store(db: Path) -> None:
    first = SQLiteStore(db)
    await first.open()
    await first.accept(new_event("e1"), specs("c"))
    await first.close()

    second = SQLiteStore(db, create=False)
    await second.open()
    try:
        assert (await second.accept(new_event("e2", dedup_key="key-e1"), [])).duplicate
    finally:
        await second.close()


async def test_a_file_that_is_not_a_store_is_refused(db: Path) -> None:
    await asyncio.to_thread(db.write_bytes, b"not a database, just some bytes" * 100)

    with pytest.raises(StoreError, match="cannot open store"):
        await SQLiteStore(db).open()


async def test_a_newer_schema_is_refused(store: SQLiteStore, db: Path) -> None:
    await store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (sqlite.SCHEMA_VERSION + 1,))
    conn.close()

    with pytest.raises(StoreError, match="schema version"):
        await SQLiteStore(db).open()


async def test_the_store_runs_in_wal_mode(store: SQLiteStore, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.parametrize(("sync", "level"), [("full", 2), ("normal", 1)])
async def test_sync_sets_the_writers_synchronous_pragma(db: Path, sync: str, level: int) -> None:
    store = open_store(f"sqlite:///{db.name}", db.parent, sync=sync)
    assert isinstance(store, SQLiteStore)
    await store.open()
    try:
        pragma = await store._write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert pragma == level
    finally:
        await store.close()


# --- group commit ------------------------------------------------------------------------------


async def test_queued_writes_share_a_commit(store: SQLiteStore, db: Path) -> None:
    before = store.commits
    blocker = lock_writes(db)
    try:
        tasks = [
            asyncio.create_task(store.accept(new_event(f"e{i}", run_id=f"r{i}"), specs("c")))
            for i in range(200)
        ]
        await asyncio.sleep(0)
        assert store.commits == before
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    results = await asyncio.gather(*tasks)

    assert all(not r.duplicate for r in results)
    assert store.commits - before <= 2
    assert store.largest_batch >= 100
    jobs = await store.claim(now=2000.0, lease=1, limit=500)
    assert len(jobs) == 200


async def test_a_failing_write_does_not_fail_its_batch(store: SQLiteStore, db: Path) -> None:
    await store.accept(new_event("taken"), [])
    before = store.commits
    broken = [JobSpec(None, "r")]  # type: ignore[arg-type]  # violates NOT NULL
    blocker = lock_writes(db)
    try:
        tasks = [
            asyncio.create_task(store.accept(new_event("good1", run_id="a"), specs("c"))),
            asyncio.create_task(store.accept(new_event("bad", run_id="b"), specs("c") + broken)),
            asyncio.create_task(store.accept(new_event("good2", run_id="c"), specs("c"))),
            asyncio.create_task(store.accept(new_event("taken", dedup_key="other"), [])),
        ]
        await asyncio.sleep(0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert store.commits - before <= 2
    assert [type(r) for r in results] == [
        AcceptResult,
        StoreError,
        AcceptResult,
        StoreError,
    ]
    jobs = await store.claim(now=2000.0, lease=1, limit=10)
    assert sorted(j.event_id for j in jobs) == ["good1", "good2"]
    assert not (await store.accept(new_event("bad2", dedup_key="key-bad"), [])).duplicate


async def test_close_finishes_the_queued_writes(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    tasks = [
        asyncio.create_task(store.accept(new_event(f"e{i}", run_id=f"r{i}"), specs("c")))
        for i in range(50)
    ]
    await asyncio.sleep(0)

    await store.close()

    assert all(not result.duplicate for result in await asyncio.gather(*tasks))
    reopened = SQLiteStore(db, create=False)
    await reopened.open()
    try:
        assert len(await reopened.claim(now=2000.0, lease=1, limit=100)) == 50
    finally:
        await reopened.close()


# --- crash safety ------------------------------------------------------------------------------

ACCEPT_FOREVER = """
import asyncio, sys, time
from pathlib import Path
from relay.store import JobSpec, NewEvent, SQLiteStore

async def writer(store, w):
    for i in range(10**9):
        eid = f"w{w}-{i}"
        event = NewEvent(eid, "key-" + eid, b"{}", "RUN_PROGRESS", eid, "a", "running", time.time())
        await store.accept(event, [JobSpec("c", "r")])
        print(eid, flush=True)

async def main():
    store = SQLiteStore(Path(sys.argv[1]), sync=sys.argv[2])
    await store.open()
    await asyncio.gather(*(writer(store, w) for w in range(16)))

asyncio.run(main())
"""


@pytest.mark.parametrize("sync", ["full", "normal"])
async def test_every_returned_accept_survives_sigkill(db: Path, sync: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ACCEPT_FOREVER, str(db), sync,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    acked: list[str] = []
    try:
        async with asyncio.timeout(30):
            while len(acked) < 300:
                line = await proc.stdout.readline()
                if not line.endswith(b"\n"):
                    break
                acked.append(line.decode().strip())
    finally:
        proc.kill()
    rest = await proc.stdout.read()
    errors = await proc.stderr.read()
    await proc.wait()
    acked += [line.decode() for line in rest.split(b"\n")[:-1]]
    assert len(acked) >= 300, errors.decode()

    store = SQLiteStore(db, create=False)
    await store.open()
    try:
        results = await asyncio.gather(
            *(store.accept(new_event("again", dedup_key=f"key-{eid}"), []) for eid in acked)
        )
    finally:
        await store.close()
    assert [(r.event_id, r.duplicate) for r in results] == [(eid, True) for eid in acked]


# --- queries -----------------------------------------------------------------------------------


async def test_claim_reads_only_the_heads_index(store: SQLiteStore, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sqlite.CLAIM_SQL, (0, 1))]
    finally:
        conn.close()
    assert any("USING INDEX jobs_due" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_retries_and_waits_are_logged_at_the_time_the_caller_gives(
    store: SQLiteStore,
) -> None:
    """Like sent and dead entries: a fake clock in the dispatcher shows in the attempt log."""
    await store.accept(new_event("e1", at=1000.0), specs("c"))
    [job] = await store.claim(now=1000.0, lease=30.0, limit=1)
    await store.mark_retry(job.id, next_attempt_at=1010.0, error="HTTP 503", now=1001.0)
    [job] = await store.claim(now=1010.0, lease=30.0, limit=1)
    await store.mark_retry(
        job.id, next_attempt_at=1020.0, error="429", count_attempt=False, now=1011.0
    )
    record = await store.get_event("e1")
    assert record is not None
    assert [(a.at, a.outcome, a.error) for a in record.jobs[0].log] == [
        (1001.0, "retry", "HTTP 503"),
        (1011.0, "wait", "429"),
    ]


async def test_prune_pages_through_ties(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "PRUNE_CHUNK", 3)
    for i in range(10):
        await store.accept(new_event(f"e{i}", run_id=f"r{i}", at=1000.0), specs("c"))
    jobs = {j.event_id: j for j in await store.claim(now=1000.0, lease=1, limit=20)}
    for event_id, job in jobs.items():
        if event_id in ("e2", "e3", "e7"):
            await store.mark_dead(job.id, error="x", now=1000.0)
        else:
            await store.mark_sent(job.id, now=1000.0)

    assert await store.prune(older_than=1001.0) == 7

    assert sorted(j.event_id for j in await store.dead_letters()) == ["e2", "e3", "e7"]
    assert {(s.state, s.count) for s in await store.status()} == {("dead", 3)}


# --- open_store --------------------------------------------------------------------------------


def test_open_store_resolves_relative_and_absolute_paths(tmp_path: Path) -> None:
    relative = open_store("sqlite:///data/relay.db", tmp_path, sync="full")
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db", Path("elsewhere"), sync="normal")
    read_only = open_store("sqlite:///relay.db", tmp_path, sync="full", create=False)

    assert isinstance(relative, SQLiteStore)
    assert (relative.path, relative.sync, relative.create) == (
        tmp_path / "data" / "relay.db",
        "full",
        True,
    )
    assert isinstance(absolute, SQLiteStore)
    assert (absolute.path, absolute.sync) == (tmp_path / "abs.db", "normal")
    assert isinstance(read_only, SQLiteStore)
    assert not read_only.create


def test_open_store_gives_a_redis_store_for_redis_urls() -> None:
    store = open_store("redis://:hunter2@127.0.0.1:6379/0", Path("."), sync="full")
    assert isinstance(store, RedisStore)
    assert "hunter2" not in repr(store)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:hunter2@db/relay", "unknown store url scheme 'mysql'"),
        ("sqlite://hunter2/relay.db", "must look like"),
        ("sqlite:///", "must look like"),
        ("sqlite:///relay.db?mode=ro", "must look like"),
        ("relay.db", "must look like"),
        ("hunter2:pw@host://x", "must look like"),
    ],
)
def test_open_store_refuses_other_urls_without_repeating_them(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        open_store(url, Path("."), sync="full")
    assert "hunter2" not in str(info.value)


def test_open_store_refuses_an_unknown_sync() -> None:
    with pytest.raises(StoreError, match="'full' or 'normal'"):
        open_store("sqlite:///relay.db", Path("."), sync="sometimes")


async def test_a_store_made_before_runs_remembered_their_start_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at REAL NOT NULL) WITHOUT ROWID"
    )
    conn.execute("INSERT INTO runs VALUES ('r', 1.0)")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.accept(new_event("e1", run_id="r", flag="RUN_STARTED", at=5.0), specs("a"))
        (job,) = await store.claim(now=10.0, lease=60, limit=10)
        assert job.run_started_at == 5.0
    finally:
        await store.close()
