"""e2e: N events through the relay to a local Slack incoming-webhook sink, against the same number
of alerts through Prometheus Alertmanager to the same kind of sink, in one run.

Relay: durable (SQLite, ``sync: full``), default delivery settings, a ``slack`` channel with
``webhook_url`` at the sink and ``rate_limit: off``; each event a new run id, rendered with the
built-in Slack message. Alertmanager: ``group_by: ['...']`` (every alert its own group, so one
notification per alert), ``group_wait: 0s``, one ``slack_configs`` receiver whose ``api_url`` is
the sink; alerts posted one per request to ``/api/v2/alerts``. Alertmanager keeps alerts in memory.

Measured per system: time from the first POST until the sink holds all N; deliveries/s over that
time; accept→delivered latency per message (the POST's answer to the sink's arrival, matched by
the run id found in the delivered text/blocks); its processes, and the CPU they used per delivered
event (summed over a relay's supervisor and workers).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.common import (
    Result,
    Table,
    new_nonce,
    percentile,
    processes_label,
    run_id,
    sample_template,
    with_workers,
)
from bench.load import Loader, post_all
from bench.procs import (
    Service,
    get_json,
    start_alertmanager,
    start_python,
    start_relay,
    wait_until,
)

__all__ = [
    "FULL",
    "QUICK",
    "E2EParams",
    "System",
    "alertmanager_system",
    "drive",
    "relay_config",
    "relay_system",
    "run",
]

SECRET = "bench-secret"
SINK_PATH = "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass(frozen=True)
class E2EParams:
    events: int = 5000
    connections: int = 32
    timeout: float = 120.0
    """Longest wait for one system to deliver everything."""
    alertmanager: bool = True
    workers: int | None = None
    """``server.workers`` written into the relay's config; None leaves it unset (auto)."""


FULL = E2EParams()
QUICK = E2EParams(events=40, connections=4, timeout=30.0)

RELAY_CONFIG = """
auth:
  secrets: ["{secret}"]
store:
  url: {store}
  sync: {sync}
channels:
  bench-slack:
    type: slack
    webhook_url: {sink}
    rate_limit: off
routes:
  - name: finished-runs
    match: {{flag: RUN_FINISHED}}
    to: [bench-slack]
"""

ALERTMANAGER_CONFIG = """
route:
  receiver: bench-slack
  group_by: ['...']
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 24h
receivers:
  - name: bench-slack
    slack_configs:
      - api_url: {sink}
        send_resolved: false
        title: 'Run finished: {{{{ .CommonLabels.agent_id }}}}'
        text: 'Run {{{{ .CommonLabels.run_id }}}} {{{{ .CommonLabels.status }}}}'
"""

ALERT = [
    {
        "labels": {
            "alertname": "MosaicRunFinished",
            "run_id": "@RUN_ID@",
            "agent_id": "123e4567-e89b-12d3-a456-789012345678",
            "status": "completed",
            "trigger": "youtube",
        },
        "annotations": {
            "summary": "New video: Never Gonna Give You Up",
            "video_url": "https://storage.example.com/renders/7ba7b810/output.mp4",
        },
    }
]


def run(params: E2EParams = FULL) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        work = Path(tmp)
        loader = Loader(work)
        systems = {"relay": _relay(params, work, loader)}
        if params.alertmanager:
            systems["alertmanager"] = _alertmanager(params, work, loader)
    return _report(params, systems)


@dataclass
class System:
    """A system under test with its own sink: where to POST, what, with which headers."""

    sink: Service
    server: Service
    template: Path
    headers: dict[str, str]


@contextlib.contextmanager
def relay_system(work: Path, workers: int | None) -> Iterator[System]:
    """The relay as e2e runs it (durable SQLite, one Slack channel at its own sink)."""
    with start_python("bench.sink", [], work, "relay-sink") as sink:
        config = work / "relay.yaml"
        config.write_text(with_workers(relay_config(sink.url + SINK_PATH), workers))
        template = work / "event.json"
        template.write_bytes(sample_template())
        with start_relay(config, work) as relay:
            yield System(sink, relay, template, {"X-Mosaic-Signature": SECRET})


@contextlib.contextmanager
def alertmanager_system(work: Path) -> Iterator[System | str]:
    """Alertmanager as e2e runs it, or why it cannot run."""
    if shutil.which(procs.ALERTMANAGER) is None:
        yield f"{procs.ALERTMANAGER} is not installed"
        return
    with start_python("bench.sink", [], work, "am-sink") as sink:
        config = work / "alertmanager.yml"
        config.write_text(ALERTMANAGER_CONFIG.format(sink=sink.url + SINK_PATH))
        manager = start_alertmanager(config, work)
        if manager is None:
            yield f"{procs.ALERTMANAGER} is not installed"
            return
        with manager:
            template = work / "alert.json"
            template.write_text(json.dumps(ALERT))
            manager.url += "/api/v2/alerts"
            yield System(sink, manager, template, {})


def _relay(params: E2EParams, work: Path, loader: Loader) -> dict[str, Any]:
    with relay_system(work, params.workers) as system:
        return drive(params, loader, system.sink, [system.server], system.template, system.headers)


def _alertmanager(params: E2EParams, work: Path, loader: Loader) -> dict[str, Any]:
    with alertmanager_system(work) as system:
        if isinstance(system, str):
            return {"missing": system}
        return drive(params, loader, system.sink, [system.server], system.template, system.headers)


def relay_config(sink_url: str, store: str = "sqlite:///relay.db", sync: str = "full") -> str:
    """The e2e relay's config (no ``server:`` block: see ``with_workers``)."""
    return RELAY_CONFIG.format(secret=SECRET, sink=sink_url, store=store, sync=sync)


def drive(
    params: E2EParams,
    loader: Loader,
    sink: Service,
    servers: list[Service],
    template: Path,
    headers: dict[str, str],
) -> dict[str, Any]:
    """POST ``params.events`` to ``servers`` (their connections spread over them), wait until the
    sink holds them all; deliveries/s, latency, and CPU summed over every server's processes."""
    nonce = new_nonce()
    processes = sum(server.processes() for server in servers)
    cpu = sum(server.cpu_seconds() for server in servers)
    urls = [server.url for server in servers]
    posted = post_all(
        loader, urls[0] if len(urls) == 1 else urls, template, params.events, params.connections,
        nonce, headers, params.timeout,
    )  # fmt: skip
    answered = {int(i): t for i, t, status in posted["answers"] if 200 <= status < 300}
    deadline = time.monotonic() + params.timeout

    def count() -> int:
        got: int = get_json(sink.url + "/-/count")["count"]
        return got

    with contextlib.suppress(TimeoutError):
        wait_until(
            lambda: count() >= len(answered),
            max(1.0, deadline - time.monotonic()),
            "delivery",
            interval=0.05,
        )
    cpu = sum(server.cpu_seconds() for server in servers) - cpu
    processes = max(processes, sum(server.processes() for server in servers))
    arrivals = get_json(sink.url + "/-/arrivals")["arrivals"]
    accepted_at = {run_id(i, nonce): t for i, t in answered.items()}
    latencies = [at - accepted_at[rid] for at, rid in arrivals if rid in accepted_at]
    matched = {rid for _, rid in arrivals if rid in accepted_at}
    last = max((at for at, _ in arrivals), default=float("nan"))
    elapsed = last - posted["first_post"]
    return {
        "posted": params.events,
        "accepted": len(answered),
        "delivered": len(arrivals),
        "matched": len(matched),
        "seconds_to_all": elapsed if len(arrivals) >= len(answered) else float("nan"),
        "posting_seconds": posted["last_answer"] - posted["first_post"],
        "deliveries_per_s": len(arrivals) / elapsed if arrivals else 0.0,
        "processes": processes,
        "cpu_us_per_event": cpu * 1e6 / max(1, len(arrivals)),
        "latency_ms": {
            "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000,
            "max": max(latencies, default=float("nan")) * 1000,
        },
    }


def _report(params: E2EParams, systems: dict[str, dict[str, Any]]) -> Result:
    table = Table(
        f"e2e: {params.events:,} events → local Slack webhook sink "
        f"({params.connections} posting connections)",
        ["system", "processes", "accepted", "delivered", "s to all", "deliveries/s", "p50 ms",
         "p99 ms", "CPU µs/event"],
    )  # fmt: skip
    for name, figures in systems.items():
        if "missing" in figures:
            table.add(name, *["—"] * 8)
            table.notes.append(f"{name}: not measured, {figures['missing']}.")
            continue
        lat = figures["latency_ms"]
        table.add(
            name, figures["processes"], figures["accepted"], figures["delivered"],
            figures["seconds_to_all"], figures["deliveries_per_s"], lat["p50"], lat["p99"],
            figures["cpu_us_per_event"],
        )  # fmt: skip
        if figures["matched"] < figures["delivered"]:
            table.notes.append(
                f"{name}: the run id was found in {figures['matched']:,} of "
                f"{figures['delivered']:,} delivered messages; latency covers those."
            )
    relay = systems["relay"]
    manager = systems.get("alertmanager")
    table.notes.append(
        f"Relay processes: {processes_label(relay['processes'])}; CPU is summed over them "
        "(the sink's is not counted)."
    )
    data: dict[str, Any] = {
        "params": asdict(params), "systems": systems, "relay_processes": relay["processes"]
    }  # fmt: skip
    result = Result("e2e", [table], data)
    if manager is None or "missing" in manager:
        why = "not run" if manager is None else manager["missing"]
        table.notes.append(f"relay/Alertmanager: not measured ({why}).")
        result.target("e2e deliveries/s vs Alertmanager", "≥ 1× (stretch 2×)", why, None)
        return result
    ratio = relay["deliveries_per_s"] / manager["deliveries_per_s"]
    data["ratio"] = ratio
    table.add("relay/Alertmanager", "", "", "", "", f"{ratio:.2f}×", "", "", "")
    result.target(
        "e2e deliveries/s vs Alertmanager", "≥ 1× (stretch 2×)", f"{ratio:.2f}×", ratio >= 1.0
    )
    return result
