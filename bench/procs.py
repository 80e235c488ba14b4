"""The processes a benchmark runs: the relay, the bare handler, the Slack sink, Alertmanager.

Each is a child process with its output in the work folder, started with a deadline and stopped
(terminate, then kill) when the benchmark leaves its ``with`` block. A service may start processes
of its own (the relay's workers, ``bench.bare --processes N``): its CPU and memory are summed over
all of them, and any of them still running after it stopped is killed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from bench import ptree
from bench.common import closed_port

__all__ = [
    "ALERTMANAGER",
    "Service",
    "child_env",
    "get_json",
    "launch_python",
    "launch_relay",
    "start_alertmanager",
    "start_python",
    "start_relay",
    "wait_until",
]

ALERTMANAGER = "prometheus-alertmanager"
START_TIMEOUT = 30.0
_ROOT = str(Path(__file__).resolve().parent.parent)
"""Where ``bench`` imports from, for children started in a work folder."""
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def child_env() -> dict[str, str]:
    """The environment for children: unbuffered, no proxy (all traffic stays on 127.0.0.1)."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env.pop("MOSAIC_WEBHOOK_SECRET", None)
    env["PYTHONUNBUFFERED"] = "1"
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _ROOT + (os.pathsep + path if path else "")
    return env


def get_json(url: str, timeout: float = 10.0) -> Any:
    with _NO_PROXY.open(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``check()`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


class Service:
    """A child process whose stdout/stderr go to files named after it in ``work``."""

    def __init__(self, name: str, argv: list[str], work: Path, announce: str = "") -> None:
        self.name = name
        self.stderr_path = work / f"{name}.stderr"
        self.url = ""
        self._announce = announce
        with (work / f"{name}.stdout").open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=child_env(), cwd=work)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tree(self) -> list[ptree.Proc]:
        """This process and every live process it started."""
        return ptree.tree(self.pid, zombies=False)

    def processes(self) -> int:
        return len(self.tree())

    def cpu_seconds(self) -> float:
        """CPU time used so far, summed over this process and every process it started."""
        return ptree.cpu_seconds(self.pid)

    def status_kib(self, field: str, file: str = "status") -> tuple[int, int]:
        """A ``/proc/PID/status`` figure (``VmRSS``, ``VmHWM``; ``Pss`` from ``smaps_rollup``)
        summed over the tree, and over how many processes."""
        procs = self.tree()
        return ptree.status_kib(procs, field, file), len(procs)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.stderr()[-2000:]}")
            return re.search(pattern, self.stderr())

        match: re.Match[str] = wait_until(found, timeout, f"{self.name} start")
        return match

    def ready(self, timeout: float = START_TIMEOUT) -> Service:
        """Wait until it announces its URL (group 1 of the ``announce`` pattern); stop on failure."""
        try:
            self.url = self.wait_for(self._announce, timeout).group(1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        started = ptree.tree(self.pid)[1:]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        # What it started should have stopped with it: if not, nothing else will stop it.
        ptree.kill_all(started, signal.SIGKILL)

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def launch_relay(config: Path, work: Path, name: str = "relay") -> Service:
    """``relay serve`` on a free port, not waited for: call ``ready()`` (``url`` = webhook URL)."""
    argv = [sys.executable, "-m", "relay", "serve", "-c", str(config), "--port", "0"]
    return Service(name, [*argv, "--log-format", "json"], work, r"relay listening on (http://\S+)")


def launch_python(module: str, args: list[str], work: Path, name: str) -> Service:
    """A ``python -m bench.X`` server that prints ``listening on URL``; call ``ready()``."""
    return Service(name, [sys.executable, "-m", module, *args], work, r"listening on (http://\S+)")


def start_relay(config: Path, work: Path, name: str = "relay") -> Service:
    return launch_relay(config, work, name).ready()


def start_python(module: str, args: list[str], work: Path, name: str) -> Service:
    return launch_python(module, args, work, name).ready()


def start_alertmanager(config: Path, work: Path) -> Service | None:
    """Alertmanager alone (no cluster), on 127.0.0.1; None when it is not installed."""
    binary = shutil.which(ALERTMANAGER)
    if binary is None:
        return None
    port = closed_port()
    storage = work / "alertmanager-data"
    storage.mkdir(exist_ok=True)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    service = Service("alertmanager", argv, work)
    service.url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if service.proc.poll() is not None:
            raise RuntimeError(f"alertmanager exited: {service.stderr()[-2000:]}")
        try:
            with _NO_PROXY.open(f"{service.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(ready, START_TIMEOUT, "alertmanager start", interval=0.05)
    except BaseException:
        service.stop()
        raise
    return service
