"""Run an aiohttp app on 127.0.0.1 until SIGTERM/SIGINT, announcing its URL on stderr: in this
process (``serve``), or in N forked processes on one port with ``SO_REUSEPORT`` (``serve_many``),
the shape of ``relay serve`` with ``server.workers: N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable

from aiohttp import web

__all__ = ["serve", "serve_many"]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def serve(app: web.Application, port: int, path: str = "") -> None:
    asyncio.run(_serve(app, port, path))


async def _serve(
    app: web.Application, port: int, path: str, *, ready_fd: int | None = None
) -> None:
    """``ready_fd`` given: one of ``serve_many``'s processes (reuse the port, tell the parent on
    that pipe once listening, stop if the parent goes away)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=ready_fd is not None or None)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_fd is None:
        host, bound = runner.addresses[0][:2]
        print(f"listening on http://{host}:{bound}{path}", file=sys.stderr, flush=True)
        await stop.wait()
    else:
        os.write(ready_fd, b".")
        os.close(ready_fd)
        parent = os.getppid()
        while os.getppid() == parent:
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                continue
            break
    await runner.cleanup()


def serve_many(build: Callable[[], web.Application], port: int, path: str, processes: int) -> None:
    """``processes`` copies of ``build()`` on one port; this process only reserves the port (bound
    with ``SO_REUSEPORT``, never listening), starts them, and stops them on SIGTERM/SIGINT. Exits
    1 if one of them dies."""
    reserve = socket.socket()
    reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserve.bind(("127.0.0.1", port))
    port = reserve.getsockname()[1]
    ready_r, ready_w = os.pipe()
    children = [_fork(build, port, path, reserve, ready_r, ready_w) for _ in range(processes)]
    os.close(ready_w)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
    ready, deadline = 0, time.monotonic() + START_TIMEOUT
    while ready < processes:
        if _reaped_any() or time.monotonic() > deadline:
            print(f"a process did not start ({ready}/{processes} listening)", file=sys.stderr)
            _stop(children)
            sys.exit(1)
        if select.select([ready_r], [], [], 0.1)[0]:
            ready += len(os.read(ready_r, processes))
    print(f"listening on http://127.0.0.1:{port}{path} ({processes} processes)", file=sys.stderr)
    sys.stderr.flush()
    code = 0
    while True:
        sig = signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
        if sig != signal.SIGCHLD:
            break
        if _reaped_any():
            print("a process exited: stopping", file=sys.stderr, flush=True)
            code = 1
            break
    _stop(children)
    sys.exit(code)


def _fork(
    build: Callable[[], web.Application],
    port: int,
    path: str,
    reserve: socket.socket,
    ready_r: int,
    ready_w: int,
) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        reserve.close()
        os.close(ready_r)
        asyncio.run(_serve(build(), port, path, ready_fd=ready_w))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _reaped_any() -> bool:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return pid != 0


def _stop(children: list[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    left = set(children)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                left.discard(pid)
        time.sleep(0.01)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
