"""memory: peak RSS of the relay holding 100,000 pending deliveries (its channel is down).

The relay's only channel points at a closed local port, so every delivery attempt fails and is
retried later. The events are POSTed over HTTP like any webhook (a new run id each), then the
relay's peak RSS is read from ``/proc/PID/status`` (``VmHWM``), with the current RSS and the count
of unfinished jobs in its store. Every figure is summed over all the relay's processes (its
supervisor and workers): the sum of each process's peak is an upper bound of the peak of the sum.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    Result,
    Table,
    closed_port,
    new_nonce,
    processes_label,
    sample_template,
    with_workers,
)
from bench.load import Loader, post_all
from bench.procs import start_relay

__all__ = ["FULL", "QUICK", "MemoryParams", "run"]

SECRET = "bench-secret"


@dataclass(frozen=True)
class MemoryParams:
    events: int = 100_000
    connections: int = 32
    settle_seconds: float = 3.0
    """Time left to the retrying dispatcher after the last POST, before RSS is read."""
    timeout: float = 240.0
    workers: int | None = None
    """``server.workers`` written into the relay's config; None leaves it unset (auto)."""


FULL = MemoryParams()
QUICK = MemoryParams(events=200, connections=4, settle_seconds=0.2, timeout=30.0)

RELAY_CONFIG = """
auth:
  secrets: ["{secret}"]
store:
  url: sqlite:///relay.db
  sync: full
channels:
  team-slack:
    type: slack
    webhook_url: http://127.0.0.1:{port}/services/T000/B000/XXXX
routes:
  - name: finished-runs
    match: {{flag: RUN_FINISHED}}
    to: [team-slack]
"""


def run(params: MemoryParams = FULL) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        config = work / "relay.yaml"
        text = RELAY_CONFIG.format(secret=SECRET, port=closed_port())
        config.write_text(with_workers(text, params.workers))
        template = work / "event.json"
        template.write_bytes(sample_template())
        with start_relay(config, work) as relay:
            idle_kib, idle_processes = relay.status_kib("VmRSS")
            posted = post_all(
                Loader(work), relay.url, template, params.events, params.connections,
                new_nonce(), {"X-Mosaic-Signature": SECRET}, params.timeout,
            )  # fmt: skip
            time.sleep(params.settle_seconds)
            peak_kib, processes = relay.status_kib("VmHWM")
            figures = {
                "processes": max(idle_processes, processes),
                "idle_rss_mib": idle_kib / 1024,
                "peak_rss_mib": peak_kib / 1024,
                "rss_mib": relay.status_kib("VmRSS")[0] / 1024,
                "pss_mib": relay.status_kib("Pss", "smaps_rollup")[0] / 1024,
                "accepted": sum(1 for _, _, status in posted["answers"] if status == 202),
                "posting_seconds": posted["last_answer"] - posted["first_post"],
            }
            figures.update(_jobs(work / "relay.db"))
    return _report(params, figures)


def _jobs(db: Path) -> dict[str, Any]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        attempted = conn.execute(
            "SELECT count(*) FROM jobs WHERE attempts > 0 OR last_error IS NOT NULL"
        ).fetchone()[0]
    states = dict(rows)
    return {
        "pending": states.get("pending", 0) + states.get("inflight", 0),
        "job_states": states,
        "attempted": attempted,
    }


def _report(params: MemoryParams, f: dict[str, Any]) -> Result:
    table = Table(
        f"memory: relay RSS with {params.events:,} pending deliveries (channel down), summed "
        "over its processes",
        ["processes", "accepted", "pending jobs", "tried at least once", "RSS idle MiB",
         "peak RSS MiB", "RSS now MiB", "PSS now MiB", "posting s"],
    )  # fmt: skip
    table.add(
        processes_label(f["processes"]), f["accepted"], f["pending"], f["attempted"],
        f["idle_rss_mib"], f["peak_rss_mib"], f["rss_mib"], f["pss_mib"], f["posting_seconds"],
    )  # fmt: skip
    states = ", ".join(f"{k} {v:,}" for k, v in sorted(f["job_states"].items()))
    table.notes.append(
        f"Job states after the run: {states} (a job is dead-lettered after `max_attempts`). "
        f"Events POSTed over HTTP ({params.connections} connections), each a new run id; the "
        f"channel's port is closed, so the dispatcher keeps failing and rescheduling them. Peak "
        f"RSS is VmHWM from /proc/PID/status, read {params.settle_seconds:g}s after the last POST "
        "and summed over the relay's processes (each one's peak: an upper bound of the peak of "
        "the sum). PSS (from /proc/PID/smaps_rollup) counts a page shared by several processes "
        "once in all."
    )
    data = {"params": asdict(params), "relay_processes": f["processes"], **f}
    result = Result("memory", [table], data)
    peak = f["peak_rss_mib"]
    result.target(
        f"peak RSS with {params.events:,} pending deliveries",
        "≤ 150 MB",
        f"{peak * 1.048576:.0f} MB ({peak:.0f} MiB)",
        peak * 1.048576 <= 150,
    )
    return result
