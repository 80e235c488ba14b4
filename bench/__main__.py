"""``python -m bench NAME [--quick] [--loader auto|wrk|python] [--workers N] [--out DIR]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import e2e, ingest, latency, memory, overview, replicas, routing
from bench.common import (
    RESULTS_DIR,
    Result,
    Table,
    machine,
    relay_knows_workers,
    workers_line,
    write_result,
)

__all__ = ["BENCHES", "main", "run_benches"]

BENCHES: dict[str, tuple[Callable[[Any], Result], Any, Any]] = {
    "ingest": (ingest.run, ingest.FULL, ingest.QUICK),
    "e2e": (e2e.run, e2e.FULL, e2e.QUICK),
    "latency": (latency.run, latency.FULL, latency.QUICK),
    "replicas": (replicas.run, replicas.FULL, replicas.QUICK),
    "routing": (routing.run, routing.FULL, routing.QUICK),
    "memory": (memory.run, memory.FULL, memory.QUICK),
    "overview": (overview.run, overview.FULL, overview.QUICK),
}


def run_benches(
    names: Sequence[str], params: dict[str, Any], out: Path, echo: Callable[[str], None] = print
) -> list[Result]:
    """Run each named benchmark with its params, print its tables, write its JSON."""
    results = []
    for name in names:
        started = time.monotonic()
        run, _, _ = BENCHES[name]
        result = run(params[name])
        elapsed = time.monotonic() - started
        result.data["seconds"] = round(elapsed, 1)
        write_result(result, out, vars(params[name]))
        echo(result.render() + f"\n\n({name}: {elapsed:.0f}s)\n")
        results.append(result)
    return results


def targets_table(results: Sequence[Result]) -> Table:
    table = Table("targets", ["benchmark", "target", "goal", "measured", "met"])
    for result in results:
        for t in result.targets:
            met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
            table.add(result.name, t["target"], t["goal"], t["measured"], met)
    return table


def describe_machine(workers: int | None = None) -> str:
    m = machine()
    return (
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, aiohttp {m['aiohttp']}, SQLite {m['sqlite']}, store on "
        f"{m['filesystem']}; wrk: {m['wrk'] or 'not installed'}; Alertmanager: "
        f"{m['alertmanager'] or 'not installed'}; load average at start {' '.join(m['loadavg'])}; "
        f"{workers_line(workers)}."
    )


def processes_line(results: Sequence[Result]) -> str:
    """How many processes each relay ran, as measured (supervisor and workers together)."""
    ran = [f"{r.name} {r.data['relay_processes']}" for r in results if "relay_processes" in r.data]
    if any(r.name == "replicas" and "rounds" in r.data for r in results):
        ran.append("replicas 1 per relay")
    return "Relay processes (measured): " + (", ".join(ran) or "none ran") + "."


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=[*BENCHES, "all"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument(
        "--loader",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="closed-loop load generator for ingest (auto: wrk when installed)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="write server: {workers: N} into the relay configs of ingest, e2e, latency and "
        "memory (default: unset, so auto); replicas always run workers: 1",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.workers is not None and not relay_knows_workers():
        parser.error("--workers: this relay's config has no server.workers")
    names = list(BENCHES) if args.name == "all" else [args.name]
    params: dict[str, Any] = {name: BENCHES[name][2 if args.quick else 1] for name in names}
    if "ingest" in params:
        params["ingest"] = dataclasses.replace(params["ingest"], loader=args.loader)
    for name, value in params.items():
        if "workers" in vars(value):
            params[name] = dataclasses.replace(value, workers=args.workers)
    started = time.monotonic()
    print(describe_machine(args.workers) + "\n", flush=True)
    results = run_benches(names, params, args.out, echo=lambda s: print(s, flush=True))
    print(targets_table(results).render())
    print("\n" + processes_line(results))
    print(f"\nTotal {time.monotonic() - started:.0f}s. JSON in {os.path.relpath(args.out)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
