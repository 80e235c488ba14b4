"""Held events in the SQLite store: rows of the ``held`` table (digests, quiet hours).

A ``JobSpec`` with ``hold`` becomes a row here, in ``accept``'s transaction, carrying its own
``entry`` (it does not reference the event, which prunes as usual). ``take_held`` marks rows with
the flush's key (``taken``) and when (``taken_at``: the ``before`` it was given, on the caller's
clock like ``prune``'s bound); ``drop_held`` deletes them once the flush's message is stored, and
``prune`` deletes taken rows a crashed flush never dropped a retention after their take. Rows not
taken are never pruned: they wait for their window, however long.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence

from relay.store.base import HeldEntry, HeldGroup, JobSpec

__all__ = ["HELD_SCHEMA", "drop_held", "held_groups", "hold_specs", "prune_held", "take_held"]

HELD_SCHEMA = """
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY,
    grp TEXT NOT NULL,
    channel TEXT NOT NULL,
    route TEXT NOT NULL,
    template TEXT,
    received_at REAL NOT NULL,
    entry BLOB NOT NULL,
    taken TEXT,
    taken_at REAL
);
CREATE INDEX IF NOT EXISTS held_waiting ON held (grp, received_at, id) WHERE taken IS NULL;
CREATE INDEX IF NOT EXISTS held_taken ON held (taken) WHERE taken IS NOT NULL
"""
"""Statements of the schema script (``sqlite._SCHEMA``), ``;``-separated, none last."""

_GROUPS_SQL = """SELECT g.grp, h.channel, h.route, h.template, g.n, h.received_at
    FROM (SELECT o.grp, count(*) AS n, (SELECT i.id FROM held i
            WHERE i.grp = o.grp AND i.taken IS NULL ORDER BY i.received_at, i.id LIMIT 1) AS first
        FROM held o WHERE o.taken IS NULL GROUP BY o.grp) g
    JOIN held h ON h.id = g.first ORDER BY g.grp"""
"""Each group with untaken rows: channel, route and template of its oldest one."""
_TAKEN_SQL = "SELECT received_at, entry FROM held WHERE taken = ? ORDER BY received_at, id"
_TAKE_SQL = """UPDATE held SET taken = ?, taken_at = coalesce(?, received_at)
    WHERE grp = ? AND taken IS NULL AND received_at < ?"""


def hold_specs(
    c: sqlite3.Connection, specs: Sequence[JobSpec], received_at: float
) -> list[JobSpec]:
    """Hold the event for each spec with ``hold``; returns the others (the jobs to create)."""
    c.executemany(
        """INSERT INTO held (grp, channel, route, template, received_at, entry)
            VALUES (?, ?, ?, ?, ?, ?)""",
        [
            (spec.hold, spec.channel, spec.route, spec.template, received_at, bytes(spec.entry))
            for spec in specs
            if spec.hold is not None
        ],
    )
    return [spec for spec in specs if spec.hold is None]


def held_groups(c: sqlite3.Connection) -> list[HeldGroup]:
    return [HeldGroup(*row) for row in c.execute(_GROUPS_SQL)]


def take_held(c: sqlite3.Connection, group: str, before: float, key: str) -> list[HeldEntry]:
    """What ``key`` took already, else take the group's rows accepted before ``before``."""
    rows = c.execute(_TAKEN_SQL, (key,)).fetchall()
    if not rows:
        taken_at = before if math.isfinite(before) else None  # infinity: each row's own time
        c.execute(_TAKE_SQL, (key, taken_at, group, before))
        rows = c.execute(_TAKEN_SQL, (key,)).fetchall()
    return [HeldEntry(row[0], bytes(row[1])) for row in rows]


def drop_held(c: sqlite3.Connection, key: str) -> None:
    c.execute("DELETE FROM held WHERE taken = ?", (key,))


def prune_held(c: sqlite3.Connection, older_than: float) -> None:
    c.execute("DELETE FROM held WHERE taken IS NOT NULL AND taken_at < ?", (older_than,))
