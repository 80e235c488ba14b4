"""Every benchmark runs end to end at a tiny size, so none of them rots."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import bench.__main__ as cli
from bench import e2e, ingest, latency, memory, overview, procs, replicas, routing
from bench.__main__ import main
from bench.common import run_id, sample_template, with_workers
from bench.load import Loader, closed_loop
from bench.procs import ALERTMANAGER, start_python


def test_ingest_tiny() -> None:
    params = ingest.IngestParams(
        rounds=1, saturation_seconds=0.3, connections=2, rate=100, open_seconds=0.3,
        warmup_seconds=0, loader="python", bare_processes=2,
    )  # fmt: skip
    result = ingest.run(params)
    data = result.data
    (entry,) = data["rounds"]
    assert data["relay_processes"] >= 1
    for name in ("relay", "bare", "bare_n"):
        assert entry[f"{name}_saturation"]["rps"] > 0
        assert entry[f"{name}_saturation"]["errors"] == 0
        assert entry[f"{name}_saturation"]["cpu_us_per_request"] >= 0
    assert entry["relay_saturation"]["cpu_us_per_request"] > 0
    # The extra column: the bare handler in as many processes; the target stays one process.
    assert data["bare_n"]["processes"] == 2
    assert "bare ×2 req/s" in result.tables[0].columns
    assert "bare ×2: 2 processes on one port" in result.render()
    for name in ("relay", "bare"):
        assert data["open_loop"][name]["answered"] == data["open_loop"][name]["sent"] == 30
        assert data["open_loop"][name]["non_2xx"] == 0
    # Every relay answer was a durable write of a new event.
    assert data["stored_events"] >= entry["relay_saturation"]["ok"] + 30
    assert {t["target"] for t in result.targets} == {
        "ingest req/s vs bare aiohttp",
        "relay p99 answer latency at 100/s",
    }


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_closed_loop_against_the_bare_handler(tmp_path: Path) -> None:
    template = tmp_path / "payload.json"
    template.write_bytes(sample_template())
    loader = Loader(tmp_path, "wrk")
    with start_python("bench.bare", [], tmp_path, "bare") as bare:
        figures = closed_loop(loader, bare.url, template, "s", connections=2, duration=1.0)
    assert figures["ok"] > 0
    assert figures["errors"] == 0


def test_e2e_tiny() -> None:
    result = e2e.run(e2e.E2EParams(events=12, connections=3, timeout=20.0))
    systems = result.data["systems"]
    relay = systems["relay"]
    assert relay["accepted"] == relay["delivered"] == relay["matched"] == 12
    assert relay["latency_ms"]["p50"] > 0
    assert relay["processes"] == result.data["relay_processes"] >= 1
    assert relay["cpu_us_per_event"] > 0
    (target,) = result.targets
    if shutil.which(ALERTMANAGER) is None:
        assert "not installed" in systems["alertmanager"]["missing"]
        assert target["met"] is None
        assert any("not installed" in note for note in result.tables[0].notes)
    else:
        manager = systems["alertmanager"]
        assert manager["accepted"] == manager["delivered"] == manager["matched"] == 12
        assert result.data["ratio"] > 0
        assert target["met"] in (True, False)


def test_e2e_says_so_when_alertmanager_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(procs, "ALERTMANAGER", "no-such-alertmanager-binary")
    params = e2e.E2EParams(events=3)
    missing = e2e._alertmanager(params, tmp_path, Loader(tmp_path))
    assert missing == {"missing": "no-such-alertmanager-binary is not installed"}
    relay = {
        "accepted": 3, "delivered": 3, "matched": 3, "seconds_to_all": 0.1,
        "deliveries_per_s": 30.0, "latency_ms": {"p50": 1.0, "p99": 2.0, "max": 2.0},
        "processes": 3, "cpu_us_per_event": 900.0,
    }  # fmt: skip
    result = e2e._report(params, {"relay": relay, "alertmanager": missing})
    (target,) = result.targets
    assert target["met"] is None
    rendered = result.render()
    assert "alertmanager: not measured, no-such-alertmanager-binary is not installed." in rendered
    assert "| relay " in rendered and "30.00" in rendered
    assert "Relay processes: 3 (supervisor + 2 workers)" in rendered


def test_routing_tiny() -> None:
    result = routing.run(routing.RoutingParams(sizes=(10, 100), matches=300, repeats=1))
    sizes = result.data["sizes"]
    assert [row["routes"] for row in sizes] == [10, 100]
    assert all(row["us_per_match"] > 0 and row["deliveries_per_event"] > 0 for row in sizes)
    assert sizes[0]["ratio"] == 1.0


def test_routing_sets_match_their_size() -> None:
    from relay.config import parse_config

    config, _ = parse_config(routing.build_config(50))
    assert len(config.routes) == 50
    kinds = {key for route in config.routes if route.match for key in route.match.model_fields_set}
    assert {"agent", "flag", "status", "trigger", "youtube_channel"} <= kinds


def test_memory_tiny() -> None:
    result = memory.run(
        memory.MemoryParams(events=60, connections=3, settle_seconds=0.0, timeout=20.0)
    )
    data = result.data
    assert data["accepted"] == 60
    assert data["pending"] + data["job_states"].get("dead", 0) == 60
    assert data["peak_rss_mib"] >= data["idle_rss_mib"] > 0
    assert data["processes"] == data["relay_processes"] >= 1
    assert 0 < data["pss_mib"] <= data["rss_mib"] * 1.1
    assert result.tables[0].columns[0] == "processes"


def test_latency_tiny() -> None:
    result = latency.run(
        latency.LatencyParams(rate=20, seconds=0.5, timeout=20.0, alertmanager=False)
    )
    relay = result.data["systems"]["relay"]
    assert relay["sent"] == relay["accepted"] == relay["delivered"] == relay["matched"] == 10
    assert relay["delivered_ms"]["max"] >= relay["delivered_ms"]["p99"] >= 0
    assert relay["processes"] >= 1
    assert "| relay " in result.render()


def test_replicas_tiny() -> None:
    result = replicas.run(replicas.ReplicasParams(events=12, connections=4, rounds=1))
    data = result.data
    if "missing" in data:
        assert os.environ.get("RELAY_REQUIRE_REDIS") != "1", data["missing"]
        assert f"Not measured: {data['missing']}." in result.render()
        return
    (entry,) = data["rounds"]
    for count in (1, 2):
        run = entry[str(count)]
        assert run["accepted"] == run["delivered"] == run["matched"] == 12
        assert run["processes"] == count  # each replica runs one process
    assert data["ratio"] > 0
    assert "2 relays / 1" in result.tables[0].columns


def test_overview_tiny() -> None:
    result = overview.run(overview.OverviewParams(events=2_000, loads=2))
    data = result.data
    assert data["filled"]["events"] == 2_000 and data["filled"]["jobs"] > 0
    assert data["added_events"] > 0
    # every event of the last 29 days and today is on the page, the hour added too
    assert 0 < data["events_in_30_days"] <= 2_000 + data["added_events"]
    assert 0 < data["page_ms"]["p50"] <= data["page_ms"]["max"]
    assert result.targets[0]["met"] is None  # the target needs 1,000,000 events


def test_with_workers_sets_server_workers_only_when_asked() -> None:
    text = e2e.relay_config("http://127.0.0.1:9/services/x")
    assert with_workers(text, None) == text
    assert "server" not in yaml.safe_load(text)
    assert yaml.safe_load(with_workers(text, 3))["server"] == {"workers": 3}


def test_workers_option_reaches_every_relay_config(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(names: Any, params: dict[str, Any], out: Path, echo: Any = print) -> list[Any]:
        seen.update(params)
        return []

    monkeypatch.setattr(cli, "run_benches", fake_run)
    monkeypatch.setattr(cli, "relay_knows_workers", lambda: True)
    assert main(["all", "--quick", "--workers", "2"]) == 0
    assert {name for name, p in seen.items() if getattr(p, "workers", None) == 2} == {
        "ingest", "e2e", "latency", "memory"
    }  # fmt: skip
    monkeypatch.setattr(cli, "relay_knows_workers", lambda: False)
    with pytest.raises(SystemExit):
        main(["all", "--quick", "--workers", "2"])


def test_cli_writes_json_and_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as out:
        assert main(["routing", "--quick", "--out", out]) == 0
        document = json.loads((Path(out) / "routing.json").read_text())
    printed = capsys.readouterr().out
    assert "| routes" in printed and "### targets" in printed
    assert "Relay processes (measured): none ran." in printed
    assert document["bench"] == "routing"
    assert document["machine"]["nproc"] >= 1
    assert not math.isnan(document["results"]["sizes"][0]["us_per_match"])


def test_run_ids_are_distinct_and_found_by_the_sink_pattern() -> None:
    from bench.common import RUN_ID_PATTERN

    ids = {run_id(i, "0123456789ab", w) for i in range(100) for w in (0, 1)}
    assert len(ids) == 200
    assert all(RUN_ID_PATTERN.fullmatch(i) for i in ids)
