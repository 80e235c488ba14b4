"""Turns between the writers of several processes on one SQLite file.

SQLite's busy handler sleeps 1, 2, 5, 10… up to 100 ms between tries, and a writer that has just
committed takes the lock again at once when it has more queued: with two busy processes one
keeps missing the moment the lock is free (two processes accepting 1,000/s together: p99 0.16 to
0.8 s, 0.03 to 0.04 s with turns; ``bench.store_writers``). So a writer first takes its turn: an
exclusive ``flock`` on ``<db>-turn``, whose waiter the kernel wakes when the holder gives it back.
While it waits it holds ``<db>-gate``, which the holder must take before its next turn: while
contended, turns go round. A process that dies loses its locks with its file descriptors.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["Turn"]


class Turn:
    """One writer's place in the rotation on the file ``db`` (one per store, not shared)."""

    def __init__(self, db: Path) -> None:
        self._turn = _lock_file(db, "-turn")
        try:
            self._gate = _lock_file(db, "-gate")
        except OSError:
            os.close(self._turn)
            raise

    def take(self) -> None:
        """Block until it is this writer's turn."""
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._turn, fcntl.LOCK_EX)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)

    def give(self) -> None:
        fcntl.flock(self._turn, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._turn)
        os.close(self._gate)


def _lock_file(db: Path, suffix: str) -> int:
    """An empty file beside the database, only ever locked (read access is enough for that)."""
    return os.open(f"{db}{suffix}", os.O_RDONLY | os.O_CREAT, 0o644)
