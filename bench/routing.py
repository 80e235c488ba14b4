"""routing: the cost of matching one event against 10, 100, 1,000 and 10,000 routes.

Route sets grow the way real ones do: a few broad routes (by flag, status, trigger), then routes
for more and more agents and YouTube channels, each with its own flag/status/trigger conditions
and some with ``not:``. The events (every flag, status and trigger; agents with routes in every
set, and agents with none) match about as many routes at every size, so any growth in cost is the
router's, not more work asked of it. The config goes through the relay's own loader and router.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.common import Result, Table, sample_template
from relay.config import parse_config
from relay.events import Event
from relay.routing import Router

__all__ = ["FULL", "QUICK", "RoutingParams", "build_config", "events", "run"]

FLAGS = ("RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED")
STATUSES = ("running", "completed", "partial_complete", "failed", "cancelled")
TRIGGERS = ("youtube", "schedule", "manual", "none")
CHANNELS = tuple(f"team-{n}" for n in range(20))


@dataclass(frozen=True)
class RoutingParams:
    sizes: tuple[int, ...] = (10, 100, 1000, 10000)
    matches: int = 20000
    """Matches per timing; each size takes the best of ``repeats`` timings."""
    repeats: int = 5


FULL = RoutingParams()
QUICK = RoutingParams(sizes=(10, 100), matches=500, repeats=2)


def agent(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-00000000a9e7"


def _route(index: int) -> dict[str, Any]:
    """Route ``index`` of a growing set: broad ones first, then per-agent / per-channel ones."""
    to = [CHANNELS[index % len(CHANNELS)]]
    broad: list[dict[str, Any]] = [
        {"match": {"flag": "RUN_FINISHED", "status": ["failed", "partial_complete"]}},
        {"match": {"flag": "RUN_FINISHED", "status": "completed", "trigger": "youtube"}},
        {"match": {"flag": "TEST"}},
        {"match": {"status": "cancelled"}},
        {"match": {"trigger": "schedule", "flag": "RUN_FINISHED"}},
        {"not": {"flag": "RUN_PROGRESS"}},
    ]
    if index < len(broad):
        return {"name": f"broad-{index}", **broad[index], "to": to}
    owner = agent(index // 3)
    kind = index % 6
    shapes: list[dict[str, Any]] = [
        {"match": {"agent": owner, "flag": "RUN_FINISHED", "status": ["failed", "cancelled"]}},
        {"match": {"agent": owner}, "not": {"flag": "RUN_PROGRESS"}},
        {"match": {"agent": [owner, agent(index // 3 + 1)], "trigger": ["youtube", "manual"]}},
        {"match": {"youtube_channel": f"UC{index:022d}", "flag": "RUN_FINISHED"}},
        {"match": {"agent": owner, "status": "completed", "trigger": "schedule"}},
        {"match": {"agent": owner, "flag": ["RUN_STARTED", "RUN_FINISHED"]}, "stop": True},
    ]
    return {"name": f"route-{index}", **shapes[kind], "to": to}


def build_config(size: int) -> str:
    channels = {name: {"type": "console"} for name in CHANNELS}
    document = {
        "auth": {"allow_unsigned": True},
        "channels": channels,
        "routes": [_route(i) for i in range(size)],
    }
    return json.dumps(document)


def events() -> list[Event]:
    """Every flag × status × trigger, for agents with routes at every size and agents without."""
    base = json.loads(sample_template())
    made = []
    agents = [agent(1), agent(2), agent(3), "ffffffff-0000-4000-8000-00000000a9e7"]
    for flag, status, trigger, who in itertools.product(FLAGS, STATUSES, TRIGGERS, agents):
        data = dict(base, flag=flag, status=status, agent_id=who, run_id="r")
        if trigger == "none":
            data["triggered_by"] = None
        else:
            data["triggered_by"] = dict(base["triggered_by"], type=trigger)
        made.append(Event.model_validate(data))
    return made


def _time_matches(router: Router, sample: list[Event], count: int, repeats: int) -> float:
    """Best-of-``repeats`` seconds per match."""
    cycle = (sample * (count // len(sample) + 1))[:count]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for event in cycle:
            router.match(event)
        best = min(best, time.perf_counter() - started)
    return best / count


def run(params: RoutingParams = FULL) -> Result:
    sample = events()
    rows = []
    for size in params.sizes:
        started = time.perf_counter()
        config, _ = parse_config(build_config(size), f"routes-{size}.yaml")
        router = Router.from_config(config)
        load_s = time.perf_counter() - started
        per_match = _time_matches(router, sample, params.matches, params.repeats)
        delivered = sum(len(router.match(e)) for e in sample) / len(sample)
        rows.append(
            {"routes": size, "us_per_match": per_match * 1e6, "deliveries_per_event": delivered,
             "config_load_s": load_s}
        )  # fmt: skip
    base = rows[0]["us_per_match"]
    table = Table(
        f"routing: one match against N routes ({len(sample)} distinct events, best of "
        f"{params.repeats} × {params.matches:,} matches)",
        ["routes", "µs per match", f"vs {rows[0]['routes']} routes", "deliveries per event",
         "config load s"],
    )  # fmt: skip
    for row in rows:
        row["ratio"] = row["us_per_match"] / base
        table.add(
            row["routes"], row["us_per_match"], f"{row['ratio']:.2f}×",
            row["deliveries_per_event"], row["config_load_s"],
        )  # fmt: skip
    result = Result("routing", [table], {"params": asdict(params), "sizes": rows})
    last = rows[-1]
    result.target(
        f"routing cost at {last['routes']:,} routes vs {rows[0]['routes']}",
        "≤ 2×",
        f"{last['ratio']:.2f}×",
        last["ratio"] <= 2.0,
    )
    return result
