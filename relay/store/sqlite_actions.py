"""Chat actions in the SQLite store: one-time claims (``claims``) and the audit (``actions``).

A claim is a row ``(key, until)``; taking it is one upsert that writes only when the key is
free or its ``until`` has passed, so among every writer of the file (threads, processes) exactly
one caller sees a changed row. Claims are on the wall clock, like Redis's ``SET NX PX``.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from relay.store.base import ActionRecord

__all__ = [
    "ACTIONS_SCHEMA",
    "claim_once",
    "list_actions",
    "prune_actions",
    "record_action",
]

ACTIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    run_id TEXT NOT NULL,
    source TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT,
    result TEXT NOT NULL,
    detail TEXT NOT NULL,
    route TEXT NOT NULL,
    channel TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_at ON actions (at, id);
CREATE INDEX IF NOT EXISTS actions_run ON actions (run_id, at, id)
"""
"""Statements of the schema script (``sqlite._SCHEMA``), ``;``-separated, none last."""

_CLAIM_SQL = """INSERT INTO claims (key, until) VALUES (?1, ?2)
    ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE claims.until <= ?3"""
"""Taken when free or expired at ``?3``; changes no row otherwise."""
_COLUMNS = "at, action, run_id, source, user_id, user_name, result, detail, route, channel"
_INSERT_SQL = f"INSERT INTO actions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ALL_SQL = f"SELECT {_COLUMNS} FROM actions ORDER BY at DESC, id DESC LIMIT ?"
_RUN_SQL = f"SELECT {_COLUMNS} FROM actions WHERE run_id = ? ORDER BY at DESC, id DESC LIMIT ?"


def claim_once(c: sqlite3.Connection, key: str, now: float, ttl: float) -> bool:
    return c.execute(_CLAIM_SQL, (key, now + ttl, now)).rowcount == 1


def record_action(c: sqlite3.Connection, record: ActionRecord) -> None:
    c.execute(_INSERT_SQL, dataclasses.astuple(record))


def list_actions(c: sqlite3.Connection, run_id: str | None, limit: int) -> list[ActionRecord]:
    """Newest first (by ``at``, then by insertion)."""
    if limit <= 0:
        return []
    if run_id is None:
        rows = c.execute(_ALL_SQL, (limit,)).fetchall()
    else:
        rows = c.execute(_RUN_SQL, (run_id, limit)).fetchall()
    return [ActionRecord(*row) for row in rows]


def prune_actions(c: sqlite3.Connection, older_than: float, now: float) -> None:
    """Audit rows from before ``older_than``; claims expired at ``now`` (the wall clock)."""
    c.execute("DELETE FROM actions WHERE at < ?", (older_than,))
    c.execute("DELETE FROM claims WHERE until <= ?", (now,))
