"""/metrics with several worker processes: prometheus-client's multiprocess files, merged.

The value class is fixed when prometheus_client is imported, so every worker here is a fresh
Python process started with PROMETHEUS_MULTIPROC_DIR set; in them a UserWarning (what
prometheus_client warns when labels are cleared in multiprocess mode) is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.metrics import MULTIPROC_ENV, mark_worker_dead
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SECRET, sample
from tests.test_metrics import Samples, by_name, key, labels

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0
PRELUDE = """\
import os, sys
from relay.metrics import Metrics
from relay.store.base import ChannelStatus
m = Metrics()
"""
# Prints its pid, then /metrics as this process renders it.
EPILOGUE = """
print(os.getpid())
sys.stdout.write(m.render().decode())
"""


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            assert "pid" not in found.labels, found
            samples[key(found.name, **found.labels)] = found.value
    return samples


def start(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-W", "error::UserWarning", "-c", *args],
        env={**os.environ, MULTIPROC_ENV: str(directory)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def worker(directory: Path, code: str = "") -> subprocess.Popen[str]:
    """A process that creates the relay's Metrics, runs ``code`` with them (``m``) and exits."""
    return start(directory, PRELUDE + dedent(code) + EPILOGUE)


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    assert not err, err
    first, _, rest = out.partition("\n")
    return int(first), rest


def run(directory: Path, code: str = "") -> tuple[int, Samples]:
    pid, text = finish(worker(directory, code))
    return pid, parse(text)


def workers(directory: Path, *codes: str) -> list[int]:
    """Run these workers side by side; their pids."""
    started = [worker(directory, code) for code in codes]
    return [finish(process)[0] for process in started]


FIRST = """
m.webhooks.labels("RUN_FINISHED", "accepted").inc(2)
m.deliveries.labels("archive", "sent").inc()
m.webhook_seconds.observe(0.002)
m.config_loaded_now("old")
m.config_loaded_now("new")
m.config_loaded.set(100.0)
m.config_reloaded(True)
m.channel_checks({"archive": True, "slack": True, "gone": False})
m.channel_checks({"archive": True, "slack": True})
"""
SECOND = """
m.webhooks.labels("RUN_FINISHED", "accepted").inc()
m.webhooks.labels("none", "unauthorized").inc()
m.deliveries.labels("archive", "sent").inc(2)
m.webhook_seconds.observe(0.2)
m.config_loaded_now("new")
m.config_loaded.set(200.0)
m.config_reloaded(False)
m.channel_checks({"archive": True, "slack": False})
"""


def test_counts_are_summed_and_each_gauge_merges_as_an_operator_reads_it(tmp_path: Path) -> None:
    workers(tmp_path, FIRST, SECOND)
    _, samples = run(tmp_path)  # a third worker serves the scrape
    assert by_name(samples, "relay_webhooks_received_total") == {
        labels(flag="RUN_FINISHED", result="accepted"): 3,
        labels(flag="none", result="unauthorized"): 1,
    }
    assert by_name(samples, "relay_deliveries_total") == {
        labels(channel="archive", outcome="sent"): 3
    }
    assert samples[key("relay_webhook_duration_seconds_count")] == 2
    assert samples[key("relay_webhook_duration_seconds_bucket", le="0.0025")] == 1
    assert samples[key("relay_webhook_duration_seconds_bucket", le="0.25")] == 2
    assert by_name(samples, "relay_config_reloads_total") == {
        labels(result="success"): 1,
        labels(result="failure"): 1,
    }
    # the sha256 every live worker serves; one a worker has left is gone
    assert by_name(samples, "relay_config_info") == {labels(sha256="new"): 1}
    assert samples[key("relay_config_loaded_timestamp_seconds")] == 200.0  # the latest load
    assert samples[key("relay_config_last_reload_success")] == 0  # one worker's reload failed
    # one worker's failing check shows; a channel no worker has any more is gone
    assert by_name(samples, "relay_channel_check_ok") == {
        labels(channel="archive"): 1,
        labels(channel="slack"): 0,
    }


def test_a_dead_workers_gauges_go_and_its_counts_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, second = workers(tmp_path, FIRST, SECOND)
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    mark_worker_dead(second)  # without the variable: nothing to do
    assert (tmp_path / f"gauge_livemin_{second}.db").exists()

    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    mark_worker_dead(second)
    _, samples = run(tmp_path)
    assert samples[key("relay_config_last_reload_success")] == 1
    assert samples[key("relay_config_loaded_timestamp_seconds")] == 100.0
    assert by_name(samples, "relay_channel_check_ok") == {
        labels(channel="archive"): 1,
        labels(channel="slack"): 1,
    }
    assert samples[key("relay_webhooks_received_total", flag="none", result="unauthorized")] == 1
    assert samples[key("relay_deliveries_total", channel="archive", outcome="sent")] == 3


def test_mark_worker_dead_takes_the_folder_from_the_supervisor(tmp_path: Path) -> None:
    files = ["gauge_livemin_77.db", "gauge_livemax_77.db", "counter_77.db", "gauge_livemin_78.db"]
    for name in files:
        (tmp_path / name).touch()
    mark_worker_dead(77, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_77.db", "gauge_livemin_78.db"]


def test_queue_depth_is_the_scraping_workers_reading_of_the_store(tmp_path: Path) -> None:
    """Not merged: another worker's older reading of a queue since emptied must not linger."""
    _, earlier = run(
        tmp_path, 'm.update_queue([ChannelStatus("b", "pending", 2, 900.0)], now=1000.0)'
    )
    assert by_name(earlier, "relay_queue_jobs") == {labels(channel="b", state="pending"): 2}
    assert earlier[key("relay_oldest_pending_age_seconds")] == 100.0
    _, samples = run(tmp_path, 'm.update_queue([ChannelStatus("a", "sent", 5, 10.0)], now=1000.0)')
    assert by_name(samples, "relay_queue_jobs") == {labels(channel="a", state="sent"): 5}
    assert samples[key("relay_oldest_pending_age_seconds")] == 0


def test_a_worker_that_is_starting_does_not_break_the_scrape(tmp_path: Path) -> None:
    (tmp_path / "counter_4242.db").touch()  # created, not yet sized: what a scrape may see
    workers(tmp_path, FIRST)
    _, samples = run(tmp_path)
    assert samples[key("relay_deliveries_total", channel="archive", outcome="sent")] == 1


# Runs the real app (its /metrics handler) in a worker: posts one webhook, then scrapes.
APP = """\
import asyncio, json, os, sys
from pathlib import Path
from aiohttp.test_utils import TestClient, TestServer
from relay.app import RELAY, build_app
from relay.config import load_config

async def main() -> None:
    config, header, secret, body = json.loads(sys.argv[1])
    app = build_app(load_config(Path(config), env={}), check_channels=False)
    async with TestClient(TestServer(app)) as client:
        posted = await client.post("/webhooks/mosaic", data=body, headers={header: secret})
        assert posted.status == 202, posted.status
        scraped = await client.get("/metrics")
        assert scraped.status == 200, scraped.status
        text = await scraped.text()
    loaded_at = app[RELAY].metrics.registry.get_sample_value(
        "relay_config_loaded_timestamp_seconds"
    )
    print(os.getpid())
    print(json.dumps(loaded_at))
    sys.stdout.write(text)

asyncio.run(main())
"""


def test_each_apps_metrics_endpoint_shows_every_workers_counts(tmp_path: Path) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(BASE_CONFIG)
    metrics = tmp_path / "metrics"
    metrics.mkdir()

    def app(run_id: str) -> subprocess.Popen[str]:
        body = json.dumps({**sample("run_progress"), "run_id": run_id})
        return start(metrics, APP, json.dumps([str(config), SIGNATURE_HEADER, SECRET, body]))

    finish(app("7f8d9c2b-4a6e-8b3f-1d5c-9e2f3a4b5c01"))
    _, out = finish(app("7f8d9c2b-4a6e-8b3f-1d5c-9e2f3a4b5c02"))
    loaded_at, _, text = out.partition("\n")
    samples = parse(text)
    accepted = key("relay_webhooks_received_total", flag="RUN_PROGRESS", result="accepted")
    assert samples[accepted] == 2
    assert sum(by_name(samples, "relay_queue_jobs").values()) == 2  # both, from the shared store
    sha = hashlib.sha256(config.read_bytes()).hexdigest()
    assert by_name(samples, "relay_config_info") == {labels(sha256=sha): 1}
    assert json.loads(loaded_at) > 0  # what the dashboard's config page shows: this worker's
