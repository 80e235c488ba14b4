"""Writers of several processes on one SQLite file take turns (``sqlite_turn``)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relay.store import SharedSQLiteStore, SQLiteStore
from relay.store.sqlite_turn import Turn
from tests.conftest import wait_until
from tests.store.conftest import new_event, specs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "relay.db"


@pytest.fixture
def turns(db: Path) -> Iterator[tuple[Turn, Turn]]:
    a, b = Turn(db), Turn(db)
    yield a, b
    a.close()
    b.close()


def someone_waits(db: Path) -> bool:
    """Whether a writer is waiting for its turn (it holds the gate meanwhile)."""
    fd = os.open(f"{db}-gate", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def in_thread(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


async def test_a_waiting_writer_goes_before_the_holders_next_turn(
    turns: tuple[Turn, Turn], db: Path
) -> None:
    a, b = turns
    order: list[str] = []
    a.take()

    def b_writes() -> None:
        b.take()
        order.append("b")
        b.give()

    b_thread = in_thread(b_writes)
    await wait_until(lambda: someone_waits(db))
    a.give()
    a.take()  # at once again, as a writer with more queued does
    order.append("a again")
    a.give()
    await asyncio.to_thread(b_thread.join, 5)

    assert order == ["b", "a again"]


async def test_a_shared_store_writes_only_in_its_turn(db: Path) -> None:
    store = SharedSQLiteStore(db)
    await store.open()
    other = Turn(db)
    try:
        other.take()
        accept = asyncio.create_task(store.accept(new_event("e1"), specs("c")))
        await wait_until(lambda: someone_waits(db))
        assert not accept.done()
        other.give()
        assert not (await accept).duplicate
    finally:
        other.close()
        await store.close()


async def test_a_lone_process_takes_no_turns(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.accept(new_event("e1"), specs("c"))
    await store.close()

    assert not await asyncio.to_thread(Path(f"{db}-turn").exists)


HOLD_THE_TURN = """
import sys, time
from pathlib import Path
from relay.store.sqlite_turn import Turn

Turn(Path(sys.argv[1])).take()
print("holding", flush=True)
time.sleep(600)
"""


async def test_a_process_that_dies_loses_its_turn(turns: tuple[Turn, Turn], db: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_THE_TURN, str(db), stdout=asyncio.subprocess.PIPE, env=env
    )
    assert holder.stdout is not None
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"holding\n"
        taken = threading.Event()

        def take() -> None:
            turns[0].take()
            taken.set()

        in_thread(take)
        await wait_until(lambda: someone_waits(db))
        assert not taken.is_set()
    finally:
        holder.kill()
        await holder.wait()

    await wait_until(taken.is_set)
    turns[0].give()
