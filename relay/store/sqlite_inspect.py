"""Read-only queries of the SQLite store for the web UI (``StoreInspector``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from relay.store.base import DELIVERY_STATES, Attempt, Counts, EventFilter, EventRecord, JobRecord

__all__ = ["count_states", "get_event", "list_events"]

_OPEN_J = "j.state IN ('pending', 'inflight')"
_DELIVERY_SQL = {
    "sent": "j.state = 'sent'",
    "pending": f"{_OPEN_J} AND j.attempts = 0 AND j.last_error IS NULL",
    "retrying": f"{_OPEN_J} AND (j.attempts > 0 OR j.last_error IS NOT NULL)",
    "dead": "j.state = 'dead'",
}
"""``base.delivery_state`` as SQL, for filtering and counting."""
assert set(_DELIVERY_SQL) == set(DELIVERY_STATES)


def _text_at(path: str) -> str:
    """SQL for the string at ``path`` in the payload, else NULL."""
    body = "CAST(e.body AS TEXT)"
    text = f"CASE json_type({body}, '{path}') WHEN 'text' THEN json_extract({body}, '{path}') END"
    return f"CASE WHEN json_valid({body}) THEN {text} END"


_EVENT_COLUMNS = f"""e.seq, e.event_id, e.flag, e.status, e.agent_id, e.run_id, e.received_at,
    {_text_at("$.triggered_by.type")}, {_text_at("$.triggered_by.video_title")}"""
_RECORD_COLUMNS = """j.event_seq, j.id, j.channel, j.route, j.template, j.mode, j.state,
    j.attempts, j.created_at, j.next_attempt_at, j.last_error, j.finished_at"""


def list_events(
    c: sqlite3.Connection, limit: int, before: int | None, where: EventFilter
) -> list[EventRecord]:
    clauses: list[str] = []
    args: list[Any] = []
    if before is not None:
        clauses.append("e.seq < ?")
        args.append(before)
    for column in ("flag", "status", "agent_id", "run_id"):
        value = getattr(where, column)
        if value is not None:
            clauses.append(f"e.{column} = ?")
            args.append(value)
    if where.delivery is not None:
        condition = _DELIVERY_SQL.get(where.delivery, "0")
        clauses.append(f"EXISTS (SELECT 1 FROM jobs j WHERE j.event_seq = e.seq AND {condition})")
    sql = f"SELECT {_EVENT_COLUMNS} FROM events e"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    rows = c.execute(f"{sql} ORDER BY e.seq DESC LIMIT ?", (*args, max(0, limit))).fetchall()
    jobs = _jobs_of(c, [row[0] for row in rows], with_log=False)
    return [_event_record(row, jobs.get(row[0], ())) for row in rows]


def get_event(c: sqlite3.Connection, event_id: str) -> EventRecord | None:
    sql = f"SELECT {_EVENT_COLUMNS}, e.body FROM events e WHERE e.event_id = ?"
    row = c.execute(sql, (event_id,)).fetchone()
    if row is None:
        return None
    jobs = _jobs_of(c, [row[0]], with_log=True)
    return _event_record(row, jobs.get(row[0], ()), body=bytes(row[9]))


def _jobs_of(
    c: sqlite3.Connection, seqs: list[int], *, with_log: bool
) -> dict[int, tuple[JobRecord, ...]]:
    if not seqs:
        return {}
    marks = ", ".join("?" * len(seqs))
    sql = f"SELECT {_RECORD_COLUMNS} FROM jobs j WHERE j.event_seq IN ({marks}) ORDER BY j.id"
    rows = c.execute(sql, seqs).fetchall()
    logs: dict[int, list[Attempt]] = {}
    if with_log and rows:
        ids = [row[1] for row in rows]
        sql = f"""SELECT job_id, at, outcome, error, rendered FROM attempts
            WHERE job_id IN ({", ".join("?" * len(ids))}) ORDER BY id"""
        for job_id, *entry in c.execute(sql, ids).fetchall():
            logs.setdefault(job_id, []).append(Attempt(*entry))
    jobs: dict[int, list[JobRecord]] = {}
    for row in rows:
        seq, key = row[0], row[1]
        record = JobRecord(
            str(key), row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
            row[11], tuple(logs.get(key, ())),
        )  # fmt: skip
        jobs.setdefault(seq, []).append(record)
    return {seq: tuple(records) for seq, records in jobs.items()}


def _event_record(
    row: Sequence[Any], jobs: tuple[JobRecord, ...], body: bytes | None = None
) -> EventRecord:
    return EventRecord(
        row[1], row[0], row[2], row[3], row[4], row[5], row[6], row[7] or "none", row[8], jobs, body
    )


def count_states(c: sqlite3.Connection) -> Counts:
    """Through indexes only (every page shows these): the open and dead jobs through their
    partial indexes, and ``sent`` as the rest (a job is pending, inflight, sent or dead)."""
    received = c.execute("SELECT count(*) FROM events").fetchone()[0]
    total = c.execute("SELECT count(*) FROM jobs").fetchone()[0]
    dead = c.execute("SELECT count(*) FROM jobs WHERE state = 'dead'").fetchone()[0]
    sums = ", ".join(f"coalesce(sum({_DELIVERY_SQL[s]}), 0)" for s in ("pending", "retrying"))
    pending, retrying = c.execute(f"SELECT {sums} FROM jobs j WHERE {_OPEN_J}").fetchone()
    sent = total - dead - pending - retrying
    return Counts(received, sent=sent, pending=pending, retrying=retrying, dead=dead)
