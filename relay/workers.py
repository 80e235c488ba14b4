"""`relay serve` with several worker processes (``server.workers``): the supervisor's side.

The supervisor serves nothing itself. It reserves the port (a socket bound with ``SO_REUSEPORT``
that never listens), starts N workers that each run the whole relay on that port and store, says
``relay listening`` once all of them listen, restarts one that dies, forwards SIGHUP, and on
SIGTERM stops them all (each drains as a single relay does). Design: docs/workers.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONTROL_READY",
    "CONTROL_RELOADED",
    "METRICS_DIR_ENV",
    "Plan",
    "Supervisor",
    "WorkerLink",
    "can_share_port",
    "exec_supervisor",
    "main",
    "reserve_port",
    "resolve_workers",
    "worker_command",
]

log = logging.getLogger("relay")

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's multiprocess mode: where every worker writes its metrics."""
CONTROL_READY = b"ready\n"
CONTROL_RELOADED = b"reloaded\n"
YOUNG_DEATH_S = 10.0
"""A worker that dies sooner than this after its start is restarted after a growing pause."""
MAX_RESTART_PAUSE_S = 10.0
STOP_MARGIN_S = 10.0
"""Beyond ``delivery.shutdown_grace``, how long a stopping worker may take before it is killed."""
PARENT_POLL_S = 0.5


def resolve_workers(setting: int | str) -> int:
    """``auto``: the CPUs this process may run on; else the number given."""
    if setting != "auto":
        return int(setting)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def can_share_port() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` that never listens: it holds the
    port (``port`` 0 picks a free one) while workers bind and listen on it. Raises ``OSError``."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class WorkerLink:
    """A worker's line back to its supervisor (an inherited pipe), and the watch on its parent."""

    def __init__(self, index: int, fd: int) -> None:
        self.index = index
        self._fd = fd
        self._parent = os.getppid()

    def send(self, message: bytes) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: the parent watch stops us
            os.write(self._fd, message)

    async def parent_gone(self) -> None:
        """Returns once the supervisor has died (this process was re-parented)."""
        while os.getppid() == self._parent:  # noqa: ASYNC110 (no event tells of it)
            await asyncio.sleep(PARENT_POLL_S)


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    started_at: float
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    listener: asyncio.Task[None] | None = None


class Supervisor:
    """Starts, watches and stops ``count`` workers; ``command(index)`` is a worker's argv, to
    which the supervisor appends the control pipe's descriptor."""

    def __init__(
        self,
        command: Callable[[int], Sequence[str]],
        count: int,
        *,
        stop_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._command = command
        self._count = count
        self._stop_timeout = stop_timeout
        self._clock = clock
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._failed_start = asyncio.Event()
        self._deaths: dict[int, int] = {}
        self._metrics_dir = tempfile.mkdtemp(prefix="relay-metrics-")
        self._env = {**os.environ, METRICS_DIR_ENV: self._metrics_dir}

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers.values()]

    async def start(self) -> bool:
        """Start every worker and wait until each listens; False (all stopped) if one exits
        first: its own log line says why."""
        for index in range(1, self._count + 1):
            await self._spawn(index)
        all_ready: asyncio.Future[Any] = asyncio.gather(
            *(w.ready.wait() for w in self._workers.values())
        )
        failed: asyncio.Future[Any] = asyncio.create_task(self._failed_start.wait())
        try:
            await asyncio.wait([all_ready, failed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (all_ready, failed):
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
        if self._failed_start.is_set():
            await self.stop()
            return False
        return True

    async def _spawn(self, index: int) -> None:
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command(index),
                "--control-fd",
                str(write_fd),
                pass_fds=(write_fd,),
                env=self._env,
            )
        finally:
            os.close(write_fd)
        worker = _Worker(index, process, self._clock())
        self._workers[index] = worker
        worker.listener = asyncio.create_task(self._listen(worker, read_fd))

    async def _listen(self, worker: _Worker, read_fd: int) -> None:
        """Read the worker's messages until it exits, then restart it (unless stopping)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            async for line in reader:
                if line == CONTROL_READY:
                    worker.ready.set()
                elif line == CONTROL_RELOADED:
                    self._signal_others(worker, signal.SIGHUP)
        finally:
            transport.close()
        code = await worker.process.wait()
        self._forget_metrics(worker.process.pid)
        if self._stopping:
            return
        if not worker.ready.is_set():
            log.error("worker %d exited (%s) before it listened", worker.index, _status(code))
            self._failed_start.set()
            return
        await self._restart(worker, code)

    async def _restart(self, dead: _Worker, code: int) -> None:
        young = self._clock() - dead.started_at < YOUNG_DEATH_S
        deaths = self._deaths[dead.index] = self._deaths.get(dead.index, 0) + 1 if young else 0
        pause = min(MAX_RESTART_PAUSE_S, 0.5 * 2 ** (deaths - 1)) if deaths else 0.0
        log.warning(
            "worker %d (pid %d) died (%s); starting a new one%s",
            dead.index,
            dead.process.pid,
            _status(code),
            f" in {pause:g}s" if pause else "",
            extra={"worker": dead.index, "pid": dead.process.pid},
        )
        if pause:
            await asyncio.sleep(pause)
        if not self._stopping:
            await self._spawn(dead.index)

    def _signal_others(self, sender: _Worker | None, sig: signal.Signals) -> None:
        for worker in self._workers.values():
            if worker is not sender and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(sig)

    def reload_all(self) -> None:
        """SIGHUP to every worker (each reloads its config)."""
        self._signal_others(None, signal.SIGHUP)

    async def stop(self) -> None:
        """SIGTERM to every worker, wait for them to drain; kill those that take too long."""
        self._stopping = True
        self._signal_others(None, signal.SIGTERM)
        processes = [w.process for w in self._workers.values()]
        waits = [asyncio.create_task(p.wait()) for p in processes]
        if waits:
            _, late = await asyncio.wait(waits, timeout=self._stop_timeout)
            for process in processes:
                if process.returncode is None:
                    log.warning("worker pid %d did not stop in time: killed", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if late:
                await asyncio.wait(late)
        listeners = [w.listener for w in self._workers.values() if w.listener is not None]
        await asyncio.gather(*listeners, return_exceptions=True)
        shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _forget_metrics(self, pid: int) -> None:
        """Drop a gone worker's live gauges from the merged ``/metrics`` (its counts stay).

        prometheus-client itself, not ``relay.metrics``: this process stays small."""
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def worker_command(argv: Sequence[str], index: int) -> list[str]:
    """This interpreter running ``relay ARGV --worker INDEX``."""
    return [sys.executable, "-m", "relay", *argv, "--worker", str(index)]


@dataclass(frozen=True)
class Plan:
    """What ``relay serve`` decided before it became the supervisor (``exec_supervisor``)."""

    port_fd: int
    """The reserved port's socket (inherited across the exec)."""
    workers: int
    stop_timeout: float
    url: str
    config: str
    store: str
    log_format: str
    worker_argv: tuple[str, ...]


def exec_supervisor(plan: Plan) -> None:
    """Replace this process (its pid stays, so do signals sent to it) with a fresh interpreter
    that only supervises: the config, the store and the web stack stay out of its memory."""
    os.set_inheritable(plan.port_fd, True)
    argv = [sys.executable, "-m", "relay.workers", "--port-fd", str(plan.port_fd)]
    argv += ["--workers", str(plan.workers), "--stop-timeout", str(plan.stop_timeout)]
    argv += ["--url", plan.url, "--config", plan.config, "--store", plan.store]
    argv += ["--log-format", plan.log_format, "--", *plan.worker_argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The supervisor process: ``python -m relay.workers`` as ``exec_supervisor`` starts it."""
    import argparse

    from relay.logs import setup_logging

    parser = argparse.ArgumentParser(prog="relay serve")
    parser.add_argument("--port-fd", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--stop-timeout", type=float, required=True)
    for name in ("--url", "--config", "--store", "--log-format"):
        parser.add_argument(name, required=True)
    parser.add_argument("worker_argv", nargs="+")
    args = parser.parse_args(argv)
    setup_logging(args.log_format)
    reserved = socket.socket(fileno=args.port_fd)  # held, never listening, until we exit
    with reserved:
        return asyncio.run(_supervise(args))


async def _supervise(args: Any) -> int:
    supervisor = Supervisor(
        functools.partial(worker_command, args.worker_argv),
        args.workers,
        stop_timeout=args.stop_timeout,
    )
    if not await supervisor.start():
        log.error("cannot start: a worker did not start (its error is logged above)")
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, supervisor.reload_all)
    log.info(
        "relay listening on %s (config %s, store %s, %d workers)",
        args.url,
        args.config,
        args.store,
        args.workers,
        extra={
            "url": args.url,
            "config": args.config,
            "store": args.store,
            "workers": args.workers,
        },
    )
    await stop.wait()
    log.info("relay stopping: the workers finish their in-flight deliveries")
    await supervisor.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
