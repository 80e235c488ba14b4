"""ingest: the relay's webhook endpoint against a bare aiohttp handler, A/B rounds in one run.

Both servers get the same load generator and the same payload (the RUN_FINISHED sample, a new run
id per request, so every relay answer is a real durable write: SQLite WAL, ``sync: full``).
Per round: requests/s at saturation (closed loop), then answer latency at a fixed offered rate
(open loop, timed from the intended send). The order alternates between rounds.

The relay's only channel points at a listener that never answers, so its delivery workers sit on
hung sends and the dispatcher does no work: this measures acceptance alone (signature, parsing,
validation, routing, durable store, answer). Delivery is the e2e benchmark's business.

The relay runs as many processes as its config says (``server.workers``, unset by default); the
target compares it with the one-process bare handler. When the relay ran N > 1 workers, a bare
handler in N processes on one port (``SO_REUSEPORT``) is measured too, as an extra column. CPU is
summed over each server's processes.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    Result,
    Table,
    percentile,
    processes_label,
    sample_template,
    with_workers,
)
from bench.load import Loader, closed_loop, open_loop
from bench.procs import Service, launch_python, launch_relay, start_python

__all__ = ["FULL", "QUICK", "IngestParams", "run"]

SECRET = "bench-secret"
GENERATOR_LAG_WARN_MS = 5.0


@dataclass(frozen=True)
class IngestParams:
    rounds: int = 3
    saturation_seconds: float = 4.0
    connections: int = 32
    rate: float = 1000.0
    open_seconds: float = 4.0
    warmup_seconds: float = 1.0
    loader: str = "auto"
    workers: int | None = None
    """``server.workers`` written into the relay's config; None leaves it unset (auto)."""
    bare_processes: int = 0
    """Processes of the extra bare handler; 0: as many as the relay's workers (none if one)."""


FULL = IngestParams()
QUICK = IngestParams(
    rounds=1, saturation_seconds=1.0, connections=4, rate=200, open_seconds=0.5, warmup_seconds=0
)

RELAY_CONFIG = """
auth:
  secrets: ["{secret}"]
store:
  url: sqlite:///relay.db
  sync: full
delivery:
  shutdown_grace: 100ms
agents:
  123e4567-e89b-12d3-a456-789012345678: Shorts cutter
channels:
  team-slack:
    type: slack
    webhook_url: http://127.0.0.1:{port}/services/T000/B000/XXXX
    rate_limit: off
routes:
  - name: failed-runs
    match: {{flag: RUN_FINISHED, status: [failed, partial_complete]}}
    to: [team-slack]
  - name: youtube-announcements
    match: {{flag: RUN_FINISHED, status: completed, trigger: youtube}}
    to: [team-slack]
  - name: shorts
    match: {{agent: Shorts cutter}}
    not: {{flag: RUN_PROGRESS}}
    to: [team-slack]
"""


def run(params: IngestParams = FULL) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        with socket.socket() as parked:
            parked.bind(("127.0.0.1", 0))
            parked.listen(64)
            config = work / "relay.yaml"
            port = parked.getsockname()[1]
            text = RELAY_CONFIG.format(secret=SECRET, port=port)
            config.write_text(with_workers(text, params.workers))
            with contextlib.ExitStack() as stack:
                relay = stack.enter_context(launch_relay(config, work))
                bare = stack.enter_context(launch_python("bench.bare", [], work, "bare"))
                relay.ready()
                bare.ready()
                targets = {"relay": relay, "bare": bare}
                processes = relay.processes()
                many = params.bare_processes or max(1, processes - 1)
                if many > 1:
                    argv = ["--processes", str(many)]
                    targets["bare_n"] = stack.enter_context(
                        start_python("bench.bare", argv, work, "bare-n")
                    )
                rounds = _measure(params, work, targets)
                processes = max(processes, relay.processes())
                stored = _stored_events(work / "relay.db")
    return _report(params, rounds, stored, processes, many)


def _measure(params: IngestParams, work: Path, targets: dict[str, Service]) -> list[Any]:
    loader = Loader(work, params.loader)
    template = work / "payload.json"
    template.write_bytes(sample_template())
    names = list(targets)
    if params.warmup_seconds:
        for name in names:
            closed_loop(
                loader, targets[name].url, template, SECRET, params.connections,
                params.warmup_seconds,
            )  # fmt: skip
    rounds = []
    for number in range(params.rounds):
        order = names if number % 2 == 0 else names[::-1]
        entry: dict[str, Any] = {"round": number + 1, "order": order, "loader": loader.label}
        for name in order:
            cpu = targets[name].cpu_seconds()
            entry[f"{name}_saturation"] = figures = closed_loop(
                loader, targets[name].url, template, SECRET, params.connections,
                params.saturation_seconds,
            )  # fmt: skip
            cpu = targets[name].cpu_seconds() - cpu
            figures["cpu_us_per_request"] = cpu * 1e6 / max(1, figures["requests"])
        for name in order:
            if name == "bare_n":
                continue
            entry[f"{name}_open"] = open_loop(
                loader, targets[name].url, template, SECRET, params.rate, params.open_seconds
            )
        rounds.append(entry)
    return rounds


def _label(name: str, many: int) -> str:
    return f"bare ×{many}" if name == "bare_n" else name


def _stored_events(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        count: int = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return count


def _report(
    params: IngestParams, rounds: list[Any], stored: int, processes: int, many: int
) -> Result:
    loader = rounds[0]["loader"] if rounds else "?"
    extra = "bare_n_saturation" in rounds[0] if rounds else False
    columns = ["round", "order", "relay req/s", "bare req/s", "relay/bare"]
    if extra:
        columns += [f"bare ×{many} req/s", f"relay/bare ×{many}"]
    columns += ["relay CPU µs/req", "bare CPU µs/req", "relay p99 ms", "errors"]
    sat = Table(
        f"ingest: requests/s at saturation ({params.connections} connections, {loader})", columns
    )
    ratios, ratios_n = [], []
    for entry in rounds:
        relay, bare = entry["relay_saturation"], entry["bare_saturation"]
        ratio = relay["rps"] / bare["rps"] if bare["rps"] else float("nan")
        ratios.append(ratio)
        cells: list[object] = [
            entry["round"], " → ".join(_label(n, many) for n in entry["order"]), relay["rps"],
            bare["rps"], f"{ratio:.0%}",
        ]  # fmt: skip
        errors = relay["errors"] + bare["errors"]
        if extra:
            other = entry["bare_n_saturation"]
            ratio_n = relay["rps"] / other["rps"] if other["rps"] else float("nan")
            ratios_n.append(ratio_n)
            cells += [other["rps"], f"{ratio_n:.0%}"]
            errors += other["errors"]
        cells += [relay["cpu_us_per_request"], bare["cpu_us_per_request"], relay["p99_ms"], errors]
        sat.add(*cells)
    relay_rps = statistics.median(e["relay_saturation"]["rps"] for e in rounds)
    bare_rps = statistics.median(e["bare_saturation"]["rps"] for e in rounds)
    ratio = statistics.median(ratios)
    median: list[object] = ["median", "", relay_rps, bare_rps, f"{ratio:.0%}"]
    bare_n_rps = ratio_n = None
    if extra:
        bare_n_rps = statistics.median(e["bare_n_saturation"]["rps"] for e in rounds)
        ratio_n = statistics.median(ratios_n)
        median += [bare_n_rps, f"{ratio_n:.0%}"]
    cpu = {
        name: statistics.median(e[f"{name}_saturation"]["cpu_us_per_request"] for e in rounds)
        for name in ("relay", "bare")
    }
    sat.add(*median, cpu["relay"], cpu["bare"], "", "")
    sat.notes.append(
        f"Relay processes: {processes_label(processes)}; bare: 1 process"
        + (f"; bare ×{many}: {many} processes on one port (SO_REUSEPORT)." if extra else ".")
        + " CPU is summed over each server's processes. The target compares the relay with the"
        " one-process bare handler."
    )
    if not loader.startswith("wrk"):
        sat.notes.append(
            "Without wrk, the Python generator may be what saturates first (near 10k req/s on "
            "2 cores): then the bare figure is generator-bound and the ratio flatters the relay."
        )

    lat = Table(
        f"ingest: answer latency at {params.rate:,.0f}/s offered (open loop, "
        f"{params.open_seconds:g}s per round, timed from the intended send)",
        ["server", "answered", "non-2xx", "p50 ms", "p90 ms", "p99 ms", "max ms", "gen lag p99 ms"],
    )
    pooled: dict[str, dict[str, Any]] = {}
    for name in ("relay", "bare"):
        latencies = [x for e in rounds for x in e[f"{name}_open"]["latencies_ms"]]
        sent = sum(e[f"{name}_open"]["sent"] for e in rounds)
        bad = sum(
            n for e in rounds for k, n in e[f"{name}_open"]["statuses"].items() if k[0] != "2"
        )
        lag = max(e[f"{name}_open"]["send_lag_ms"].get("p99", 0.0) for e in rounds)
        pooled[name] = {
            "sent": sent, "answered": len(latencies), "non_2xx": bad,
            "p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99), "max": max(latencies, default=float("nan")),
            "generator_lag_p99": lag,
        }  # fmt: skip
        p = pooled[name]
        lat.add(name, f"{p['answered']}/{sent}", bad, p["p50"], p["p90"], p["p99"], p["max"], lag)
        if lag > GENERATOR_LAG_WARN_MS:
            lat.notes.append(
                f"{name}: the generator itself sent {lag:.0f} ms late at p99 (the machine was "
                f"busy); its latency figures include that, so read them as an upper bound."
            )
    ok_answers = sum(e["relay_saturation"]["ok"] for e in rounds) + pooled["relay"]["answered"]
    sat.notes.append(
        f"Relay: {stored:,} events in its store after the run (every request a distinct run id; "
        f"{ok_answers:,} 2xx answers counted in the measured windows)."
    )
    for entry in rounds:
        for name in ("relay", "bare"):
            entry[f"{name}_open"].pop("latencies_ms", None)
    data = {
        "params": asdict(params),
        "loader": loader,
        "relay_processes": processes,
        "rounds": rounds,
        "relay_rps": relay_rps,
        "bare_rps": bare_rps,
        "ratio": ratio,
        "bare_n": {"processes": many, "rps": bare_n_rps, "ratio": ratio_n} if extra else None,
        "cpu_us_per_request": cpu,
        "open_loop": pooled,
        "stored_events": stored,
    }
    result = Result("ingest", [sat, lat], data)
    result.target(
        "ingest req/s vs bare aiohttp", "≥ 50% (stretch 70%)", f"{ratio:.0%}", ratio >= 0.5
    )
    p99 = pooled["relay"]["p99"]
    result.target(
        f"relay p99 answer latency at {params.rate:,.0f}/s", "≤ 10 ms", f"{p99:.2f} ms", p99 <= 10
    )
    return result
