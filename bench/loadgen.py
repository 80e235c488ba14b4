"""The load generator, run in its own process: ``python -m bench.loadgen SPEC.json OUT.json``.

Modes (``spec["mode"]``):
- ``closed``: N connections, each sending the next request as soon as the last is answered, for
  ``duration`` seconds from ``start_at`` (wall clock, so several processes start together).
- ``open``: ``rate`` requests/s on a fixed schedule for ``duration`` seconds; each latency is
  timed from the request's *intended* send time, so a stalled server cannot hide its queue
  (no coordinated omission). New connections are opened when all are busy, up to ``max_conns``.
  With ``answers: true`` it also records when each was answered, as ``post`` does.
- ``post``: ``count`` requests over ``connections`` connections as fast as answered; records when
  each was answered (``time.monotonic()``, comparable with the sink's clock). ``urls`` (instead
  of ``url``) spreads the connections over several servers, round robin.

Every request body is the template with ``@RUN_ID@`` replaced by a distinct run id. The client is
a minimal HTTP/1.1 keep-alive client on asyncio streams: a fraction of aiohttp's client cost per
request, so the generator is not what saturates first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import PLACEHOLDER, percentile, run_id

__all__ = ["Connection", "Target", "run"]

REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    """Where to POST and what: ``body(i)`` is request ``i``'s bytes, head included."""

    host: str
    port: int
    head: bytes
    pre: bytes
    post: bytes
    nonce: str
    worker: int

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Target:
        url = urllib.parse.urlsplit(spec["url"])
        template = Path(spec["template"]).read_bytes()
        pre, found, post = template.partition(PLACEHOLDER.encode())
        if not found:
            raise ValueError(f"template has no {PLACEHOLDER}")
        length = len(pre) + len(run_id(0, spec["nonce"])) + len(post)
        headers = {
            "Host": f"{url.hostname}:{url.port}",
            "Content-Type": "application/json",
            **spec.get("headers", {}),
            "Content-Length": str(length),
        }
        head = f"POST {url.path or '/'} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        return cls(
            host=url.hostname or "127.0.0.1",
            port=url.port or 80,
            head=(head + "\r\n").encode(),
            pre=pre,
            post=post,
            nonce=spec["nonce"],
            worker=int(spec.get("worker", 0)),
        )

    def request(self, index: int) -> bytes:
        return self.head + self.pre + run_id(index, self.nonce, self.worker).encode() + self.post


class Connection:
    """One keep-alive HTTP/1.1 connection; ``send`` returns the answer's status code."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, target: Target) -> Connection:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> int:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def _send(
    target: Target, conn: Connection | None, index: int
) -> tuple[Connection | None, int]:
    """Send request ``index``, connecting first if ``conn`` is None; status 0 = transport error
    (the connection is then dropped: the next send reconnects)."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            if conn is None:
                conn = await Connection.open(target)
            return conn, await conn.send(target.request(index))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        if conn is not None:
            conn.close()
        return None, 0


async def closed_loop(target: Target, connections: int, duration: float, start_at: float) -> Any:
    counter = iter(range(1 << 31))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    conns = [await Connection.open(target) for _ in range(connections)]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    start = time.monotonic()
    end = start + duration

    async def worker(conn: Connection | None) -> None:
        while time.monotonic() < end:
            sent = time.monotonic()
            conn, status = await _send(target, conn, next(counter))
            done = time.monotonic()
            if done <= end:
                statuses[status] += 1
                latencies.append(done - sent)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker(c) for c in conns))
    return {
        "requests": sum(statuses.values()),
        "duration": duration,
        "statuses": {str(k): v for k, v in statuses.items()},
        "latency_ms": _summary(latencies),
    }


class _Pool:
    def __init__(self, target: Target, limit: int) -> None:
        self.target = target
        self.limit = limit
        self.opened = 0
        self.idle: asyncio.Queue[Connection | None] = asyncio.Queue()

    async def fill(self, count: int) -> None:
        for _ in range(min(count, self.limit)):
            self.opened += 1
            self.idle.put_nowait(await Connection.open(self.target))

    async def get(self) -> Connection | None:
        """An idle connection, or None: open a new one (the caller does, inside its timeout)."""
        if self.idle.empty() and self.opened < self.limit:
            self.opened += 1
            return None
        return await self.idle.get()


async def open_loop(
    target: Target, rate: float, duration: float, max_conns: int, keep_answers: bool = False
) -> Any:
    pool = _Pool(target, max_conns)
    await pool.fill(8)
    total = max(1, int(rate * duration))
    latencies = [math.nan] * total
    lags = [math.nan] * total
    answers: list[list[float]] = []
    statuses: Counter[int] = Counter()
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int, intended: float) -> None:
        lags[index] = time.monotonic() - intended
        conn = await pool.get()
        conn, status = await _send(target, conn, index)
        answered = time.monotonic()
        latencies[index] = answered - intended
        answers.append([index, answered, status])
        statuses[status] += 1
        pool.idle.put_nowait(conn)

    start = time.monotonic() + 0.01
    index = 0
    while index < total:
        now = time.monotonic()
        due = start + index / rate
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while index < total and start + index / rate <= now:
            task = asyncio.create_task(one(index, start + index / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REQUEST_TIMEOUT * 2):
            while tasks:
                await asyncio.gather(*tasks)
    answered = [x for x in latencies if not math.isnan(x)]
    return {
        **({"answers": answers} if keep_answers else {}),
        "rate": rate,
        "sent": total,
        "answered": len(answered),
        "statuses": {str(k): v for k, v in statuses.items()},
        "connections": pool.opened,
        "latency_ms": _summary(answered),
        "send_lag_ms": _summary([x for x in lags if not math.isnan(x)]),
        "latencies_ms": [round(x * 1000, 4) for x in answered],
    }


async def post_all(targets: list[Target], count: int, connections: int) -> Any:
    indexes = iter(range(count))
    answers: list[list[float]] = []
    assigned = [targets[i % len(targets)] for i in range(min(connections, count))]
    conns = [await Connection.open(target) for target in assigned]
    first = time.monotonic()

    async def worker(target: Target, conn: Connection | None) -> None:
        for index in indexes:
            conn, status = await _send(target, conn, index)
            answers.append([index, time.monotonic(), status])
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker(t, c) for t, c in zip(assigned, conns, strict=True)))
    return {"first_post": first, "last_answer": time.monotonic(), "answers": answers}


def _summary(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"count": 0}
    return {
        "count": len(seconds),
        "p50": percentile(seconds, 50) * 1000,
        "p90": percentile(seconds, 90) * 1000,
        "p99": percentile(seconds, 99) * 1000,
        "max": max(seconds) * 1000,
    }


async def run(spec: dict[str, Any]) -> Any:
    mode = spec["mode"]
    if mode == "post" and "urls" in spec:
        targets = [Target.from_spec({**spec, "url": url}) for url in spec["urls"]]
        return await post_all(targets, spec["count"], spec["connections"])
    target = Target.from_spec(spec)
    if mode == "closed":
        return await closed_loop(
            target, spec["connections"], spec["duration"], spec.get("start_at", 0.0)
        )
    if mode == "open":
        return await open_loop(
            target, spec["rate"], spec["duration"], spec.get("max_conns", 256),
            bool(spec.get("answers")),
        )  # fmt: skip
    if mode == "post":
        return await post_all([target], spec["count"], spec["connections"])
    raise ValueError(f"unknown mode {mode!r}")


def main(argv: list[str]) -> None:
    spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    result = asyncio.run(run(spec))
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
