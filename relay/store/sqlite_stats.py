"""The overview's aggregates in the SQLite store: hourly rollup rows, kept up to date lazily.

Nothing is added to the accept and delivery paths. The rows that matter never change once
written (an event's flag, status, agent and time; an attempt-log entry's outcome and time), so
each is counted once into per-hour rollup tables, in id order, behind a mark per source table
(``stats_marks``). ``roll_up`` moves the marks forward in chunks, each its own write: it runs
before every ``stats`` read and before ``prune`` (so what prune deletes was counted already).
A read adds the rollups and the rows past the marks (the few written since the last roll-up) in
one read transaction, so it is exact whenever it runs. The marks and rollups are in the file:
they survive restarts, and processes sharing the file share them (each roll-up is one
``BEGIN IMMEDIATE`` write, so no row is counted twice).

Latency (accept -> sent) is kept as a histogram: bucket ``b`` holds latencies in
``(2^((b-1)/4), 2^(b/4)]`` milliseconds (bucket 0: 1 ms or less), and a percentile is reported as
its bucket's geometric middle: within ±9% of the true value.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from relay.store.base import AgentRuns, ChannelLatency, PeriodStats, Series, StoreStats

__all__ = [
    "CHUNK",
    "DAYS",
    "EVENT_KEYS",
    "HOURS",
    "OUTCOME_KEYS",
    "STATS_SCHEMA",
    "bucket_value",
    "latency_bucket",
    "prune_stats",
    "read_stats",
    "roll_up",
]

HOURS = 24
DAYS = 30
CHUNK = 50_000
"""Rows of each source counted per write (so accepts are never held up for long)."""
EVENT_KEYS = ("RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED", "other")
OUTCOME_KEYS = ("sent", "retry", "dead")
_ENDS = ("completed", "partial_complete", "failed", "cancelled")
_BUCKETS_PER_DOUBLING = 4
_LAST_ID = 2**63 - 1

STATS_SCHEMA = """
CREATE TABLE IF NOT EXISTS stats_marks (
    source TEXT PRIMARY KEY,
    last INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_events (
    hour INTEGER NOT NULL,
    flag TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, flag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_runs (
    hour INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, agent_id, status)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_deliveries (
    hour INTEGER NOT NULL,
    channel TEXT NOT NULL,
    outcome TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, channel, outcome)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_latency (
    hour INTEGER NOT NULL,
    channel TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, channel, bucket)
) WITHOUT ROWID;
"""

_FLAG = (
    "CASE WHEN flag IN ('RUN_STARTED', 'RUN_PROGRESS', 'RUN_FINISHED') THEN flag ELSE 'other' END"
)
_STATUS = f"CASE WHEN status IN {_ENDS!r} THEN status ELSE 'other' END"
_HOUR = "CAST({} / 3600 AS INTEGER)"


@dataclass(frozen=True, slots=True)
class _Rollup:
    """One rollup table and how to count the rows ``(?1, ?2]`` of its source into it."""

    table: str
    keys: tuple[str, ...]
    source: str
    select: str
    """``SELECT hour, *keys, n`` over the source rows with ids in ``(?1, ?2]``."""


_ROLLUPS = (
    _Rollup(
        "stats_events",
        ("flag",),
        "events",
        f"""SELECT {_HOUR.format("received_at")} AS hour, {_FLAG} AS flag, count(*) AS n
            FROM events WHERE seq > ?1 AND seq <= ?2 GROUP BY 1, 2""",
    ),
    _Rollup(
        "stats_runs",
        ("agent_id", "status"),
        "events",
        f"""SELECT {_HOUR.format("received_at")} AS hour, agent_id, {_STATUS} AS status,
            count(*) AS n FROM events
            WHERE seq > ?1 AND seq <= ?2 AND flag = 'RUN_FINISHED' GROUP BY 1, 2, 3""",
    ),
    _Rollup(
        "stats_deliveries",
        ("channel", "outcome"),
        "attempts",
        f"""SELECT {_HOUR.format("a.at")} AS hour, j.channel AS channel, a.outcome AS outcome,
            count(*) AS n FROM attempts a JOIN jobs j ON j.id = a.job_id
            WHERE a.id > ?1 AND a.id <= ?2 AND a.outcome IN {OUTCOME_KEYS!r}
            GROUP BY 1, 2, 3""",
    ),
    _Rollup(
        "stats_latency",
        ("channel", "bucket"),
        "attempts",
        f"""SELECT {_HOUR.format("a.at")} AS hour, j.channel AS channel,
            relay_latency_bucket(a.at - j.created_at) AS bucket, count(*) AS n
            FROM attempts a JOIN jobs j ON j.id = a.job_id
            WHERE a.id > ?1 AND a.id <= ?2 AND a.outcome = 'sent' GROUP BY 1, 2, 3""",
    ),
)
_ID = {"events": "seq", "attempts": "id"}


def latency_bucket(seconds: float) -> int:
    """The histogram bucket of a latency (see the module's docstring)."""
    millis = seconds * 1000.0
    if not millis > 1.0:
        return 0
    return math.ceil(_BUCKETS_PER_DOUBLING * math.log2(millis) - 1e-9)


def bucket_value(bucket: int) -> float:
    """A bucket's geometric middle, in seconds."""
    if bucket <= 0:
        return 0.0005
    return float(2.0 ** ((bucket - 0.5) / _BUCKETS_PER_DOUBLING)) / 1000.0


def _functions(c: sqlite3.Connection) -> None:
    c.create_function("relay_latency_bucket", 1, latency_bucket, deterministic=True)


def _mark(c: sqlite3.Connection, source: str) -> int:
    row = c.execute("SELECT last FROM stats_marks WHERE source = ?", (source,)).fetchone()
    return 0 if row is None else int(row[0])


def roll_up(c: sqlite3.Connection, chunk: int | None = None) -> bool:
    """Count up to ``chunk`` (default ``CHUNK``) more rows of each source into the rollups (a
    write); True while rows remain past the marks."""
    _functions(c)
    chunk = chunk or CHUNK
    more = False
    for source, column in _ID.items():
        last = _mark(c, source)
        row = c.execute(
            f"SELECT {column} FROM {source} WHERE {column} > ? ORDER BY {column} LIMIT 1 OFFSET ?",
            (last, chunk - 1),
        ).fetchone()
        if row is not None:
            upto, more = int(row[0]), True
        else:
            upto = c.execute(f"SELECT max({column}) FROM {source}").fetchone()[0] or last
        if upto <= last:
            continue
        for rollup in _ROLLUPS:
            if rollup.source != source:
                continue
            columns = ", ".join(("hour", *rollup.keys, "n"))
            conflict = ", ".join(("hour", *rollup.keys))
            c.execute(
                f"""INSERT INTO {rollup.table} ({columns}) SELECT {columns} FROM
                    ({rollup.select}) WHERE true
                    ON CONFLICT ({conflict}) DO UPDATE SET n = n + excluded.n""",
                (last, upto),
            )
        c.execute(
            """INSERT INTO stats_marks (source, last) VALUES (?, ?)
                ON CONFLICT (source) DO UPDATE SET last = excluded.last""",
            (source, upto),
        )
    _compact(c)
    return more


def _compact(c: sqlite3.Connection) -> None:
    """Fold the hours of each UTC day before yesterday (by the newest hour counted) into one row
    at the day's first hour: the 24-hour period never reads them, the 30-day one sums by day,
    and it reads a tenth of the rows."""
    for rollup in _ROLLUPS:
        table, keys = rollup.table, ", ".join(rollup.keys)
        newest = c.execute(f"SELECT max(hour) FROM {table}").fetchone()[0]
        if newest is None:
            continue
        days = c.execute(
            f"SELECT DISTINCT hour / 24 FROM {table} WHERE hour < ? AND hour % 24 != 0",
            ((newest // 24 - 1) * 24,),
        ).fetchall()
        for (day,) in days:
            span = (day * 24, day * 24 + 24)
            where = f"FROM {table} WHERE hour >= ? AND hour < ?"
            rows = c.execute(f"SELECT {keys}, sum(n) {where} GROUP BY {keys}", span).fetchall()
            c.execute(f"DELETE {where}", span)
            marks = ", ".join("?" * (len(rollup.keys) + 2))
            c.executemany(
                f"INSERT INTO {table} (hour, {keys}, n) VALUES ({marks})",
                [(day * 24, *row) for row in rows],
            )


def prune_stats(c: sqlite3.Connection) -> None:
    """Forget the rollup rows of hours more than ``DAYS`` + 1 days older than the newest (no
    period shows them)."""
    keep = (DAYS + 1) * 24
    for rollup in _ROLLUPS:
        c.execute(
            f"DELETE FROM {rollup.table} WHERE hour < (SELECT max(hour) FROM {rollup.table}) - ?",
            (keep,),
        )


def _sums(
    c: sqlite3.Connection, rollup: _Rollup, since_hour: int, by: Sequence[str]
) -> list[tuple[Any, ...]]:
    """``by`` and ``sum(n)`` from the rollup and the rows past its source's mark, hours from
    ``since_hour`` on."""
    columns = ", ".join(by)
    sql = f"""SELECT {columns}, sum(n) FROM (
            SELECT hour, {", ".join(rollup.keys)}, n FROM {rollup.table} WHERE hour >= ?1
            UNION ALL
            SELECT * FROM ({rollup.select.replace("?1", "?3").replace("?2", "?4")})
            WHERE hour >= ?1
        ) GROUP BY {columns}"""
    mark = _mark(c, rollup.source)
    return [tuple(row) for row in c.execute(sql, (since_hour, None, mark, _LAST_ID))]


def read_stats(c: sqlite3.Connection, now: float) -> StoreStats:
    """The overview's numbers at ``now`` (read in one transaction: one consistent snapshot)."""
    _functions(c)
    c.execute("BEGIN")
    try:
        hour = int(now // 3600)
        day = int(now // 86400)
        first_hour, first_day_hour = hour - HOURS + 1, (day - DAYS + 1) * 24
        hours = _period(c, first_hour, [h * 3600.0 for h in range(first_hour, hour + 1)], 1)
        days_starts = [d * 86400.0 for d in range(day - DAYS + 1, day + 1)]
        days = _period(c, first_day_hour, days_starts, 24)
        dead = c.execute(
            "SELECT channel, count(*) FROM jobs WHERE state = 'dead' GROUP BY channel"
        ).fetchall()
    finally:
        c.execute("COMMIT")
    return StoreStats(now, hours, days, tuple((row[0], row[1]) for row in dead))


def _period(
    c: sqlite3.Connection, first_hour: int, starts: list[float], hours_per_bucket: int
) -> PeriodStats:
    events, runs, deliveries, latency = _ROLLUPS

    def series(rollup: _Rollup, keys: Sequence[str]) -> Series:
        counts = {key: [0] * len(starts) for key in keys}
        for hour, key, n in _sums(c, rollup, first_hour, ("hour", rollup.keys[-1])):
            index = (int(hour) - first_hour) // hours_per_bucket
            if str(key) in counts and 0 <= index < len(starts):
                counts[str(key)][index] += int(n)
        return Series(tuple(starts), tuple((key, tuple(counts[key])) for key in keys))

    return PeriodStats(
        events=series(events, EVENT_KEYS),
        deliveries=series(deliveries, OUTCOME_KEYS),
        agents=_agents(_sums(c, runs, first_hour, ("agent_id", "status"))),
        latency=_latency(_sums(c, latency, first_hour, ("channel", "bucket"))),
    )


def _agents(rows: Iterable[tuple[Any, ...]]) -> tuple[AgentRuns, ...]:
    by_agent: dict[str, dict[str, int]] = defaultdict(dict)
    for agent_id, status, n in rows:
        by_agent[str(agent_id)][str(status)] = int(n)
    found = [
        AgentRuns(
            agent_id,
            finished=sum(statuses.values()),
            failed=statuses.get("failed", 0),
            partial=statuses.get("partial_complete", 0),
        )
        for agent_id, statuses in by_agent.items()
    ]
    return tuple(sorted(found, key=lambda a: (-a.failure_rate, -a.finished, a.agent_id)))


def _latency(rows: Iterable[tuple[Any, ...]]) -> tuple[ChannelLatency, ...]:
    by_channel: dict[str, dict[int, int]] = defaultdict(dict)
    for channel, bucket, n in rows:
        by_channel[str(channel)][int(bucket)] = int(n)
    return tuple(
        ChannelLatency(
            channel, sum(buckets.values()), _percentile(buckets, 0.5), _percentile(buckets, 0.95)
        )
        for channel, buckets in sorted(by_channel.items())
    )


def _percentile(buckets: dict[int, int], fraction: float) -> float:
    """The value at ``fraction`` of the histogram (nearest rank)."""
    total = sum(buckets.values())
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return 0.0
