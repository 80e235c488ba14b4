"""Shared by every benchmark: payloads with distinct run ids, tables, results, machine facts."""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "PLACEHOLDER",
    "RESULTS_DIR",
    "RUN_ID_PATTERN",
    "SAMPLE",
    "Result",
    "Table",
    "closed_port",
    "machine",
    "new_nonce",
    "percentile",
    "processes_label",
    "relay_knows_workers",
    "run_id",
    "sample_template",
    "with_workers",
    "workers_line",
    "write_result",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SAMPLE = "run_finished_completed_youtube"
"""The payload every benchmark sends: a real RUN_FINISHED sample (YouTube trigger, one output)."""
PLACEHOLDER = "@RUN_ID@"
RUN_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4000-8000-[0-9a-f]{12}")
"""Run ids the benchmarks make (see ``run_id``); nothing else in a message has this shape."""


def new_nonce() -> str:
    """12 hex digits that make one batch's run ids differ from every other batch's."""
    return secrets.token_hex(6)


def run_id(index: int, nonce: str, worker: int = 0) -> str:
    """A UUID-shaped run id, distinct per (index, worker, nonce): every request a new event."""
    return f"{index:08x}-{worker:04x}-4000-8000-{nonce}"


def sample_template(name: str = SAMPLE) -> bytes:
    """The sample's JSON with its run id replaced by ``PLACEHOLDER``."""
    data = json.loads((resources.files("relay") / "samples" / f"{name}.json").read_bytes())
    data["run_id"] = PLACEHOLDER
    return json.dumps(data, separators=(",", ":")).encode()


def relay_knows_workers() -> bool:
    """Whether this relay's config accepts ``server.workers`` (several processes on one port)."""
    from relay.config import ConfigError, parse_config

    try:
        parse_config('{"auth": {"allow_unsigned": true}, "server": {"workers": 1}}')
    except ConfigError:
        return False
    return True


def with_workers(config: str, workers: int | None) -> str:
    """A relay config (one without a ``server:`` block) with ``server: {workers: N}`` added; None
    leaves it unset, so the relay's default (``auto``: one worker per CPU) applies."""
    if workers is None:
        return config
    return config.rstrip("\n") + f"\nserver:\n  workers: {workers}\n"


def processes_label(count: int) -> str:
    """A relay's measured process count: ``1``, or ``3 (supervisor + 2 workers)``."""
    return str(count) if count <= 1 else f"{count} (supervisor + {count - 1} workers)"


def workers_line(workers: int | None) -> str:
    """How the relay's process count is set in this run, for the machine line."""
    if workers is not None:
        return f"relay server.workers: {workers} (--workers)"
    if not relay_knows_workers():
        return "relay: one process (this relay has no server.workers)"
    return f"relay server.workers: unset (auto: {len(os.sched_getaffinity(0))} CPUs)"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Table:
    """A Markdown table: printed as is, and pasted as is into docs/benchmarks.md."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([_cell(c) for c in cells])

    def render(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.columns, *self.rows]) for i in range(len(self.columns))
        ]
        lines = [f"### {self.title}", ""]
        for index, row in enumerate([self.columns, *self.rows]):
            lines.append(
                "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
            )
            if index == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@dataclass
class Result:
    """What one benchmark hands back: tables to print, figures to store, targets met or not."""

    name: str
    tables: list[Table]
    data: dict[str, Any]
    targets: list[dict[str, Any]] = field(default_factory=list)

    def target(self, what: str, goal: str, measured: str, met: bool | None) -> None:
        """``met`` None: could not be measured in this run."""
        self.targets.append({"target": what, "goal": goal, "measured": measured, "met": met})

    def render(self) -> str:
        return "\n\n".join(t.render() for t in self.tables)


def write_result(result: Result, out_dir: Path, params: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result.name}.json"
    document = {
        "bench": result.name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "params": params,
        "results": result.data,
        "targets": result.targets,
        "tables": [{"title": t.title, "columns": t.columns, "rows": t.rows} for t in result.tables],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def machine(work_dir: Path | None = None) -> dict[str, Any]:
    """What the numbers were measured on (the machine may be shared: see ``loadavg``)."""
    import aiohttp

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        loadavg = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        loadavg = []
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(_mem_total_kib() / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "sqlite": sqlite3.sqlite_version,
        "filesystem": filesystem_of(work_dir or Path(tempfile.gettempdir())),
        "wrk": tool_version(["wrk", "-v"]),
        "alertmanager": tool_version(["prometheus-alertmanager", "--version"]),
        "loadavg": loadavg,
        "argv": sys.argv[1:],
    }


def _mem_total_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path`` (fsync on tmpfs costs nothing: say so)."""
    best, kind = "", "unknown"
    try:
        target = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount = parts[1]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def tool_version(argv: list[str]) -> str | None:
    """The first line a tool prints about its version; None when it is not installed."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else argv[0]
