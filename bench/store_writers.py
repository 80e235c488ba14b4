"""The SQLite store alone, accepted into by one process or by several on one file (workers).

Run as ``python -m bench.store_writers [--variants 1x64,2x32,2x64] [--rounds 4] [--seconds 5]``;
a variant ``PxC`` is P processes with C concurrent accepts each (closed loop), or with
``--rate R`` P processes offered R accepts/s together (open loop). Every round runs each variant
once (order alternating between rounds) on a fresh file; per variant it prints accepts/s, CPU
per accept (every process's user+system time over the accepts) and the accept latency.
The lock hand-off between writers: by default the store's turns (``relay.store.sqlite_turn``);
``:sqlite`` (``2x32:sqlite``) leaves it to SQLite's busy handler (sleeps of 1, 2, 5, 10… up to
100 ms); ``:spin`` retries ``BEGIN IMMEDIATE`` every ``--spin-ms`` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from relay.store import JobSpec, NewEvent, SharedSQLiteStore, SQLiteStore

BODY = b'{"flag":"RUN_PROGRESS","run_id":"r","status":"running","agent_id":"a"}' + b" " * 600


class SpinningConnection(sqlite3.Connection):
    """``BEGIN IMMEDIATE`` retried every ``spin`` seconds while the file is locked (no busy
    handler), until ``deadline`` seconds."""

    spin = 0.0005
    deadline = 10.0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql != "BEGIN IMMEDIATE":
            return super().execute(sql, *args)
        give_up = time.monotonic() + self.deadline
        while True:
            try:
                return super().execute(sql)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise
            time.sleep(self.spin)


def _spinning(self: SQLiteStore) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(self.path), isolation_level=None, check_same_thread=False, factory=SpinningConnection
    )
    conn.execute("PRAGMA busy_timeout = 0")
    return conn


def _no_turn(self: SQLiteStore) -> None:
    return None


async def child(
    path: Path, me: int, concurrency: int, seconds: float, sync: str, rate: float
) -> None:
    store = SharedSQLiteStore(path, sync="full" if sync == "full" else "normal")
    await store.open()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    latencies: list[float] = []
    cpu0, start = time.process_time(), time.monotonic()
    stop = start + seconds

    async def accepter(lane: int) -> None:
        i = 0
        while time.monotonic() < stop:
            eid = f"p{me}-{lane}-{i}"
            event = NewEvent(eid, eid, BODY, "RUN_PROGRESS", f"r{me}-{lane}", "a", "running", 0.0)
            began = time.monotonic()
            await store.accept(event, [JobSpec("slack", "route")])
            latencies.append(time.monotonic() - began)
            i += 1

    async def one(i: int) -> None:
        eid = f"p{me}-{i}"
        event = NewEvent(eid, eid, BODY, "RUN_PROGRESS", f"r{me}-{i % 50}", "a", "running", 0.0)
        began = time.monotonic()
        await store.accept(event, [JobSpec("slack", "route")])
        latencies.append(time.monotonic() - began)

    if rate > 0:  # open loop: one accept every 1/rate s, whether the last one returned or not
        tasks, i = [], 0
        while (due := start + i / rate) < stop:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
            i += 1
        await asyncio.gather(*tasks)
    else:
        await asyncio.gather(*(accepter(lane) for lane in range(concurrency)))
    wall, cpu = time.monotonic() - start, time.process_time() - cpu0
    commits = store.commits
    await store.close()
    print(json.dumps({"accepts": len(latencies), "cpu": cpu, "wall": wall, "commits": commits,
                      "latencies": sorted(latencies)}), flush=True)  # fmt: skip


def run_variant(
    processes: int, concurrency: int, busy: str, args: argparse.Namespace
) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="store-writers-", dir=args.dir))
    command = [sys.executable, "-m", "bench.store_writers", "--child", str(folder / "relay.db"),
               "--concurrency", str(concurrency), "--seconds", str(args.seconds),
               "--sync", args.sync, "--busy", busy, "--spin-ms", str(args.spin_ms),
               "--rate", str(args.rate / processes)]  # fmt: skip
    procs = [
        subprocess.Popen([*command, "--me", str(me)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for me in range(processes)
    ]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.communicate()[0].splitlines()[-1]) for proc in procs]
    accepts = sum(r["accepts"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "accepts_per_s": accepts / max(r["wall"] for r in results),
        "cpu_us_per_accept": 1e6 * sum(r["cpu"] for r in results) / accepts,
        "accepts_per_commit": accepts / sum(r["commits"] for r in results),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store_writers")
    parser.add_argument("--variants", default="1x64,2x32,2x64")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sync", choices=["full", "normal"], default="full")
    parser.add_argument("--busy", default="turn", help=argparse.SUPPRESS)
    parser.add_argument("--spin-ms", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=0.0, help="accepts/s offered (0: closed)")
    parser.add_argument("--dir", default=None, help="where the files go (default: the temp dir)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--me", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        SpinningConnection.spin = args.spin_ms / 1000
        if args.busy != "turn":  # SQLite's busy handler alone, or polling BEGIN IMMEDIATE
            SharedSQLiteStore._new_turn = _no_turn  # type: ignore[method-assign,assignment]
        if args.busy == "spin":
            SQLiteStore._connection = _spinning  # type: ignore[method-assign]
        asyncio.run(
            child(Path(args.child), args.me, args.concurrency, args.seconds, args.sync, args.rate)
        )
        return
    variants = args.variants.split(",")
    figures: dict[str, list[dict[str, float]]] = {}
    for round_ in range(args.rounds):
        for name in variants if round_ % 2 == 0 else variants[::-1]:
            shape, _, busy = name.partition(":")
            processes, concurrency = (int(n) for n in shape.split("x"))
            figures.setdefault(name, []).append(
                run_variant(processes, concurrency, busy or "turn", args)
            )
            print(f"round {round_ + 1} {name}: {figures[name][-1]}", file=sys.stderr)
    load = f"rate={args.rate:g}/s" if args.rate else "closed loop"
    print(f"sync={args.sync} {load} (medians of {args.rounds} rounds)")
    for name, rows in figures.items():
        median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        print(f"{name:>10}: " + "  ".join(f"{key} {value:,.1f}" for key, value in median.items()))


if __name__ == "__main__":
    main()
