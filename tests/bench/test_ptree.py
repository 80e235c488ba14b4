"""A server's process tree, read from /proc: what the benchmarks sum CPU and memory over."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench import ptree
from bench.procs import wait_until

# A parent that starts a child, reaps it when it ends, then stays; both burn a little CPU first.
PARENT = """
import subprocess, sys, time
sum(range(2_000_000))
child = subprocess.Popen([sys.executable, "-c", "import time; sum(range(2_000_000)); time.sleep(60)"])
print(child.pid, flush=True)
child.wait()
time.sleep(60)
"""


@pytest.fixture
def parent() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    try:
        yield proc, child
    finally:
        ptree.kill_all(ptree.tree(proc.pid), signal.SIGKILL)
        proc.wait()


def test_tree_holds_the_process_and_what_it_started(
    parent: tuple[subprocess.Popen[str], int],
) -> None:
    proc, child = parent
    found = ptree.tree(proc.pid)
    assert [p.pid for p in found] == [proc.pid, child]
    assert found[1].ppid == proc.pid
    assert ptree.tree(child)[0].pid == child


def test_cpu_and_memory_are_summed_over_the_tree(
    parent: tuple[subprocess.Popen[str], int],
) -> None:
    proc, child = parent
    wait_until(lambda: ptree.cpu_seconds(child) > 0, 30, "child CPU")
    assert ptree.cpu_seconds(proc.pid) > ptree.cpu_seconds(child)
    procs = ptree.tree(proc.pid)
    rss = [ptree.status_kib([p], "VmRSS") for p in procs]
    assert all(kib > 0 for kib in rss)
    assert ptree.status_kib(procs, "VmRSS") == pytest.approx(sum(rss), rel=0.2)


def test_a_reaped_child_still_counts_in_its_parent(
    parent: tuple[subprocess.Popen[str], int],
) -> None:
    proc, child = parent
    wait_until(lambda: ptree.cpu_seconds(child) > 0, 30, "child CPU")
    before = ptree.cpu_seconds(proc.pid)
    ptree.kill_all([ptree.tree(child)[0]], signal.SIGKILL)
    wait_until(lambda: len(ptree.tree(proc.pid)) == 1, 30, "child reaped")
    assert ptree.cpu_seconds(proc.pid) >= before


def test_kill_all_spares_a_process_that_only_has_the_same_pid(
    parent: tuple[subprocess.Popen[str], int],
) -> None:
    proc, child = parent
    (live,) = [p for p in ptree.tree(proc.pid) if p.pid == child]
    impostor = dataclasses.replace(live, start=live.start - 1)
    assert ptree.kill_all([impostor], signal.SIGKILL) == 0
    assert ptree.read(child) is not None
    assert ptree.kill_all([live], signal.SIGKILL) == 1
    wait_until(lambda: _gone(child), 30, "kill")


def _gone(pid: int) -> bool:
    found = ptree.read(pid)
    return found is None or found.state == "Z"
