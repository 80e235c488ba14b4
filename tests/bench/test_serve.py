"""The bare handler in several processes on one port, as the relay's workers run."""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

from bench import ptree
from bench.procs import start_python, wait_until

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str) -> int:
    with _NO_PROXY.open(urllib.request.Request(url, data=b"{}", method="POST"), timeout=10) as r:
        status: int = r.status
        return status


def test_bare_in_several_processes_answers_on_one_port_and_stops_whole(tmp_path: Path) -> None:
    with start_python("bench.bare", ["--processes", "2"], tmp_path, "bare") as bare:
        assert bare.url.endswith("/webhooks/mosaic")
        assert "(2 processes)" in bare.stderr()
        procs = bare.tree()
        assert len(procs) == 3 == bare.processes()
        assert all(_post(bare.url) == 202 for _ in range(6))
        workers = procs[1:]
    wait_until(lambda: all(_gone(p) for p in workers), 30, "workers stopped")


def test_bare_processes_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    with start_python("bench.bare", ["--processes", "2"], tmp_path, "bare") as bare:
        workers = bare.tree()[1:]
        os.kill(bare.pid, signal.SIGKILL)
        bare.proc.wait()
        # Orphans notice their parent is gone and stop by themselves.
        wait_until(lambda: all(_gone(p) for p in workers), 30, "orphans stopped")


def test_one_process_is_still_the_default(tmp_path: Path) -> None:
    with start_python("bench.bare", [], tmp_path, "bare") as bare:
        assert bare.processes() == 1
        assert _post(bare.url) == 202


def _gone(proc: ptree.Proc) -> bool:
    now = ptree.read(proc.pid)
    return now is None or now.start != proc.start or now.state == "Z"
