"""`relay serve` as a real subprocess on a free port, and the `relay` CLI beside it.

Each process writes its stdout and its (JSON) log to files next to the config, numbered so a
restart on the same folder keeps the earlier logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from relay.cli import main

__all__ = ["CliResult", "RelayProcess", "process_gone", "relay_env", "run_cli"]

START_TIMEOUT = 20.0
SERVE = (sys.executable, "-m", "relay", "serve")
_ADDRESS = re.compile(r"listening on (http://\S+)")
_numbers = itertools.count(1)


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie is left."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def relay_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MOSAIC_WEBHOOK_SECRET", None)
    return env


class RelayProcess:
    """``relay serve -c CONFIG --port 0``; ``url`` is its webhook URL once it listens.

    ``workers``: ``--workers N`` (by default 1; None: the config's ``server.workers``);
    ``watch=False``:
    ``--no-watch``. The relay runs in a
    process group of its own, so ``kill`` takes its workers down with it, like a crash.
    The constructor waits (blocking) until the relay listens unless ``wait=False``; in async
    tests use ``await RelayProcess.launch(config)`` instead.
    """

    def __init__(
        self, config: Path, *, wait: bool = True, workers: int | None = 1, watch: bool = True
    ) -> None:
        number = next(_numbers)
        self.config = config
        self.stderr_path = config.parent / f"relay-{number}.stderr.log"
        self.stdout_path = config.parent / f"relay-{number}.stdout.log"
        argv = [*SERVE, "-c", str(config), "--port", "0", "--log-format", "json"]
        if workers is not None:
            argv += ["--workers", str(workers)]
        if not watch:
            argv.append("--no-watch")
        with self.stdout_path.open("w") as stdout, self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                argv,
                stdout=stdout,
                stderr=stderr,
                env=relay_env(),
                cwd=config.parent,
                start_new_session=True,
            )
        self.url = ""
        if wait:
            deadline = time.monotonic() + START_TIMEOUT
            while not self._found_address():
                if time.monotonic() > deadline:
                    raise AssertionError("relay did not start in time")
                time.sleep(0.02)

    @classmethod
    async def launch(
        cls, config: Path, *, workers: int | None = 1, watch: bool = True
    ) -> RelayProcess:
        relay = cls(config, wait=False, workers=workers, watch=watch)
        deadline = time.monotonic() + START_TIMEOUT
        while not relay._found_address():
            if time.monotonic() > deadline:
                relay.kill()
                raise AssertionError("relay did not start in time")
            await asyncio.sleep(0.02)
        return relay

    def _found_address(self) -> bool:
        found = _ADDRESS.search(self.log())
        if found:
            self.url = found.group(1)
            return True
        if self.proc.poll() is not None:
            raise AssertionError(f"relay exited with {self.proc.returncode}: {self.log()}")
        return False

    def log(self) -> str:
        return self.stderr_path.read_text()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM: stop accepting, drain in-flight sends, exit."""
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the relay and its workers: they die wherever they are."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def workers(self) -> list[int]:
        """The pids of the worker processes (none when the relay serves alone)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                    pids.append(int(stat.parent.name))
        return sorted(pids)

    def stop(self) -> int:
        if self.alive:
            self.terminate()
        return self.proc.wait(timeout=20)

    async def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"relay still running after {timeout}s")
            await asyncio.sleep(0.01)
        return self.proc.returncode


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


async def run_cli(config: Path, *args: str) -> CliResult:
    """Run ``relay ARGS -c CONFIG`` (the CLI's ``main``, in a thread: no interpreter start-up
    per command) without blocking the event loop."""

    def call() -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args, "-c", str(config)])
        return CliResult(code, out.getvalue(), err.getvalue())

    return await asyncio.to_thread(call)
