"""latency: the delay a user feels at a realistic load, from the webhook's answer to the message.

50 events/s on a fixed schedule (open loop) for 10 s, to the relay set up exactly as in e2e
(durable SQLite, one Slack channel at a local sink, the built-in message). Per event: the POST's
answer (accepted) to the sink's arrival, matched by run id; p50/p99/max. The same load through
Alertmanager to its own sink is measured too, for reference, when it is installed.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import Result, Table, new_nonce, percentile, processes_label, run_id
from bench.e2e import System, alertmanager_system, relay_system
from bench.load import OPEN_WORKER, Loader, open_loop
from bench.procs import get_json, wait_until

__all__ = ["FULL", "QUICK", "LatencyParams", "run"]

GENERATOR_LAG_WARN_MS = 5.0


@dataclass(frozen=True)
class LatencyParams:
    rate: float = 50.0
    seconds: float = 10.0
    timeout: float = 30.0
    """Longest wait, after the last POST, for the sink to hold every accepted event."""
    alertmanager: bool = True
    workers: int | None = None
    """``server.workers`` written into the relay's config; None leaves it unset (auto)."""


FULL = LatencyParams()
QUICK = LatencyParams(rate=20, seconds=1.0, timeout=20.0, alertmanager=False)


def run(params: LatencyParams = FULL) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        loader = Loader(work)
        systems: dict[str, dict[str, Any]] = {}
        with relay_system(work, params.workers) as relay:
            systems["relay"] = _measure(params, loader, relay)
        if params.alertmanager:
            with alertmanager_system(work) as manager:
                if isinstance(manager, str):
                    systems["alertmanager"] = {"missing": manager}
                else:
                    systems["alertmanager"] = _measure(params, loader, manager)
    return _report(params, systems)


def _measure(params: LatencyParams, loader: Loader, system: System) -> dict[str, Any]:
    nonce = new_nonce()
    processes = system.server.processes()
    secret = system.headers.get("X-Mosaic-Signature")
    sent = open_loop(
        loader, system.server.url, system.template, secret, params.rate, params.seconds,
        nonce=nonce, answers=True,
    )  # fmt: skip
    accepted_at = {
        run_id(int(i), nonce, OPEN_WORKER): at
        for i, at, status in sent["answers"]
        if 200 <= status < 300
    }
    sink = system.sink.url

    def delivered() -> bool:
        count: int = get_json(sink + "/-/count")["count"]
        return count >= len(accepted_at)

    with contextlib.suppress(TimeoutError):
        wait_until(delivered, params.timeout, "delivery", interval=0.05)
    arrivals = get_json(sink + "/-/arrivals")["arrivals"]
    latencies = [(at - accepted_at[rid]) * 1000 for at, rid in arrivals if rid in accepted_at]
    return {
        "processes": max(processes, system.server.processes()),
        "sent": sent["sent"],
        "accepted": len(accepted_at),
        "delivered": len(arrivals),
        "matched": len(latencies),
        "answer_ms": sent["latency_ms"],
        "generator_lag_p99_ms": sent["send_lag_ms"].get("p99", 0.0),
        "delivered_ms": {
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": max(latencies, default=float("nan")),
        },
    }


def _report(params: LatencyParams, systems: dict[str, dict[str, Any]]) -> Result:
    table = Table(
        f"latency: accepted → delivered at {params.rate:g} events/s offered (open loop, fixed "
        f"schedule, {params.seconds:g}s)",
        ["system", "processes", "accepted", "delivered", "answer p99 ms", "p50 ms", "p90 ms",
         "p99 ms", "max ms", "gen lag p99 ms"],
    )  # fmt: skip
    for name, f in systems.items():
        if "missing" in f:
            table.add(name, *["—"] * 9)
            table.notes.append(f"{name}: not measured, {f['missing']}.")
            continue
        d = f["delivered_ms"]
        table.add(
            name, f["processes"], f"{f['accepted']}/{f['sent']}", f["delivered"],
            f["answer_ms"].get("p99", float("nan")), d["p50"], d["p90"], d["p99"], d["max"],
            f["generator_lag_p99_ms"],
        )  # fmt: skip
        if f["matched"] < f["delivered"]:
            table.notes.append(
                f"{name}: the run id was found in {f['matched']:,} of {f['delivered']:,} "
                "delivered messages; latency covers those."
            )
        if f["generator_lag_p99_ms"] > GENERATOR_LAG_WARN_MS:
            table.notes.append(
                f"{name}: the generator itself sent {f['generator_lag_p99_ms']:.0f} ms late at "
                "p99 (the machine was busy)."
            )
    relay = systems["relay"]
    table.notes.append(
        "From the webhook's 2xx answer to the sink's arrival of the message (matched by run id): "
        'what a user waits for once Mosaic has been told "accepted". Relay as in e2e (durable '
        f"SQLite, the built-in Slack message), processes: {processes_label(relay['processes'])}."
    )
    data = {"params": asdict(params), "systems": systems, "relay_processes": relay["processes"]}
    return Result("latency", [table], data)
