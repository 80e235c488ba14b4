"""The embedded store: one SQLite file in WAL mode, written by one thread with group commit.

Every write is a function the writer thread (``sqlite_writer``) runs on its own connection, many
in one transaction: N concurrent accepts cost one fsync, and a failing write undoes only itself.
Reads use a second connection in a worker thread; the event loop never waits on SQLite.

Every ``mark_*`` and ``replay`` also appends to the job's attempt log (same write), which the
web UI reads through the ``StoreInspector`` methods (``sqlite_inspect``).

Per (run_id, channel) exactly the oldest unfinished job has ``head = 1``, and ``due_at`` says when
a job may be claimed (``next_attempt_at`` when pending, the lease's end when inflight). A partial
index on ``(due_at, id) WHERE head = 1`` keeps ``claim`` independent of the backlog's size; one
on ``(channel, due_at, id) WHERE head = 1`` does the same when channels are skipped (a saturated
channel's backlog is never walked to find another channel's jobs).

A ``JobSpec`` with ``hold`` is a row of the ``held`` table instead of a job (``sqlite_held``).

Several processes may share the file (``SharedSQLiteStore``, one per worker): SQLite serialises
their writers (each batch is one ``BEGIN IMMEDIATE`` transaction), so the head-of-line claim,
dedup, the ``leases`` of periodic jobs and the ``rate_buckets`` hold across processes.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from relay.store.base import (
    AcceptResult,
    ActionRecord,
    AgentName,
    ChannelStatus,
    Counts,
    EventFilter,
    EventRecord,
    HeldEntry,
    HeldGroup,
    Job,
    JobSpec,
    NewEvent,
    QuietRun,
    RunDetail,
    RunFilter,
    RunPage,
    StoreError,
    StoreStats,
)
from relay.store.sqlite_actions import (
    ACTIONS_SCHEMA,
    claim_once,
    list_actions,
    prune_actions,
    record_action,
)
from relay.store.sqlite_held import (
    HELD_SCHEMA,
    drop_held,
    held_groups,
    hold_specs,
    prune_held,
    take_held,
)
from relay.store.sqlite_inspect import count_states, get_event, list_events
from relay.store.sqlite_runs import get_run, list_runs
from relay.store.sqlite_stats import STATS_SCHEMA, prune_stats, read_stats, roll_up
from relay.store.sqlite_writer import Op, Writer

if TYPE_CHECKING:
    from relay.store.sqlite_turn import Turn

__all__ = ["SQLiteStore", "SharedSQLiteStore"]

T = TypeVar("T")
SCHEMA_VERSION = 1
STARTED = "RUN_STARTED"
PRUNE_CHUNK = 1000
MAX_LOG = 100
"""Attempt-log entries kept per job (the newest)."""
BUSY_TIMEOUT_S = 10.0
BUSY_RETRY_S = 0.002
_OPEN = "state IN ('pending', 'inflight')"
_MAX_JOB_KEY = 2**63 - 1
"""SQLite's largest integer (a row id never goes past it)."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    dedup_key TEXT UNIQUE,
    body BLOB NOT NULL,
    flag TEXT NOT NULL,
    run_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    start_seen_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    route TEXT NOT NULL,
    template TEXT,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    age_from REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    due_at REAL,
    head INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due_at, id) WHERE head = 1;
CREATE INDEX IF NOT EXISTS jobs_channel_due ON jobs (channel, due_at, id) WHERE head = 1;
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (run_id, channel, id) WHERE {_OPEN};
CREATE INDEX IF NOT EXISTS jobs_event ON jobs (event_seq);
CREATE INDEX IF NOT EXISTS jobs_dead ON jobs (id) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS refs (
    run_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (run_id, channel)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cards (
    run_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (run_id, channel)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agent_names (
    agent_id TEXT PRIMARY KEY,
    name TEXT,
    fetched_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    rendered TEXT
);
CREATE INDEX IF NOT EXISTS attempts_job ON attempts (job_id, id);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated REAL NOT NULL
) WITHOUT ROWID;
{HELD_SCHEMA};{ACTIONS_SCHEMA};{STATS_SCHEMA}"""

_JOB_COLUMNS = """j.id, e.event_id, j.run_id, j.channel, j.route, j.template, j.mode, j.state,
    j.attempts, j.created_at, j.next_attempt_at, j.last_error, e.body,
    r.start_seen_at, j.age_from"""
_JOB_FROM = """jobs j JOIN events e ON e.seq = j.event_seq
    LEFT JOIN runs r ON r.run_id = j.run_id"""
CLAIM_SQL = f"""SELECT {_JOB_COLUMNS} FROM {_JOB_FROM}
    WHERE j.head = 1 AND j.due_at <= ? ORDER BY j.due_at, j.id LIMIT ?"""
"""Due heads, most overdue first (for jobs never retried that is acceptance order)."""
_FIRST_CHANNEL_SQL = "SELECT min(channel) FROM jobs WHERE head = 1"
_NEXT_CHANNEL_SQL = "SELECT min(channel) FROM jobs WHERE head = 1 AND channel > ?"
_CHANNEL_HEADS_SQL = """SELECT due_at, id FROM jobs WHERE head = 1 AND channel = ? AND due_at <= ?
    ORDER BY due_at, id LIMIT ?"""
"""One channel's due heads in ``CLAIM_SQL``'s order, through ``jobs_channel_due``."""
_JOBS_BY_ID_SQL = f"SELECT {_JOB_COLUMNS} FROM {_JOB_FROM} WHERE j.id IN ({{}})"
_TAKE_LEASE_SQL = """INSERT INTO leases (name, owner, until) VALUES (?1, ?2, ?3)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
    WHERE leases.owner = excluded.owner OR leases.until <= ?4"""
"""Taken when free, expired or already the caller's (renewed); changes no row otherwise."""
_ENDED = (
    "flag = 'RUN_FINISHED' OR status IN ('completed', 'partial_complete', 'failed', 'cancelled')"
)
QUIET_RUNS_SQL = f"""SELECT e.run_id, e.agent_id, e.received_at, e.body
    FROM (SELECT run_id, max(seq) AS last, max({_ENDED}) AS ended FROM events
        WHERE flag NOT IN ('TEST', 'DIGEST') GROUP BY run_id) r
    JOIN events e ON e.seq = r.last
    WHERE r.ended = 0 AND e.received_at < ? ORDER BY e.received_at LIMIT ?"""
"""Runs with no end stored, by their last event (quietest first); TEST and DIGEST events (the
relay's own) are no run's."""
KEYS_PER_QUERY = 500
_PRUNE_SESSIONS_SQL = "DELETE FROM sessions WHERE expires_at < ?"
"""Logins that ended more than a retention ago (an expired one is refused long before)."""


class SQLiteStore:
    """``Store`` on one SQLite file. ``create=False`` refuses a file that does not exist."""

    def __init__(
        self, path: Path, *, sync: Literal["full", "normal"] = "full", create: bool = True
    ) -> None:
        if sync not in ("full", "normal"):
            raise StoreError(f"store sync must be 'full' or 'normal', not {sync!r}")
        self.path = path
        self.sync = sync
        self.create = create
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._owner = secrets.token_hex(8)
        """Who holds this store's leases (each instance, hence each process, is another)."""

    @property
    def commits(self) -> int:
        """Transactions committed by the writer since ``open`` (one per batch)."""
        return self._writer.commits if self._writer else 0

    @property
    def largest_batch(self) -> int:
        """The most writes one commit has carried since ``open``."""
        return self._writer.largest_batch if self._writer else 0

    @property
    def queued_writes(self) -> int:
        """Writes waiting for the writer thread."""
        return self._writer.queued if self._writer else 0

    async def open(self) -> None:
        if self._reader is not None:
            return
        writer_conn, self._reader, turn = await asyncio.to_thread(self._connect)
        self._writer = Writer(writer_conn, turn)

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._reader = None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if reader is not None:
            await asyncio.to_thread(self._close_reader, reader)

    async def ping(self) -> None:
        if self._writer is None or not self._writer.alive:
            raise StoreError("store is not open")
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def accept(self, event: NewEvent, jobs: Sequence[JobSpec]) -> AcceptResult:
        specs = tuple(jobs)
        return await self._write(lambda c: _accept(c, event, specs))

    async def claim(
        self, *, now: float, lease: float, limit: int, exclude_channels: Collection[str] = ()
    ) -> list[Job]:
        if limit <= 0:
            return []
        excluded = tuple(exclude_channels)
        return await self._write(lambda c: _claim(c, now, now + lease, limit, excluded))

    async def mark_sent(self, job_id: str, *, now: float, rendered: str | None = None) -> None:
        await self._write(lambda c: _finish(c, job_id, "sent", now, None, rendered))

    async def mark_retry(
        self,
        job_id: str,
        *,
        next_attempt_at: float,
        error: str,
        now: float,
        count_attempt: bool = True,
    ) -> None:
        await self._write(
            lambda c: _retry(c, _job_key(job_id), next_attempt_at, error, count_attempt, now)
        )

    async def mark_dead(self, job_id: str, *, error: str, now: float) -> None:
        await self._write(lambda c: _finish(c, job_id, "dead", now, error))

    async def release(self, job_id: str) -> None:
        sql = """UPDATE jobs SET state = 'pending', due_at = next_attempt_at
            WHERE id = ? AND state = 'inflight'"""
        await self._write(lambda c: _execute(c, sql, (_job_key(job_id),)))

    async def next_due_at(self) -> float | None:
        """When ``claim`` may next find work: the earliest due head (pending: its
        ``next_attempt_at``; inflight: its lease's end). Jobs queued behind a head do not count."""
        sql = "SELECT min(due_at) FROM jobs WHERE head = 1"
        return cast(float | None, await self._read(lambda c: c.execute(sql).fetchone()[0]))

    async def dead_letters(self, limit: int = 100) -> list[Job]:
        """Oldest first."""
        sql = f"SELECT {_JOB_COLUMNS} FROM {_JOB_FROM} WHERE j.state = 'dead' ORDER BY j.id LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, (limit,)).fetchall())
        return [_job(row) for row in rows]

    async def replay(self, job_id: str | None, *, now: float) -> int:
        return await self._write(lambda c: _replay(c, job_id, now))

    async def status(self) -> list[ChannelStatus]:
        sql = """SELECT channel, state, count(*), min(created_at) FROM jobs
            GROUP BY channel, state ORDER BY channel, state"""
        rows = await self._read(lambda c: c.execute(sql).fetchall())
        return [ChannelStatus(*row) for row in rows]

    async def prune(self, *, older_than: float) -> int:
        """Works in chunks, each its own write, so accepts are never held up for long. The
        overview's rollups first count what it may delete."""
        await self._roll_up()
        await self._write(prune_stats)
        deleted, cursor = 0, (float("-inf"), -1)
        while True:
            count, last = await self._write(
                partial(_prune_chunk, older_than=older_than, after=cursor)
            )
            deleted += count
            if last is None:
                break
            cursor = last
        await self._write(lambda c: _prune_runs(c, older_than))
        await self._write(lambda c: _execute(c, _PRUNE_SESSIONS_SQL, (older_than,)))
        await self._write(lambda c: prune_held(c, older_than))
        await self._write(lambda c: prune_actions(c, older_than, time.time()))
        return deleted

    async def get_ref(self, run_id: str, channel: str) -> tuple[str, str] | None:
        sql = "SELECT channel_id, message_id FROM refs WHERE run_id = ? AND channel = ?"
        row = await self._read(lambda c: c.execute(sql, (run_id, channel)).fetchone())
        return None if row is None else (row[0], row[1])

    async def put_ref(self, run_id: str, channel: str, channel_id: str, message_id: str) -> None:
        sql = """INSERT INTO refs (run_id, channel, channel_id, message_id) VALUES (?, ?, ?, ?)
            ON CONFLICT (run_id, channel) DO UPDATE
            SET channel_id = excluded.channel_id, message_id = excluded.message_id"""
        args = (run_id, channel, channel_id, message_id)
        await self._write(lambda c: _execute(c, sql, args))

    async def get_card_state(self, run_id: str, channel: str) -> str | None:
        sql = "SELECT state FROM cards WHERE run_id = ? AND channel = ?"
        row = await self._read(lambda c: c.execute(sql, (run_id, channel)).fetchone())
        return None if row is None else cast(str, row[0])

    async def put_card_state(self, run_id: str, channel: str, state: str) -> None:
        sql = """INSERT INTO cards (run_id, channel, state) VALUES (?, ?, ?)
            ON CONFLICT (run_id, channel) DO UPDATE SET state = excluded.state"""
        await self._write(lambda c: _execute(c, sql, (run_id, channel, state)))

    async def put_session(self, key: str, data: str, *, expires_at: float) -> None:
        sql = "INSERT OR REPLACE INTO sessions (key, data, expires_at) VALUES (?, ?, ?)"
        await self._write(lambda c: _execute(c, sql, (key, data, expires_at)))

    async def get_session(self, key: str, *, now: float) -> str | None:
        sql = "SELECT data FROM sessions WHERE key = ? AND expires_at > ?"
        row = await self._read(lambda c: c.execute(sql, (key, now)).fetchone())
        return None if row is None else cast(str, row[0])

    async def delete_session(self, key: str) -> None:
        await self._write(lambda c: _execute(c, "DELETE FROM sessions WHERE key = ?", (key,)))

    async def list_events(
        self, *, limit: int = 50, before: int | None = None, where: EventFilter | None = None
    ) -> list[EventRecord]:
        return await self._read(lambda c: list_events(c, limit, before, where or EventFilter()))

    async def get_event(self, event_id: str) -> EventRecord | None:
        return await self._read(lambda c: get_event(c, event_id))

    async def counts(self) -> Counts:
        return await self._read(count_states)

    async def list_runs(
        self, *, limit: int = 50, before: str | None = None, where: RunFilter | None = None
    ) -> RunPage:
        return await self._read(lambda c: list_runs(c, limit, before, where or RunFilter()))

    async def get_run(self, run_id: str) -> RunDetail | None:
        return await self._read(lambda c: get_run(c, run_id))

    async def has_newer(self, job: Job) -> bool:
        sql = f"""SELECT 1 FROM jobs WHERE run_id = ? AND channel = ? AND id > ? AND {_OPEN}
            LIMIT 1"""
        args = (job.run_id, job.channel, _job_key(job.id))
        return bool(await self._read(lambda c: c.execute(sql, args).fetchone()))

    async def known_dedup_keys(self, keys: Collection[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(wanted), KEYS_PER_QUERY):
            found |= await self._read(
                partial(_known_keys, keys=wanted[start : start + KEYS_PER_QUERY])
            )
        return found

    async def quiet_runs(self, *, before: float, limit: int = 1000) -> list[QuietRun]:
        rows = await self._read(lambda c: c.execute(QUIET_RUNS_SQL, (before, limit)).fetchall())
        return [QuietRun(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    async def held_groups(self) -> list[HeldGroup]:
        return await self._read(held_groups)

    async def take_held(self, group: str, *, before: float, key: str) -> list[HeldEntry]:
        """Taken rows remember ``before`` as when they were taken (``prune`` counts from it)."""
        return await self._write(lambda c: take_held(c, group, before, key))

    async def taken_keys(self) -> list[str]:
        sql = "SELECT DISTINCT taken FROM held WHERE taken IS NOT NULL ORDER BY taken"
        return await self._read(lambda c: [row[0] for row in c.execute(sql)])

    async def drop_held(self, key: str) -> None:
        await self._write(lambda c: drop_held(c, key))

    async def take_lease(self, name: str, *, ttl: float, now: float | None = None) -> bool:
        """Granted for ``ttl`` seconds from ``now`` (default: the wall clock) when ``name`` is
        free, expired or already held by this store (renewed), so that among processes sharing
        the file one holds it at a time, and a lone process always gets it."""
        at = time.time() if now is None else now
        args = (name, self._owner, at + ttl, at)
        return await self._write(lambda c: c.execute(_TAKE_LEASE_SQL, args).rowcount == 1)

    async def claim_once(self, key: str, *, ttl: float, now: float | None = None) -> bool:
        """Taken for ``ttl`` seconds from ``now`` (default: the wall clock) when ``key`` is
        free or its claim has expired; one write, so one caller wins across processes."""
        at = time.time() if now is None else now
        return await self._write(lambda c: claim_once(c, key, at, ttl))

    async def record_action(self, record: ActionRecord) -> None:
        await self._write(lambda c: record_action(c, record))

    async def list_actions(
        self, *, run_id: str | None = None, limit: int = 100
    ) -> list[ActionRecord]:
        return await self._read(lambda c: list_actions(c, run_id, limit))

    async def agent_names(self) -> dict[str, AgentName]:
        sql = "SELECT agent_id, name, fetched_at FROM agent_names"
        rows = await self._read(lambda c: c.execute(sql).fetchall())
        return {row[0]: AgentName(row[1], row[2]) for row in rows}

    async def put_agent_name(self, agent_id: str, name: AgentName) -> None:
        sql = """INSERT INTO agent_names (agent_id, name, fetched_at) VALUES (?, ?, ?)
            ON CONFLICT (agent_id) DO UPDATE
            SET name = excluded.name, fetched_at = excluded.fetched_at"""
        await self._write(lambda c: _execute(c, sql, (agent_id, name.name, name.fetched_at)))

    async def stats(self, now: float) -> StoreStats:
        """The overview's aggregates (``sqlite_stats``), rolled up to date first."""
        await self._roll_up()
        return await self._read(lambda c: read_stats(c, now))

    async def _roll_up(self) -> None:
        while await self._write(roll_up):
            pass

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None or self._reader is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._writer.submit(Op(fn, loop, future))
        return cast(T, await future)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        reader = self._reader
        if reader is None:
            raise StoreError("store is not open")

        def run() -> T:
            with self._read_lock:
                try:
                    return fn(reader)
                except sqlite3.Error as exc:
                    raise StoreError(f"store read failed: {exc}") from None

        return await asyncio.to_thread(run)

    def _close_reader(self, reader: sqlite3.Connection) -> None:
        with self._read_lock:
            reader.close()

    def _new_turn(self) -> Turn | None:
        """How the writer waits for other processes' writers: SQLite's busy handler alone."""
        return None

    def _connect(self) -> tuple[sqlite3.Connection, sqlite3.Connection, Turn | None]:
        if not self.create and not self.path.is_file():
            raise StoreError(f"store {self.path} does not exist")
        writer: sqlite3.Connection | None = None
        turn: Turn | None = None
        try:
            writer = self._connection()
            mode = _wal_mode(writer)
            if str(mode).lower() != "wal":
                raise StoreError(f"store {self.path} cannot use WAL mode (got {mode})")
            writer.execute(f"PRAGMA synchronous = {self.sync.upper()}")
            turn = self._new_turn()
            _create_schema(writer, self.path, turn)
            return writer, self._connection(), turn
        except (sqlite3.Error, OSError, StoreError) as exc:
            if writer is not None:
                writer.close()
            if turn is not None:
                turn.close()
            if isinstance(exc, StoreError):
                raise
            reason = exc.strerror or exc if isinstance(exc, OSError) else exc
            raise StoreError(
                f"cannot open store {self.path}: {reason}{_open_hint(self.path)}"
            ) from None

    def _connection(self) -> sqlite3.Connection:
        target, uri = str(self.path), False
        if not self.create:
            target, uri = self.path.resolve().as_uri() + "?mode=rw", True
        conn = sqlite3.connect(
            target, uri=uri, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        return conn


class SharedSQLiteStore(SQLiteStore):
    """``SQLiteStore`` for several processes on one file (workers): its writer takes turns with
    theirs (``sqlite_turn``), and it is also ``SharedRateLimits``, with the token buckets in the
    file. Each take is a write, so a lone process is better served by its in-process buckets."""

    def _new_turn(self) -> Turn:
        from relay.store.sqlite_turn import Turn  # POSIX only (flock), as are workers

        return Turn(self.path)

    async def acquire_rate(self, key: str, per_second: float, burst: int, now: float) -> float:
        """Take a token from the bucket ``key`` shared by every process on the file: 0.0 when
        taken, else the seconds until one is available. The bucket starts full (``burst``)."""
        if not per_second > 0 or burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        return await self._write(lambda c: _acquire_rate(c, key, per_second, burst, now))


def _acquire_rate(c: sqlite3.Connection, key: str, rate: float, burst: int, now: float) -> float:
    """``RateLimiter.try_acquire``'s rules exactly, on the bucket's row."""
    row = c.execute("SELECT tokens, updated FROM rate_buckets WHERE key = ?", (key,)).fetchone()
    tokens, updated = (float(burst), now) if row is None else (row[0], row[1])
    tokens = min(float(burst), tokens + max(0.0, now - updated) * rate)
    updated = max(updated, now)  # an earlier clock must not refill it twice
    wait = (1.0 - tokens) / rate
    if tokens >= 1.0 or now + wait <= now:  # ready within the clock's resolution
        tokens, wait = max(0.0, tokens - 1.0), 0.0
    c.execute(
        """INSERT INTO rate_buckets (key, tokens, updated) VALUES (?, ?, ?) ON CONFLICT (key)
            DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated""",
        (key, tokens, updated),
    )
    return wait


def _wal_mode(conn: sqlite3.Connection) -> str:
    """Switch to WAL. On a fresh file that another process is setting up at the same moment,
    SQLite refuses at once (``SQLITE_BUSY`` without waiting, to avoid a deadlock): try again
    until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        _pause(BUSY_RETRY_S)


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _create_schema(conn: sqlite3.Connection, path: Path, turn: Turn | None) -> None:
    if turn is not None:
        turn.take()
    try:
        _create_tables(conn, path)
    finally:
        if turn is not None:
            turn.give()


def _create_tables(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"store {path} has schema version {version}; this relay knows up to "
                f"{SCHEMA_VERSION} (upgrade the relay)"
            )
        for statement in _SCHEMA.split(";"):
            conn.execute(statement)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        if "start_seen_at" not in columns:  # a store made before runs remembered their start
            conn.execute("ALTER TABLE runs ADD COLUMN start_seen_at REAL")
        if version is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _execute(c: sqlite3.Connection, sql: str, args: Sequence[Any]) -> None:
    c.execute(sql, args)


def _known_keys(c: sqlite3.Connection, keys: Sequence[str]) -> set[str]:
    marks = ", ".join("?" * len(keys))
    rows = c.execute(f"SELECT dedup_key FROM events WHERE dedup_key IN ({marks})", keys)
    return {row[0] for row in rows}


def _job_key(job_id: str) -> int:
    """A job id as the table's key; an id that is not ours matches nothing: anything but the
    decimal text the store wrote (no sign, spaces, ``_`` or leading zero), or past SQLite's
    64-bit integers (which it could not even bind)."""
    if not (job_id.isascii() and job_id.isdigit()) or len(job_id) > len(str(_MAX_JOB_KEY)):
        return -1
    key = int(job_id)
    return key if key <= _MAX_JOB_KEY and str(key) == job_id else -1


def _job(row: Sequence[Any], state: str | None = None) -> Job:
    return Job(
        str(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], state or row[7], row[8],
        row[9], row[10], row[11], bytes(row[12]), row[13], row[14],
    )  # fmt: skip


def _oldest_open(c: sqlite3.Connection, run_id: str, channel: str) -> int | None:
    sql = f"SELECT min(id) FROM jobs WHERE run_id = ? AND channel = ? AND {_OPEN}"
    return cast(int | None, c.execute(sql, (run_id, channel)).fetchone()[0])


def _accept(c: sqlite3.Connection, event: NewEvent, specs: Sequence[JobSpec]) -> AcceptResult:
    inserted = c.execute(
        """INSERT INTO events (event_id, dedup_key, body, flag, run_id, agent_id, status,
            received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING""",
        (event.event_id, event.dedup_key, bytes(event.body), event.flag, event.run_id,
         event.agent_id, event.status, event.received_at),
    )  # fmt: skip
    if inserted.rowcount == 0:  # its dedup key is stored: the first event's id answers
        sql = "SELECT event_id FROM events WHERE dedup_key = ?"
        return AcceptResult(c.execute(sql, (event.dedup_key,)).fetchone()[0], duplicate=True)
    seq = inserted.lastrowid
    c.execute(
        """INSERT INTO runs (run_id, started_at, start_seen_at) VALUES (?1, ?2, ?3)
            ON CONFLICT (run_id) DO UPDATE SET start_seen_at = ?3
            WHERE ?3 IS NOT NULL AND runs.start_seen_at IS NULL""",
        (event.run_id, event.received_at, event.received_at if event.flag == STARTED else None),
    )
    at = event.received_at
    for spec in hold_specs(c, specs, at):
        head = _oldest_open(c, event.run_id, spec.channel) is None
        c.execute(
            """INSERT INTO jobs (event_seq, run_id, channel, route, template, mode, state,
                created_at, age_from, next_attempt_at, due_at, head)
                VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)""",
            (seq, event.run_id, spec.channel, spec.route, spec.template, spec.mode,
             at, at, at, at, int(head)),
        )  # fmt: skip
    return AcceptResult(event.event_id, duplicate=False)


def _claim(
    c: sqlite3.Connection, now: float, lease_until: float, limit: int, excluded: tuple[str, ...]
) -> list[Job]:
    if excluded:
        rows = _jobs_by_id(c, _due_heads(c, now, limit, frozenset(excluded)))
    else:
        rows = c.execute(CLAIM_SQL, (now, limit)).fetchall()
    if rows:
        c.executemany(
            "UPDATE jobs SET state = 'inflight', due_at = ? WHERE id = ?",
            [(lease_until, row[0]) for row in rows],
        )
    return [_job(row, "inflight") for row in rows]


def _head_channels(c: sqlite3.Connection) -> Iterator[str]:
    """Every channel with a head, in order: one index seek each, not a walk over the heads."""
    channel = c.execute(_FIRST_CHANNEL_SQL).fetchone()[0]
    while channel is not None:
        yield channel
        channel = c.execute(_NEXT_CHANNEL_SQL, (channel,)).fetchone()[0]


def _due_heads(
    c: sqlite3.Connection, now: float, limit: int, excluded: frozenset[str]
) -> list[int]:
    """The ids ``CLAIM_SQL`` restricted to channels not ``excluded`` gives, in its order, reading
    at most ``limit`` heads of each other channel: an excluded channel's backlog is never walked."""
    per_channel = [
        c.execute(_CHANNEL_HEADS_SQL, (channel, now, limit)).fetchall()
        for channel in _head_channels(c)
        if channel not in excluded
    ]
    return [row[1] for row in islice(heapq.merge(*per_channel), limit)]


def _jobs_by_id(c: sqlite3.Connection, keys: Sequence[int]) -> list[Sequence[Any]]:
    """The jobs' rows (``_JOB_COLUMNS``) in the order of ``keys``."""
    rows: dict[int, Sequence[Any]] = {}
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start : start + KEYS_PER_QUERY]
        sql = _JOBS_BY_ID_SQL.format(", ".join("?" * len(chunk)))
        rows.update((row[0], row) for row in c.execute(sql, chunk))
    return [rows[key] for key in keys]


def _log(
    c: sqlite3.Connection,
    key: int,
    at: float,
    outcome: str,
    error: str | None = None,
    rendered: str | None = None,
) -> None:
    """Append to a job's attempt log, keeping its newest ``MAX_LOG`` entries."""
    c.execute(
        "INSERT INTO attempts (job_id, at, outcome, error, rendered) VALUES (?, ?, ?, ?, ?)",
        (key, at, outcome, error, rendered),
    )
    c.execute(
        """DELETE FROM attempts WHERE job_id = ?1 AND id <= (SELECT id FROM attempts
            WHERE job_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)""",
        (key, MAX_LOG),
    )


def _retry(
    c: sqlite3.Connection, key: int, next_at: float, error: str, counted: bool, at: float
) -> None:
    updated = c.execute(
        """UPDATE jobs SET state = 'pending', next_attempt_at = ?1, due_at = ?1,
            last_error = ?2, attempts = attempts + ?3 WHERE id = ?4 AND state = 'inflight'""",
        (next_at, error, int(counted), key),
    ).rowcount
    if updated:
        _log(c, key, at, "retry" if counted else "wait", error)


_HAND_OVER_SQL = f"""UPDATE jobs SET head = 1 WHERE id = (SELECT min(id) FROM jobs
    WHERE run_id = ? AND channel = ? AND {_OPEN})"""
"""The head of (run, channel) finished: their oldest open job, if any, is the new head."""


def _finish(
    c: sqlite3.Connection,
    job_id: str,
    state: str,
    now: float,
    error: str | None,
    rendered: str | None = None,
) -> None:
    """Sent (from pending or inflight: it did reach the channel) or dead (from inflight); either
    way the attempt that ended it counts, so ``attempts`` equals the log's sent/retry/dead lines."""
    allowed = _OPEN if state == "sent" else "state = 'inflight'"
    key = _job_key(job_id)
    row = c.execute(f"SELECT run_id, channel, head FROM jobs WHERE id = ? AND {allowed}", (key,))
    found = row.fetchone()
    if found is None:
        return
    c.execute(
        """UPDATE jobs SET state = ?, head = 0, due_at = NULL, finished_at = ?,
            last_error = COALESCE(?, last_error), attempts = attempts + 1 WHERE id = ?""",
        (state, now, error, key),
    )
    _log(c, key, now, state, error, rendered)
    if found[2]:
        c.execute(_HAND_OVER_SQL, (found[0], found[1]))


def _replay(c: sqlite3.Connection, job_id: str | None, now: float) -> int:
    if job_id is None:
        rows = c.execute("SELECT id, run_id, channel FROM jobs WHERE state = 'dead'").fetchall()
    else:
        sql = "SELECT id, run_id, channel FROM jobs WHERE id = ? AND state = 'dead'"
        rows = c.execute(sql, (_job_key(job_id),)).fetchall()
    c.executemany(
        """UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = ?1, due_at = ?1,
            age_from = ?1, finished_at = NULL WHERE id = ?2""",
        [(now, row[0]) for row in rows],
    )
    for row in rows:
        _log(c, row[0], now, "replayed")
    for run_id, channel in {(row[1], row[2]) for row in rows}:
        head = _oldest_open(c, run_id, channel)
        c.execute(
            f"""UPDATE jobs SET head = 0
                WHERE run_id = ? AND channel = ? AND {_OPEN} AND head = 1 AND id != ?""",
            (run_id, channel, head),
        )
        c.execute("UPDATE jobs SET head = 1 WHERE id = ?", (head,))
    return len(rows)


def _prune_chunk(
    c: sqlite3.Connection, older_than: float, after: tuple[float, int]
) -> tuple[int, tuple[float, int] | None]:
    """Prune up to ``PRUNE_CHUNK`` events accepted before ``older_than``, in acceptance order
    after ``after``; returns how many were deleted and where to continue (None = done)."""
    rows = c.execute(
        """SELECT seq, received_at FROM events WHERE (received_at, seq) > (?, ?)
            AND received_at < ? ORDER BY received_at, seq LIMIT ?""",
        (after[0], after[1], older_than, PRUNE_CHUNK),
    ).fetchall()
    seqs = [(row[0],) for row in rows]
    c.executemany(
        """DELETE FROM attempts WHERE job_id IN
            (SELECT id FROM jobs WHERE event_seq = ? AND state = 'sent')""",
        seqs,
    )
    c.executemany("DELETE FROM jobs WHERE event_seq = ? AND state = 'sent'", seqs)
    deleted = c.executemany(
        """DELETE FROM events WHERE seq = ?1
            AND NOT EXISTS (SELECT 1 FROM jobs WHERE event_seq = ?1)""",
        seqs,
    ).rowcount
    last = (rows[-1][1], rows[-1][0]) if len(rows) == PRUNE_CHUNK else None
    return max(deleted, 0), last


def _prune_runs(c: sqlite3.Connection, older_than: float) -> None:
    c.execute(
        """DELETE FROM runs WHERE started_at < ?
            AND NOT EXISTS (SELECT 1 FROM events WHERE events.run_id = runs.run_id)""",
        (older_than,),
    )
    c.execute(
        "DELETE FROM refs WHERE NOT EXISTS (SELECT 1 FROM runs WHERE runs.run_id = refs.run_id)"
    )
    c.execute(
        "DELETE FROM cards WHERE NOT EXISTS (SELECT 1 FROM runs WHERE runs.run_id = cards.run_id)"
    )


def _open_hint(path: Path) -> str:
    """Why a database file could not be opened, when the folder says so."""
    folder = path.parent
    if not folder.is_dir():
        return f" (the folder {folder} does not exist: create it or change store.url)"
    if not os.access(folder, os.W_OK):
        return f" (the folder {folder} is not writable by this user: fix its permissions or change store.url)"
    return ""
