"""hostile: what one signed but hostile event costs the relay process.

``python -m bench.hostile [--quick]`` starts ``relay serve`` with many file channels and sends:

- a ``RUN_PROGRESS`` with ``{"completed": -100000000, "failed": 100000001}`` (and one with
  ``-10**15``), routed to one channel: the answer, RSS before and after (``VmRSS``; ``VmHWM`` is the
  peak; each summed over the relay's processes), what became of its deliveries;
- a ~700 KB event with 20,000 ``updated_nodes``, delivered to every channel;
- the same body to ``POST /api/route-test``;
- 25 unsigned clients that each declare a 1,000-byte body and send one byte of it (more than
  ``server.max_in_flight``, set to 20 here), then 5 signed webhooks: how many are accepted.

Meanwhile a thread polls ``GET /healthz`` every 20 ms on one keep-alive connection; the tables
give the slowest answer while each event was handled (until all its deliveries were done).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import Result, Table
from bench.procs import start_relay, wait_until

__all__ = ["FULL", "QUICK", "HostileParams", "big_event", "negative_counts_event", "run"]

SECRET = "bench-secret"
ADMIN_TOKEN = "bench-admin-token"
AGENT = "123e4567-e89b-12d3-a456-789012345678"
NEGATIVE_AGENT = "0e6a7c1e-0000-4000-8000-00000000bad1"
"""Its events go to one channel only (a route with ``stop: true``)."""


FLOOD_SLOTS = 20
FLOOD_CLIENTS = 25
FLOOD_SIGNED = 5


@dataclass(frozen=True)
class HostileParams:
    channels: int = 17
    nodes: int = 20_000
    poll_interval: float = 0.02
    timeout: float = 120.0


FULL = HostileParams()
QUICK = HostileParams(channels=3, nodes=2_000, timeout=60.0)


def negative_counts_event(run_id: str, completed: int, failed: int) -> bytes:
    """A small ``RUN_PROGRESS`` whose counts sum to a tiny total from huge opposite values."""
    event = {
        "flag": "RUN_PROGRESS",
        "agent_id": NEGATIVE_AGENT,
        "run_id": run_id,
        "status": "running",
        "node_status_counts": {"completed": completed, "in_progress": 0, "failed": failed},
    }
    return json.dumps(event).encode()


def big_event(run_id: str, nodes: int) -> bytes:
    """A ``RUN_PROGRESS`` listing ``nodes`` updated nodes (~700 KB for 20,000), a few with outputs."""
    updated: list[dict[str, Any]] = [{"original_node_id": f"node-{i:05d}"} for i in range(nodes)]
    for i in range(0, nodes, 1000):
        url = f"https://storage.example.com/renders/{i}/clip.mp4"
        updated[i]["outputs"] = [{"id": f"out-{i}", "video_url": url}]
    event = {
        "flag": "RUN_PROGRESS",
        "agent_id": AGENT,
        "run_id": run_id,
        "status": "running",
        "node_status_counts": {"completed": nodes // 2, "in_progress": nodes // 2, "failed": 0},
        "updated_nodes": updated,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def _config(channels: int) -> str:
    names = [f"file-{i:02d}" for i in range(channels)]
    lines = [
        "auth:",
        f'  secrets: ["{SECRET}"]',
        "server:",
        f'  admin_token: "{ADMIN_TOKEN}"',
        f"  max_in_flight: {FLOOD_SLOTS}",
        "store:",
        "  url: sqlite:///relay.db",
        "delivery:",
        "  max_attempts: 2",
        "  backoff: {initial: 10ms, max: 50ms}",
        "channels:",
        *(f"  {name}: {{type: file, path: {name}.jsonl}}" for name in names),
        "routes:",
        f"  - {{match: {{agent: [{NEGATIVE_AGENT}]}}, to: [{names[0]}], stop: true}}",
        f"  - to: [{', '.join(names)}]",
    ]
    return "\n".join(lines) + "\n"


class HealthPoller:
    """``GET /healthz`` every ``interval`` seconds; keeps (started_at, seconds) of each answer."""

    def __init__(self, base: str, interval: float) -> None:
        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._interval = interval
        self._stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
            self.samples.append((started, time.monotonic() - started))
            self._stop.wait(self._interval)
        conn.close()

    def slowest(self, since: float = 0.0) -> float:
        """The slowest answer, in ms, among polls started at or after ``since``."""
        return max((s for t, s in self.samples if t >= since), default=float("nan")) * 1000

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class Client:
    """The relay's webhook URL and its API, over plain HTTP on loopback."""

    def __init__(self, webhook_url: str) -> None:
        parts = urlsplit(webhook_url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.host, self.port, self.path = (
            parts.hostname or "127.0.0.1",
            parts.port or 80,
            parts.path,
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, json.loads(answer.read() or b"null")
        finally:
            conn.close()

    def post_event(self, body: bytes) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "X-Mosaic-Signature": SECRET}
        return self.request("POST", self.path, body, headers)

    def api(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        return self.request(method, path, body, headers)

    def counts(self) -> dict[str, int]:
        status, counts = self.api("GET", "/api/counts")
        assert status == 200, counts
        return {k: v or 0 for k, v in counts.items()}


def _settled(client: Client, expected: int) -> Callable[[], bool]:
    """True once ``expected`` deliveries in all are sent or dead."""

    def check() -> bool:
        counts = client.counts()
        return counts["sent"] + counts["dead"] >= expected

    return check


def _outcome(client: Client, before: dict[str, int]) -> str:
    after = client.counts()
    return f"{after['sent'] - before['sent']} sent, {after['dead'] - before['dead']} dead"


@contextmanager
def _relay(params: HostileParams) -> Iterator[tuple[Any, Client]]:
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        work = Path(tmp)
        config = work / "relay.yaml"
        config.write_text(_config(params.channels))
        with start_relay(config, work) as relay:
            yield relay, Client(relay.url)


def _negative(params: HostileParams, relay: Any, client: Client) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, completed in (("minus_1e8", -100_000_000), ("minus_1e15", -(10**15))):
        before = client.counts()
        rss = relay.status_kib("VmRSS")[0]
        with HealthPoller(client.base, params.poll_interval) as poller:
            status, answer = client.post_event(
                negative_counts_event(f"neg-{name}", completed, -completed + 1)
            )
            expected = before["sent"] + before["dead"] + (1 if status < 300 else 0)
            wait_until(_settled(client, expected), params.timeout, "negative-count deliveries")
        figures[name] = {
            "status": status,
            "error": answer.get("error") if isinstance(answer, dict) else None,
            "rss_before_mib": rss / 1024,
            "rss_after_mib": relay.status_kib("VmRSS")[0] / 1024,
            "peak_rss_mib": relay.status_kib("VmHWM")[0] / 1024,
            "healthz_max_ms": poller.slowest(),
            "deliveries": _outcome(client, before),
        }
    return figures


def _big(params: HostileParams, client: Client) -> dict[str, Any]:
    body = big_event("big-run", params.nodes)
    before = client.counts()
    with HealthPoller(client.base, params.poll_interval) as poller:
        started = time.monotonic()
        status, _ = client.post_event(body)
        accepted = time.monotonic()
        expected = before["sent"] + before["dead"] + params.channels
        wait_until(_settled(client, expected), params.timeout, "big-event deliveries")
        done = time.monotonic()
    big = {
        "bytes": len(body),
        "status": status,
        "answer_ms": (accepted - started) * 1000,
        "deliveries_s": done - accepted,
        "healthz_max_ms": poller.slowest(),
        "healthz_max_after_accept_ms": poller.slowest(since=accepted),
        "polls": len(poller.samples),
        "deliveries": _outcome(client, before),
    }
    with HealthPoller(client.base, params.poll_interval) as poller:
        started = time.monotonic()
        status, _ = client.api("POST", "/api/route-test", body)
        answered = time.monotonic()
    route_test = {
        "status": status,
        "answer_ms": (answered - started) * 1000,
        "healthz_max_ms": poller.slowest(),
        "polls": len(poller.samples),
    }
    return {"big": big, "route_test": route_test}


def _flood(client: Client) -> dict[str, Any]:
    """Unsigned slow bodies held open while signed webhooks arrive."""
    head = (
        f"POST {client.path} HTTP/1.1\r\nHost: relay\r\nContent-Length: 1000\r\n\r\n{{"
    ).encode()
    sockets = []
    try:
        for _ in range(FLOOD_CLIENTS):
            sock = socket.create_connection((client.host, client.port), timeout=30)
            sock.sendall(head)
            sockets.append(sock)
        time.sleep(0.5)  # let the server take them in before the signed ones arrive
        statuses = [
            client.post_event(negative_counts_event(f"flood-{n}", 1, 0))[0]
            for n in range(FLOOD_SIGNED)
        ]
    finally:
        for sock in sockets:
            sock.close()
    return {"signed_accepted": sum(s < 300 for s in statuses), "statuses": statuses}


def run(params: HostileParams = FULL) -> Result:
    with _relay(params) as (relay, client):
        figures = {
            "negative": _negative(params, relay, client),
            **_big(params, client),
            "flood": _flood(client),
        }
    return _report(params, figures)


def _report(params: HostileParams, f: dict[str, Any]) -> Result:
    negative = Table(
        "hostile: negative node counts (one small signed RUN_PROGRESS each)",
        ["completed", "answer", "RSS before MiB", "RSS after MiB", "peak RSS MiB",
         "/healthz max ms", "deliveries"],
    )  # fmt: skip
    for name, label in (("minus_1e8", "-10^8"), ("minus_1e15", "-10^15")):
        n = f["negative"][name]
        answer = f"{n['status']}" + (f" {n['error']}" if n["error"] else "")
        negative.add(
            label, answer, n["rss_before_mib"], n["rss_after_mib"], n["peak_rss_mib"],
            n["healthz_max_ms"], n["deliveries"],
        )  # fmt: skip
    big, route = f["big"], f["route_test"]
    loop = Table(
        f"hostile: {big['bytes'] / 1000:,.0f} KB event with {params.nodes:,} updated_nodes, "
        f"{params.channels} file channels",
        ["request", "answer", "answer ms", "/healthz max ms", "max after accept ms",
         "deliveries", "delivery s", "polls"],
    )  # fmt: skip
    loop.add(
        "webhook", big["status"], big["answer_ms"], big["healthz_max_ms"],
        big["healthz_max_after_accept_ms"], big["deliveries"], big["deliveries_s"], big["polls"],
    )  # fmt: skip
    loop.add(
        "route test", route["status"], route["answer_ms"], route["healthz_max_ms"], "",
        "", "", route["polls"],
    )  # fmt: skip
    loop.notes.append(
        f"/healthz polled every {params.poll_interval * 1000:g} ms on one keep-alive connection "
        "from the webhook POST until every delivery was sent or dead; 'after accept' leaves out "
        "the polls that started before the webhook was answered."
    )
    flood = Table(
        f"hostile: {FLOOD_CLIENTS} unsigned slow bodies, max_in_flight {FLOOD_SLOTS}, then "
        f"{FLOOD_SIGNED} signed webhooks",
        ["signed accepted", "answers"],
    )
    flood.add(
        f"{f['flood']['signed_accepted']}/{FLOOD_SIGNED}",
        " ".join(map(str, f["flood"]["statuses"])),
    )
    result = Result("hostile", [negative, loop, flood], {"params": asdict(params), **f})
    result.target(
        "/healthz while the big event is delivered",
        "≤ 100 ms",
        f"{big['healthz_max_after_accept_ms']:.0f} ms",
        big["healthz_max_after_accept_ms"] <= 100,
    )
    result.target(
        "/healthz during the big route test",
        "≤ 100 ms",
        f"{route['healthz_max_ms']:.0f} ms",
        route["healthz_max_ms"] <= 100,
    )
    result.target(
        "signed webhooks accepted during the unsigned flood",
        f"{FLOOD_SIGNED}/{FLOOD_SIGNED}",
        f"{f['flood']['signed_accepted']}/{FLOOD_SIGNED}",
        f["flood"]["signed_accepted"] == FLOOD_SIGNED,
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer channels and nodes")
    args = parser.parse_args(argv)
    result = run(QUICK if args.quick else FULL)
    print(result.render(), flush=True)
    for t in result.targets:
        print(f"- {t['target']}: {t['measured']} (goal {t['goal']})")
    return 0 if all(t["met"] for t in result.targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
