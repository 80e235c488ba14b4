"""GET /metrics: every documented series, with exact counts after a known sequence of events."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from relay.app import RELAY, Relay, build_app
from relay.config import load_config
from relay.metrics import Metrics, flag_label
from relay.receiver import SIGNATURE_HEADER
from relay.store.base import ChannelStatus
from tests.conftest import SECRET, read_jsonl, sample, wait_until

Client = TestClient[Any, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PATH = "/webhooks/mosaic"
ADMIN = "metrics-admin-token"

CONFIG = f"""\
server: {{max_body_bytes: 4000, admin_token: {ADMIN}}}
auth:
  secrets: ["{SECRET}"]
store: {{url: sqlite:///relay.db, sync: normal}}
delivery:
  max_attempts: 3
  backoff: {{initial: 10ms, max: 20ms}}
  shutdown_grace: 1s
channels:
  archive: {{type: file, path: deliveries.jsonl}}
  broken: {{type: file, path: blocked}}
routes:
  - name: all
    to: [archive]
  - name: failures
    match: {{flag: RUN_FINISHED, status: failed}}
    to: [broken]
  - name: tests
    match: {{flag: TEST}}
    to: [archive]
"""


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def scrape(client: Client) -> Samples:
    answer = await client.get("/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(await answer.text()):
        for found in family.samples:
            samples[key(found.name, **found.labels)] = found.value
    return samples


def by_name(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (found, labels), value in samples.items() if found == name}


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


async def post(client: Client, body: bytes | dict[str, Any], secret: str = SECRET) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = await client.post(PATH, data=data, headers={SIGNATURE_HEADER: secret})
    return answer.status


@pytest.fixture
async def client(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, tmp_path: Path
) -> Client:
    (tmp_path / "blocked").mkdir()  # the 'broken' channel's file is a folder: writes fail
    return await aiohttp_client(build_app(load_config(write_config(CONFIG), env={})))


async def known_sequence(client: Client) -> None:
    """3 accepted, 2 duplicates, 1 unauthorized, 2 invalid, 1 too large (TEST left out)."""
    paused = {**sample("run_progress"), "flag": "RUN_PAUSED"}
    assert await post(client, sample("run_finished_failed")) == 202
    assert await post(client, sample("run_progress")) == 202
    assert await post(client, sample("run_progress")) == 200
    assert await post(client, paused) == 202
    assert await post(client, paused) == 200
    assert await post(client, sample("run_progress"), secret="wrong") == 401
    assert await post(client, b"{not json") == 400
    assert await post(client, {"flag": "RUN_FINISHED"}) == 422
    assert await post(client, {**sample("run_progress"), "pad": "x" * 5000}) == 413


async def settled(relay: Relay) -> bool:
    rows = await relay.store.status()
    return sum(r.count for r in rows if r.state in ("sent", "dead")) == 4


async def test_webhooks_by_result_and_answer_latency(client: Client) -> None:
    await known_sequence(client)
    samples = await scrape(client)
    results: dict[str, float] = {}
    for found, value in by_name(samples, "relay_webhooks_received_total").items():
        result = dict(found)["result"]
        results[result] = results.get(result, 0) + value
    assert results == {
        "accepted": 3,
        "duplicate": 2,
        "unauthorized": 1,
        "invalid": 2,
        "too_large": 1,
    }
    received = by_name(samples, "relay_webhooks_received_total")
    assert received[labels(flag="RUN_PROGRESS", result="duplicate")] == 1
    assert received[labels(flag="other", result="duplicate")] == 1  # the label stays bounded
    assert samples[key("relay_webhook_duration_seconds_count")] == 9
    assert 0 < samples[key("relay_webhook_duration_seconds_sum")] < 9 * 2.5


async def test_webhooks_are_counted_under_their_flag(client: Client) -> None:
    await known_sequence(client)
    assert await post(client, sample("test")) == 200
    received = by_name(await scrape(client), "relay_webhooks_received_total")
    assert received == {
        labels(flag="RUN_FINISHED", result="accepted"): 1,
        labels(flag="RUN_PROGRESS", result="accepted"): 1,
        labels(flag="RUN_PROGRESS", result="duplicate"): 1,
        labels(flag="other", result="accepted"): 1,
        labels(flag="other", result="duplicate"): 1,
        labels(flag="TEST", result="ok"): 1,
        labels(flag="none", result="unauthorized"): 1,
        labels(flag="none", result="invalid"): 2,
        labels(flag="none", result="too_large"): 1,
    }


async def test_deliveries_latency_and_queue_depth(client: Client, tmp_path: Path) -> None:
    relay = client.app[RELAY]
    await known_sequence(client)
    await wait_until(lambda: settled(relay))
    samples = await scrape(client)
    assert by_name(samples, "relay_deliveries_total") == {
        labels(channel="archive", outcome="sent"): 3,
        labels(channel="broken", outcome="retried"): 2,  # max_attempts 3: two retries, then dead
        labels(channel="broken", outcome="dead"): 1,
    }
    assert samples[key("relay_delivery_latency_seconds_count", channel="archive")] == 3
    assert samples[key("relay_delivery_latency_seconds_sum", channel="archive")] >= 0
    assert key("relay_delivery_latency_seconds_count", channel="broken") not in samples
    assert by_name(samples, "relay_queue_jobs") == {
        labels(channel="archive", state="sent"): 3,
        labels(channel="broken", state="dead"): 1,
    }
    assert samples[key("relay_oldest_pending_age_seconds")] == 0
    assert len(read_jsonl(tmp_path / "deliveries.jsonl")) == 3


async def test_pending_jobs_and_their_age(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    (tmp_path / "blocked").mkdir()
    slow = CONFIG.replace("initial: 10ms, max: 20ms", "initial: 1h, max: 1h")
    client = await aiohttp_client(build_app(load_config(write_config(slow), env={})))
    relay = client.app[RELAY]
    accepted_at = time.time()
    assert await post(client, sample("run_finished_failed")) == 202

    # Outcomes are committed after the attempt: wait until the store holds the sent job and the
    # failed one back in the queue (pending before its first claim does not count).
    async def retried_once() -> bool:
        retried = key("relay_deliveries_total", channel="broken", outcome="retried")
        states = {(r.channel, r.state) for r in await relay.store.status()}
        return (await scrape(client)).get(retried) == 1 and states == {
            ("archive", "sent"),
            ("broken", "pending"),
        }

    await wait_until(retried_once)
    assert len(read_jsonl(tmp_path / "deliveries.jsonl")) == 1
    samples = await scrape(client)
    assert by_name(samples, "relay_queue_jobs") == {
        labels(channel="archive", state="sent"): 1,
        labels(channel="broken", state="pending"): 1,
    }
    age = samples[key("relay_oldest_pending_age_seconds")]
    assert 0 < age <= time.time() - accepted_at + 0.01


async def test_config_series_follow_reloads(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient
) -> None:
    before = time.time()
    path = write_config(CONFIG)
    client = await aiohttp_client(build_app(load_config(path, env={})))
    first_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    samples = await scrape(client)
    assert by_name(samples, "relay_config_info") == {labels(sha256=first_sha): 1}
    assert before <= samples[key("relay_config_loaded_timestamp_seconds")] <= time.time()
    assert samples[key("relay_config_last_reload_success")] == 1
    assert by_name(samples, "relay_config_reloads_total") == {
        labels(result="success"): 0,
        labels(result="failure"): 0,
    }

    admin = {"Authorization": f"Bearer {ADMIN}"}
    path.write_text(CONFIG.replace("to: [broken]", "to: [brokn]"))
    assert (await client.post("/-/reload", headers=admin)).status == 400
    samples = await scrape(client)
    assert samples[key("relay_config_reloads_total", result="failure")] == 1
    assert samples[key("relay_config_last_reload_success")] == 0
    assert by_name(samples, "relay_config_info") == {labels(sha256=first_sha): 1}

    loaded_before = samples[key("relay_config_loaded_timestamp_seconds")]
    path.write_text(CONFIG + "# edited\n")
    assert (await client.post("/-/reload", headers=admin)).status == 200
    samples = await scrape(client)
    assert samples[key("relay_config_reloads_total", result="success")] == 1
    assert samples[key("relay_config_last_reload_success")] == 1
    new_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert by_name(samples, "relay_config_info") == {labels(sha256=new_sha): 1}
    assert samples[key("relay_config_loaded_timestamp_seconds")] >= loaded_before


async def test_each_app_has_its_own_registry(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    (tmp_path / "blocked").mkdir()
    path = write_config(CONFIG)
    one = await aiohttp_client(build_app(load_config(path, env={})))
    two = await aiohttp_client(build_app(load_config(path, env={})))
    assert await post(one, sample("run_progress"), secret="wrong") == 401
    assert (await scrape(one))[key("relay_webhook_duration_seconds_count")] == 1
    assert (await scrape(two))[key("relay_webhook_duration_seconds_count")] == 0


def test_flag_label_is_bounded() -> None:
    assert [flag_label(f) for f in ("RUN_STARTED", "TEST", "RUN_PAUSED", "x" * 500, None)] == [
        "RUN_STARTED",
        "TEST",
        "other",
        "other",
        "none",
    ]


def test_oldest_pending_age_counts_pending_and_inflight_only() -> None:
    metrics = Metrics()
    metrics.update_queue(
        [
            ChannelStatus("a", "sent", 5, 100.0),
            ChannelStatus("a", "dead", 1, 50.0),
            ChannelStatus("b", "pending", 2, 900.0),
            ChannelStatus("c", "inflight", 1, 950.0),
        ],
        now=1000.0,
    )
    assert metrics.registry.get_sample_value("relay_oldest_pending_age_seconds") == 100.0
    metrics.update_queue([ChannelStatus("a", "sent", 5, 100.0)], now=1000.0)
    assert metrics.registry.get_sample_value("relay_oldest_pending_age_seconds") == 0.0
    pending = {"channel": "b", "state": "pending"}
    assert metrics.registry.get_sample_value("relay_queue_jobs", pending) is None


# --- the Grafana dashboard -----------------------------------------------------------------------

DASHBOARD = Path(__file__).resolve().parent.parent / "config" / "grafana-dashboard.json"
SERIES = re.compile(r"\brelay_[a-z_]+")
MATCHER = re.compile(r"([a-z_]+)\s*=~?\s*\"")
GROUPING = re.compile(r"\bby \(([^)]*)\)")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [a["expr"] for a in dashboard["annotations"]["list"]]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            queries += [target["expr"] for target in panel["targets"]]
    return queries


async def test_the_dashboard_queries_series_the_relay_exports(client: Client) -> None:
    relay = client.app[RELAY]
    await known_sequence(client)
    await wait_until(lambda: settled(relay))
    exported: dict[str, set[str]] = {}
    for name, found in await scrape(client):
        exported.setdefault(name, set()).update(label for label, _ in found)
    prometheus_labels = {"job", "instance", "le"}
    used = set()
    for query in dashboard_queries():
        for name in SERIES.findall(query):
            assert name in exported, f"{name} is not exported"
            used.add(name.removesuffix("_bucket"))
            labels_used = set(MATCHER.findall(query)) | {
                label.strip() for group in GROUPING.findall(query) for label in group.split(",")
            }
            assert labels_used <= exported[name] | prometheus_labels, (query, labels_used)
    documented = {
        "relay_webhooks_received_total",
        "relay_webhook_duration_seconds",
        "relay_deliveries_total",
        "relay_delivery_latency_seconds",
        "relay_queue_jobs",
        "relay_oldest_pending_age_seconds",
        "relay_config_reloads_total",
        "relay_config_info",
        "relay_config_loaded_timestamp_seconds",
        "relay_config_last_reload_success",
    }
    assert used == documented
