"""A server and every process it started, read from ``/proc``: one relay is its supervisor and all
its workers, so its CPU and memory are summed over that tree.

Each process is known by (pid, start time), so a pid reused by an unrelated process is never
taken for one that has exited.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Proc", "cpu_seconds", "kill_all", "snapshot", "status_kib", "tree"]

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    """``R``, ``S``, …; ``Z``: exited, not yet reaped by its parent."""
    start: int
    """Start time in clock ticks after boot (field 22 of ``/proc/PID/stat``)."""
    cpu_ticks: int
    """User + system time, its own and that of the children it has reaped (so the CPU of a worker
    that exited is still counted, in its parent)."""


def read(pid: int) -> Proc | None:
    """``/proc/PID/stat``, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text.rpartition(")")[2].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return Proc(pid, int(fields[1]), fields[0], int(fields[19]), utime + stime + cutime + cstime)


def snapshot() -> dict[int, Proc]:
    """Every process on the machine (the ones this user may read)."""
    procs = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            found = read(int(entry.name))
            if found is not None:
                procs[found.pid] = found
    return procs


def tree(root: int, *, zombies: bool = True) -> list[Proc]:
    """``root`` and all its descendants, root first; empty when ``root`` is gone. A zombie's CPU
    is not yet in its parent's: keep zombies to sum CPU, drop them to count live processes."""
    procs = snapshot()
    if root not in procs:
        return []
    children: dict[int, list[Proc]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc)
    found = [procs[root]]
    for proc in found:
        found.extend(children.get(proc.pid, []))
    return found if zombies else [proc for proc in found if proc.state != "Z"]


def cpu_seconds(root: int) -> float:
    """CPU time used so far by ``root`` and its descendants (threads included)."""
    return sum(proc.cpu_ticks for proc in tree(root)) / TICKS


def status_kib(procs: list[Proc], field: str, file: str = "status") -> int:
    """The sum of a ``kB`` line of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``) over ``procs``;
    ``file="smaps_rollup"`` for ``Pss`` (shared pages divided among the processes sharing them)."""
    total = 0
    for proc in procs:
        try:
            lines = Path(f"/proc/{proc.pid}/{file}").read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in lines:
            if line.startswith(field + ":"):
                total += int(line.split()[1])
                break
    return total


def kill_all(procs: list[Proc], sig: int) -> int:
    """Send ``sig`` to each of ``procs`` that is still the same process; how many got it."""
    sent = 0
    for proc in procs:
        now = read(proc.pid)
        if now is None or now.start != proc.start:
            continue
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            continue
        sent += 1
    return sent
