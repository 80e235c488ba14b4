"""The thread that owns the SQLite write connection and commits queued writes in batches.

It takes every write queued so far and runs them in ONE transaction (one commit, one fsync for
the batch), first without a savepoint per write; should one fail, the batch is redone with a
savepoint each, so that only the failing write is undone. Callers' futures are settled with one
event-loop wake-up per batch. With a ``Turn`` (several processes on the file), each transaction
waits for this writer's turn first.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay.store.base import StoreError

if TYPE_CHECKING:
    from relay.store.sqlite_turn import Turn

__all__ = ["MAX_BATCH", "Op", "Writer"]

MAX_BATCH = 1000


@dataclass(slots=True)
class Op:
    fn: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]

    def settle(self, result: Any, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody waits
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _settle_batch(ops: list[Op], outcomes: list[tuple[Any, BaseException | None]]) -> None:
    """One wake-up per event loop for a whole batch, not one per write."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, ...]]] = {}
    for op, (result, error) in zip(ops, outcomes, strict=True):
        by_loop.setdefault(op.loop, []).append((op.future, result, error))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody waits
            loop.call_soon_threadsafe(_settle_all, items)


def _settle_all(items: list[tuple[Any, ...]]) -> None:
    for future, result, error in items:
        _settle(future, result, error)


class Writer:
    """The thread that owns the write connection and commits queued writes in batches."""

    def __init__(self, conn: sqlite3.Connection, turn: Turn | None = None) -> None:
        self._conn = conn
        self._turn = turn
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = False
        self.commits = 0
        self.largest_batch = 0
        self._thread = threading.Thread(target=self._run, name="relay-sqlite-writer", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def submit(self, op: Op) -> None:
        with self._lock:
            if not self.alive:
                raise StoreError("store is closed")
            self._queue.put(op)

    def stop(self) -> None:
        """Run every write already queued, then close the connection."""
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        try:
            running = True
            while running:
                batch = [self._queue.get()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                ops = [op for op in batch if op is not None]
                running = len(ops) == len(batch)
                if ops:
                    self._commit(ops)
        finally:
            self._stopping = True
            self._conn.close()
            if self._turn is not None:
                self._turn.close()
            while not self._queue.empty():
                op = self._queue.get_nowait()
                if op is not None:
                    op.settle(None, StoreError("store is closed"))

    def _commit(self, ops: list[Op]) -> None:
        if self._turn is None:
            self._transaction(ops)
            return
        try:
            self._turn.take()
        except OSError as exc:
            for op in ops:
                op.settle(None, StoreError(f"store write failed: {exc}"))
            return
        try:
            self._transaction(ops)
        finally:
            self._turn.give()

    def _transaction(self, ops: list[Op]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Fast path: no savepoint per write. Should one fail, redo the batch with
                # savepoints, so that only the failing write is undone.
                outcomes: list[tuple[Any, BaseException | None]] = [
                    (op.fn(conn), None) for op in ops
                ]
            except Exception:
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                outcomes = [self._apply(op) for op in ops]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            for op in ops:
                op.settle(None, StoreError(f"store write failed: {exc}"))
            return
        self.commits += 1
        self.largest_batch = max(self.largest_batch, len(ops))
        _settle_batch(ops, outcomes)

    def _apply(self, op: Op) -> tuple[Any, BaseException | None]:
        """Run one write in its own savepoint; its failure undoes only its own changes."""
        conn = self._conn
        conn.execute("SAVEPOINT op")
        try:
            result = op.fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            if isinstance(exc, sqlite3.Error):
                return None, StoreError(f"store write failed: {exc}")
            return None, exc
        conn.execute("RELEASE op")
        return result, None
