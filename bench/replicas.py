"""replicas: one relay against two replicas on one Redis store, delivering to the same sink.

Each relay is e2e's (one Slack channel at a local sink, the built-in message, default delivery
settings) with ``store: {url: redis://…}`` and ``server.workers: 1`` (where the relay knows that
setting; before, a relay is one process anyway). The events (distinct run ids) are POSTed over 32
connections spread over the relays' URLs, round robin; the sink is shared. Per run: deliveries/s
from the first POST until the sink holds them all, latency, CPU summed over the relays. Rounds
alternate the order (1 → 2, 2 → 1, …); the ratio is taken per round. The store is emptied before
each run. Redis: see ``bench.redisdb``; with none, the benchmark says so and measures nothing.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import Result, Table, relay_knows_workers, sample_template, with_workers
from bench.e2e import SECRET, SINK_PATH, E2EParams, drive, relay_config
from bench.load import Loader
from bench.procs import launch_relay, start_python
from bench.redisdb import BenchRedis, bench_redis

__all__ = ["FULL", "QUICK", "ReplicasParams", "run"]


@dataclass(frozen=True)
class ReplicasParams:
    events: int = 5000
    connections: int = 32
    rounds: int = 2
    timeout: float = 120.0
    """Longest wait for one run to deliver everything."""


FULL = ReplicasParams()
QUICK = ReplicasParams(events=40, connections=4, rounds=1, timeout=30.0)


def run(params: ReplicasParams = FULL) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        work = Path(tmp)
        with bench_redis(work) as store:
            if isinstance(store, str):
                return _report(params, [], {"missing": store})
            loader = Loader(work)
            workers = 1 if relay_knows_workers() else None
            rounds = []
            for number in range(params.rounds):
                order = (1, 2) if number % 2 == 0 else (2, 1)
                entry: dict[str, Any] = {"round": number + 1, "order": list(order)}
                for replicas in order:
                    store.flush()
                    folder = work / f"round{number + 1}-x{replicas}"
                    folder.mkdir()
                    entry[str(replicas)] = _one(params, folder, loader, store, replicas, workers)
                rounds.append(entry)
            where = {"redis": store.where, "sync": store.sync, "workers": workers}
    return _report(params, rounds, where)


def _one(
    params: ReplicasParams,
    work: Path,
    loader: Loader,
    store: BenchRedis,
    replicas: int,
    workers: int | None,
) -> dict[str, Any]:
    with start_python("bench.sink", [], work, "sink") as sink:
        config = work / "relay.yaml"
        text = relay_config(sink.url + SINK_PATH, store.url, store.sync)
        config.write_text(with_workers(text, workers))
        template = work / "event.json"
        template.write_bytes(sample_template())
        with contextlib.ExitStack() as stack:
            relays = [
                stack.enter_context(launch_relay(config, work, f"relay-{n + 1}"))
                for n in range(replicas)
            ]
            for relay in relays:
                relay.ready()
            e2e = E2EParams(
                events=params.events, connections=params.connections, timeout=params.timeout
            )
            headers = {"X-Mosaic-Signature": SECRET}
            return drive(e2e, loader, sink, relays, template, headers)


def _report(params: ReplicasParams, rounds: list[Any], where: dict[str, Any]) -> Result:
    table = Table(
        f"replicas: {params.events:,} events through 1 and 2 relays on one Redis → one sink "
        f"({params.connections} posting connections, spread over the relays)",
        ["round", "relays", "processes", "accepted", "delivered", "s to all", "deliveries/s",
         "p50 ms", "p99 ms", "CPU µs/event", "2 relays / 1"],
    )  # fmt: skip
    data: dict[str, Any] = {"params": asdict(params), **where, "rounds": rounds}
    result = Result("replicas", [table], data)
    if "missing" in where:
        table.notes.append(f"Not measured: {where['missing']}.")
        return result
    ratios = []
    for entry in rounds:
        one, two = entry["1"], entry["2"]
        ratio = two["deliveries_per_s"] / one["deliveries_per_s"]
        ratios.append(ratio)
        for replicas in entry["order"]:
            f = entry[str(replicas)]
            table.add(
                entry["round"], replicas, f["processes"], f["accepted"], f["delivered"],
                f["seconds_to_all"], f["deliveries_per_s"], f["latency_ms"]["p50"],
                f["latency_ms"]["p99"], f["cpu_us_per_event"],
                f"{ratio:.2f}×" if replicas == 2 else "",
            )  # fmt: skip
    ratio = statistics.median(ratios)
    rates = {
        n: statistics.median(e[n]["deliveries_per_s"] for e in rounds) for n in ("1", "2")
    }  # fmt: skip
    table.add("median", 1, "", "", "", "", rates["1"], "", "", "", "")
    table.add("median", 2, "", "", "", "", rates["2"], "", "", "", f"{ratio:.2f}×")
    workers = "1 (server.workers: 1)" if where["workers"] else "1 (no server.workers yet)"
    table.notes.append(
        f"Store: {where['redis']}, `sync: {where['sync']}`; each relay's processes: {workers}; "
        "CPU summed over the relays (not Redis's, not the sink's). The store is emptied before "
        "each run; the order alternates between rounds."
    )
    data.update(ratio=ratio, deliveries_per_s=rates)
    return result
