"""render: CPU time of rendering each kind's built-in message for each sample event.

``python -m bench.render [--repeats N] [--loops N]``: for every kind, every sample of
``relay/samples`` is rendered through ``Renderer.render`` (as a delivery does) with the default
template. ``cold`` parses a fresh ``Event`` for each render (the template context is built each
time: one delivery per event, each event of a run of its own); ``warm`` renders one parsed event again (the context is cached:
the second and later channels of an event). Figures are the mean per render of the fastest of
``repeats`` runs of ``loops`` renders (process CPU time), in µs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from relay.channels.base import Limits
from relay.events import Event
from relay.render import Renderer

__all__ = ["measure", "run"]

SAMPLES = Path(__file__).resolve().parents[1] / "relay" / "samples"
AGENTS = {"123e4567-e89b-12d3-a456-789012345678": "Shorts cutter"}
KINDS = ("slack", "telegram", "email", "plain", "webhook")
LIMITS = {
    "plain": Limits(text=40_000),
    "slack": Limits(text=40_000, header=150, section=3000, blocks=50),
    "telegram": Limits(text=4096, caption=1024),
    "email": Limits(text=100_000, subject=200),
    "webhook": Limits(text=40_000),
}


def _payloads() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(SAMPLES.glob("*.json"))]


def _run(payload: dict[str, Any], n: int) -> dict[str, Any]:
    """``payload`` as the event of another run (its own id, title and links), as in real traffic."""
    return {**payload, "run_id": f"{n:08x}-{payload['run_id'][9:]}"}


def _best(call: Callable[[int], None], loops: int, repeats: int) -> float:
    """µs per loop of the fastest of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        call(loops)
        best = min(best, time.process_time() - started)
    return best / loops * 1e6


def measure(repeats: int, loops: int) -> dict[str, dict[str, float]]:
    """``{kind: {"cold": µs, "warm": µs}}``: mean over the samples of one render."""
    renderer = Renderer({}, AGENTS, run_url="https://mosaic.example/runs/{run_id}")
    payloads = _payloads()
    figures: dict[str, dict[str, float]] = {}
    for kind in KINDS:

        def render(event: Event, kind: str = kind) -> None:
            renderer.render(
                kind,
                None,
                event,
                event_id="evt-1",
                route="failed-runs",
                channel="team",
                limits=LIMITS[kind],
                run_started_at=1_000.0,
                now=1_065.0,
            )

        cold = warm = 0.0
        for payload in payloads:
            fresh = [Event.model_validate(_run(payload, i)) for i in range(loops * repeats)]
            pool = iter(fresh)

            def run_cold(n: int, pool: Iterator[Event] = pool) -> None:
                for _ in range(n):
                    render(next(pool))

            one = fresh[0]

            def run_warm(n: int, one: Event = one) -> None:
                for _ in range(n):
                    render(one)

            cold += _best(run_cold, loops, repeats)
            warm += _best(run_warm, loops, repeats)
        figures[kind] = {"cold": cold / len(payloads), "warm": warm / len(payloads)}
    return figures


def run(repeats: int = 7, loops: int = 200) -> dict[str, dict[str, float]]:
    figures = measure(repeats, loops)
    print(f"{'kind':<10}{'cold µs':>10}{'warm µs':>10}")
    for kind, row in figures.items():
        print(f"{kind:<10}{row['cold']:>10.1f}{row['warm']:>10.1f}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loops", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.repeats, args.loops)))
    else:
        run(args.repeats, args.loops)


if __name__ == "__main__":
    main()
