"""overview: the dashboard's overview page with 1,000,000 events in the SQLite store.

The store is filled directly (bulk INSERTs in one transaction, not through the HTTP path) with
30 days of runs, each STARTED, three PROGRESS and a FINISHED, from a dozen agents that fail at
different rates; their deliveries (Slack for starts and ends, Telegram for ends, email for
failures) with lognormal latencies, some retries and a few dead letters. Then the relay serves
that store in-process and the benchmark, logged in, times:

- the first ``GET /ui/`` (it rolls the whole store up into the hourly rollups: once per store);
- ``GET /ui/`` N times (median, p95) and the store's ``stats`` query alone;
- one ``GET /ui/`` after another hour of events was written (what a view after a quiet hour
  rolls up).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import Result, Table, percentile

__all__ = ["FULL", "QUICK", "OverviewParams", "run"]

TARGET_MS = 300.0
ADMIN = "bench-admin-token"
DAY = 86400.0
EVENTS_PER_RUN = 5
AGENTS = 12
BATCH = 20_000
LATENCY = {"slack": (0.25, 0.6), "telegram": (0.4, 0.5), "email": (1.5, 0.8)}
"""Channel -> (median seconds, sigma) of a lognormal accept -> sent latency."""

CONFIG = """
server:
  admin_token: "{admin}"
auth:
  allow_unsigned: true
store:
  url: sqlite:///relay.db
  sync: normal
  retention: 60d
agents:
{agents}
channels:
  stdout:
    type: console
routes:
  - name: all
    match: {{flag: TEST}}
    to: [stdout]
"""


@dataclass(frozen=True)
class OverviewParams:
    events: int = 1_000_000
    days: int = 30
    loads: int = 50
    seed: int = 19


FULL = OverviewParams()
QUICK = OverviewParams(events=5_000, loads=3)


def run(params: OverviewParams = FULL) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-overview-") as tmp:
        work = Path(tmp)
        now = time.time()
        agents = [f"{n:08x}-a9e0-4c1d-8e2f-{n:012x}" for n in range(AGENTS)]
        filled = fill(work / "relay.db", params, agents, now - params.days * DAY, now)
        figures = asyncio.run(_measure(work, params, agents, filled))
    return _report(params, filled, figures)


# --- filling the store ----------------------------------------------------------------------


@dataclass
class Filled:
    events: int = 0
    jobs: int = 0
    attempts: int = 0
    dead: int = 0
    seconds: float = 0.0
    bytes: int = 0


def fill(path: Path, params: OverviewParams, agents: list[str], start: float, end: float) -> Filled:
    """``params.events`` events spread evenly over ``[start, end)``, with their jobs and logs."""
    _create_schema(path)
    began = time.perf_counter()
    filled = Filled()
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        _insert(conn, _rows(params, agents, start, end, filled, 0, 0, 0))
        conn.execute("COMMIT")
    conn.close()
    filled.seconds = time.perf_counter() - began
    filled.bytes = path.stat().st_size
    return filled


def add_hour(path: Path, params: OverviewParams, agents: list[str], now: float) -> int:
    """One more hour of events at the same rate (written by another connection, as a worker
    process would), ending at ``now``; returns how many."""
    per_hour = max(EVENTS_PER_RUN, params.events // (params.days * 24))
    sizes = OverviewParams(events=per_hour, days=1, seed=params.seed + 1)
    with sqlite3.connect(path, isolation_level=None, timeout=30) as conn:
        seq, job, attempt = (
            conn.execute(f"SELECT coalesce(max({c}), 0) FROM {t}").fetchone()[0]
            for t, c in (("events", "seq"), ("jobs", "id"), ("attempts", "id"))
        )
        extra = Filled()
        conn.execute("BEGIN IMMEDIATE")
        _insert(conn, _rows(sizes, agents, now - 3600, now, extra, seq, job, attempt))
        conn.execute("COMMIT")
    conn.close()
    return extra.events


def _create_schema(path: Path) -> None:
    from relay.store.sqlite import SQLiteStore

    async def create() -> None:
        store = SQLiteStore(path, sync="normal")
        await store.open()
        await store.close()

    asyncio.run(create())


Rows = Iterator[tuple[str, list[tuple[Any, ...]]]]


def _insert(conn: sqlite3.Connection, rows: Rows) -> None:
    sql = {
        "events": """INSERT INTO events (seq, event_id, dedup_key, body, flag, run_id, agent_id,
            status, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        "runs": "INSERT INTO runs (run_id, started_at, start_seen_at) VALUES (?, ?, ?)",
        "jobs": """INSERT INTO jobs (id, event_seq, run_id, channel, route, mode, state, attempts,
            created_at, age_from, next_attempt_at, last_error, finished_at)
            VALUES (?, ?, ?, ?, 'r', 'post', ?, ?, ?, ?, ?, ?, ?)""",
        "attempts": "INSERT INTO attempts (id, job_id, at, outcome, error) VALUES (?, ?, ?, ?, ?)",
    }
    for table, batch in rows:
        conn.executemany(sql[table], batch)


def _rows(
    params: OverviewParams,
    agents: list[str],
    start: float,
    end: float,
    filled: Filled,
    seq: int,
    job: int,
    attempt: int,
) -> Rows:
    rng = random.Random(params.seed)
    runs = max(1, params.events // EVENTS_PER_RUN)
    step = (end - start - 300) / runs
    fail_rate = {agent: 0.02 + 0.23 * i / (AGENTS - 1) for i, agent in enumerate(agents)}
    batches: dict[str, list[tuple[Any, ...]]] = {
        k: [] for k in ("events", "runs", "jobs", "attempts")
    }
    for r in range(runs):
        agent = agents[rng.randrange(AGENTS)]
        run_id = f"{seq:08x}-{r:04x}-4000-8000-{params.seed:012x}"
        t0 = start + r * step + rng.random() * step
        roll = rng.random()
        final = "failed" if roll < fail_rate[agent] else (
            "partial_complete" if roll < fail_rate[agent] + 0.03 else "completed")  # fmt: skip
        batches["runs"].append((run_id, t0, t0))
        flags = ["RUN_STARTED", "RUN_PROGRESS", "RUN_PROGRESS", "RUN_PROGRESS", "RUN_FINISHED"]
        for i, flag in enumerate(flags):
            seq += 1
            at = t0 + 60 * i
            status = final if flag == "RUN_FINISHED" else "running"
            body = (
                f'{{"flag":"{flag}","run_id":"{run_id}","agent_id":"{agent}","status":"{status}",'
                f'"triggered_by":{{"type":"youtube","video_title":"Video {seq}"}}}}'
            ).encode()
            key = hashlib.sha256(body).hexdigest()
            batches["events"].append((seq, f"ev-{seq}", key, body, flag, run_id, agent, status, at))
            filled.events += 1
            channels = {"RUN_STARTED": ["slack"], "RUN_FINISHED": ["slack", "telegram"]}.get(
                flag, []
            )
            if flag == "RUN_FINISHED" and final != "completed":
                channels.append("email")
            for channel in channels:
                job, attempt = (
                    job + 1,
                    _job(rng, batches, job + 1, seq, run_id, channel, at, attempt, filled),
                )
        if len(batches["events"]) >= BATCH:
            yield from _drain(batches)
    yield from _drain(batches)


def _job(
    rng: random.Random,
    batches: dict[str, list[tuple[Any, ...]]],
    key: int,
    seq: int,
    run_id: str,
    channel: str,
    at: float,
    attempt: int,
    filled: Filled,
) -> int:
    """One finished job (sent, or dead after its retries) and its attempt log; returns the last
    attempt id."""
    median, sigma = LATENCY[channel]
    when = at + rng.lognormvariate(math.log(median), sigma)
    retries = 0 if rng.random() > 0.05 else rng.randint(1, 2)
    dead = rng.random() < 0.003
    for _ in range(retries):
        attempt += 1
        batches["attempts"].append((attempt, key, when, "retry", "HTTP 503"))
        when += rng.uniform(1, 30)
    attempt += 1
    outcome = "dead" if dead else "sent"
    batches["attempts"].append((attempt, key, when, outcome, "HTTP 400" if dead else None))
    batches["jobs"].append((key, seq, run_id, channel, outcome, retries + 1, at, at, when,
                            "HTTP 400" if dead else None, when))  # fmt: skip
    filled.jobs += 1
    filled.attempts += retries + 1
    filled.dead += dead
    return attempt


def _drain(batches: dict[str, list[tuple[Any, ...]]]) -> Rows:
    for table in ("events", "runs", "jobs", "attempts"):
        if batches[table]:
            yield table, batches[table]
            batches[table] = []


# --- measuring ------------------------------------------------------------------------------


async def _measure(
    work: Path, params: OverviewParams, agents: list[str], filled: Filled
) -> dict[str, Any]:
    from aiohttp.test_utils import TestClient, TestServer

    from relay.app import build_app
    from relay.config import load_config
    from relay.store.base import StoreInspector
    from relay.ui.state import UI

    names = "\n".join(f'  {agent}: "Agent {n}"' for n, agent in enumerate(agents))
    config = work / "relay.yaml"
    config.write_text(CONFIG.format(admin=ADMIN, agents=names))
    app = build_app(load_config(config, env={}), check_channels=False, warn=False)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        login = await client.post("/ui/login", data={"token": ADMIN, "next": "/ui/"},
                                  allow_redirects=False)  # fmt: skip
        assert login.status == 303, await login.text()

        async def load() -> float:
            began = time.perf_counter()
            answer = await client.get("/ui/")
            text = await answer.text()
            assert answer.status == 200 and "<h1>Overview</h1>" in text, text[:300]
            return (time.perf_counter() - began) * 1000

        first = await load()
        pages = [await load() for _ in range(params.loads)]
        store = app[UI].store
        assert isinstance(store, StoreInspector)
        queries = []
        for _ in range(params.loads):
            began = time.perf_counter()
            await store.stats(time.time())
            queries.append((time.perf_counter() - began) * 1000)
        added = await asyncio.to_thread(add_hour, work / "relay.db", params, agents, time.time())
        after_hour = await load()
        stats = await store.stats(time.time())
    finally:
        await client.close()
    month = sum(sum(values) for _, values in stats.days.events.stacks)
    return {
        "first_ms": first,
        "page_ms": {"p50": percentile(pages, 50), "p95": percentile(pages, 95), "max": max(pages)},
        "stats_ms": {"p50": percentile(queries, 50), "p95": percentile(queries, 95)},
        "added_events": added,
        "after_hour_ms": after_hour,
        "events_in_30_days": month,
    }


def _report(params: OverviewParams, filled: Filled, f: dict[str, Any]) -> Result:
    table = Table(
        f"overview: GET /ui/ with {filled.events:,} events in the SQLite store ({params.days} days)",
        ["what", "p50 ms", "p95 ms", "max ms"],
    )
    page, query = f["page_ms"], f["stats_ms"]
    table.add(f"GET /ui/ (×{params.loads}, logged in)", page["p50"], page["p95"], page["max"])
    table.add(f"store.stats() alone (×{params.loads})", query["p50"], query["p95"], "—")
    table.add("first GET /ui/ (rolls up the whole store, once)", f["first_ms"], "—", "—")
    table.add(
        f"GET /ui/ after one more hour ({f['added_events']:,} events)", f["after_hour_ms"], "—", "—"
    )
    table.notes.append(
        f"Store: {filled.events:,} events, {filled.jobs:,} jobs ({filled.dead:,} dead), "
        f"{filled.attempts:,} attempt-log entries, {filled.bytes / 2**20:.0f} MiB; filled in "
        f"{filled.seconds:.0f}s by bulk INSERTs. The page shows {f['events_in_30_days']:,} events "
        "over 30 days (hourly rollups plus the rows written since the last roll-up)."
    )
    result = Result("overview", [table], {"params": asdict(params), "filled": asdict(filled), **f})
    met = page["p95"] < TARGET_MS if filled.events >= 1_000_000 else None
    result.target(
        "overview page, 1,000,000 events", f"p95 < {TARGET_MS:.0f} ms",
        f"p95 {page['p95']:.0f} ms ({filled.events:,} events)", met,
    )  # fmt: skip
    return result
