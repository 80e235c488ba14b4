"""The hostile-event benchmark runs end to end at a tiny size, so it does not rot."""

from __future__ import annotations

import json

from bench import hostile


def test_hostile_tiny() -> None:
    result = hostile.run(hostile.HostileParams(channels=2, nodes=500, timeout=30.0))
    data = result.data
    for name in ("minus_1e8", "minus_1e15"):
        assert data["negative"][name]["status"] == 422
        assert data["negative"][name]["deliveries"] == "0 sent, 0 dead"
    assert data["big"]["status"] == 202
    assert data["big"]["deliveries"] == "2 sent, 0 dead"
    assert data["route_test"]["status"] == 200
    assert data["flood"]["signed_accepted"] == hostile.FLOOD_SIGNED
    assert {t["target"] for t in result.targets} == {
        "/healthz while the big event is delivered",
        "/healthz during the big route test",
        "signed webhooks accepted during the unsigned flood",
    }


def test_the_events_are_what_the_tables_say() -> None:
    big = json.loads(hostile.big_event("r", 20_000))
    assert len(big["updated_nodes"]) == 20_000
    assert 600_000 < len(hostile.big_event("r", 20_000)) < 800_000
    negative = json.loads(hostile.negative_counts_event("r", -100_000_000, 100_000_001))
    assert negative["node_status_counts"]["completed"] == -100_000_000
