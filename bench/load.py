"""Drive load at a server from other processes: ``wrk`` (closed loop) when installed, else
``bench.loadgen`` in several processes; the open-loop generator is always ``bench.loadgen``.

``wrk`` gets a Lua script that gives every request its own run id (same format as
``bench.common.run_id``) and prints its summary as one JSON line.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import PLACEHOLDER, new_nonce
from bench.procs import child_env

__all__ = ["OPEN_WORKER", "Loader", "closed_loop", "open_loop", "post_all"]

_WRK_SCRIPT = """
local pre, post, nonce, path, headers
local counter = 0
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local template = file:read("*a")
  file:close()
  local s, e = string.find(template, "PLACEHOLDER", 1, true)
  pre = string.sub(template, 1, s - 1)
  post = string.sub(template, e + 1)
  nonce = args[2]
  path = args[3]
  headers = {["Content-Type"] = "application/json"}
  if args[4] ~= nil then headers["X-Mosaic-Signature"] = args[4] end
end

function request()
  counter = counter + 1
  local id = string.format("%08x-%04x-4000-8000-%s", counter, 256 + tid, nonce)
  return wrk.format("POST", path, headers, pre .. id .. post)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
""".replace("PLACEHOLDER", PLACEHOLDER)

OPEN_WORKER = 0x200
"""The ``worker`` part of the run ids the open-loop generator sends."""
LOADGEN_GRACE = 30.0
"""How long past its own duration a load process may run before it is killed."""


class Loader:
    """Which closed-loop generator this run uses: ``wrk`` if installed (or forced)."""

    def __init__(self, work: Path, prefer: str = "auto", processes: int = 2) -> None:
        if prefer not in ("auto", "wrk", "python"):
            raise ValueError(f"unknown load generator {prefer!r}")
        has_wrk = shutil.which("wrk") is not None
        if prefer == "wrk" and not has_wrk:
            raise RuntimeError("wrk is not installed (apt-get install wrk)")
        self.kind = "wrk" if has_wrk and prefer != "python" else "python"
        self.work = work
        self.processes = processes
        self._script = work / "distinct.lua"
        self._script.write_text(_WRK_SCRIPT)
        self._count = 0

    @property
    def label(self) -> str:
        if self.kind == "wrk":
            return "wrk, 1 thread"
        return f"bench.loadgen, {self.processes} processes"

    def _spec_path(self, spec: dict[str, Any]) -> tuple[Path, Path]:
        self._count += 1
        spec_path = self.work / f"load-{self._count}.json"
        spec_path.write_text(json.dumps(spec))
        return spec_path, self.work / f"load-{self._count}.out.json"


def closed_loop(
    loader: Loader, url: str, template: Path, secret: str, connections: int, duration: float
) -> dict[str, Any]:
    """Saturation: requests/s with ``connections`` always busy; ``ok`` counts 2xx answers."""
    if loader.kind == "wrk":
        return _wrk(loader, url, template, secret, connections, duration)
    start_at = time.time() + 0.25 + 0.05 * loader.processes
    per = [connections // loader.processes] * loader.processes
    per[0] += connections - sum(per)
    running = []
    for worker, conns in enumerate(per):
        spec = {
            "mode": "closed", "url": url, "template": str(template), "nonce": new_nonce(),
            "worker": worker, "headers": {"X-Mosaic-Signature": secret},
            "connections": conns, "duration": duration, "start_at": start_at,
        }  # fmt: skip
        running.append(_spawn(loader, spec))
    outs = [_finish(proc, out, duration + LOADGEN_GRACE) for proc, out in running]
    statuses: dict[str, int] = {}
    for out in outs:
        for code, count in out["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count
    total = sum(statuses.values())
    ok = sum(v for k, v in statuses.items() if k.startswith("2"))
    return {
        "rps": ok / duration,
        "requests": total,
        "ok": ok,
        "errors": total - ok,
        "p50_ms": max(o["latency_ms"].get("p50", 0.0) for o in outs),
        "p99_ms": max(o["latency_ms"].get("p99", 0.0) for o in outs),
    }


def _wrk(
    loader: Loader, url: str, template: Path, secret: str, connections: int, duration: float
) -> dict[str, Any]:
    seconds = max(1, round(duration))
    path = "/" + url.split("/", 3)[3]
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    argv += ["-s", str(loader._script), url, "--", str(template), new_nonce(), path, secret]
    done = subprocess.run(
        argv, capture_output=True, text=True, env=child_env(), timeout=seconds + LOADGEN_GRACE
    )
    found = re.search(r"WRK_JSON (\{.*\})", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-800:]} {done.stderr}")
    raw = json.loads(found.group(1))
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    elapsed = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["status"]
    return {
        "rps": ok / elapsed,
        "requests": raw["requests"],
        "ok": ok,
        "errors": errors,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


def open_loop(
    loader: Loader,
    url: str,
    template: Path,
    secret: str | None,
    rate: float,
    duration: float,
    *,
    nonce: str | None = None,
    answers: bool = False,
) -> dict[str, Any]:
    """A fixed offered rate; latency from each request's intended send time. Request ``i`` carries
    run id ``run_id(i, nonce, OPEN_WORKER)``; ``answers``: also when each was answered."""
    spec = {
        "mode": "open", "url": url, "template": str(template), "nonce": nonce or new_nonce(),
        "worker": OPEN_WORKER, "headers": {"X-Mosaic-Signature": secret} if secret else {},
        "rate": rate, "duration": duration, "max_conns": 256, "answers": answers,
    }  # fmt: skip
    proc, out = _spawn(loader, spec)
    result: dict[str, Any] = _finish(proc, out, duration + LOADGEN_GRACE)
    return result


def post_all(
    loader: Loader,
    url: str | list[str],
    template: Path,
    count: int,
    connections: int,
    nonce: str,
    headers: dict[str, str],
    timeout: float,
) -> dict[str, Any]:
    """``count`` requests as fast as answered; when each was answered (monotonic clock). Several
    URLs: the connections are spread over them, round robin."""
    where = {"url": url} if isinstance(url, str) else {"urls": url}
    spec = {
        "mode": "post", **where, "template": str(template), "nonce": nonce,
        "headers": headers, "count": count, "connections": connections,
    }  # fmt: skip
    proc, out = _spawn(loader, spec)
    result: dict[str, Any] = _finish(proc, out, timeout)
    return result


def _spawn(loader: Loader, spec: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path]:
    spec_path, out_path = loader._spec_path(spec)
    argv = [sys.executable, "-m", "bench.loadgen", str(spec_path), str(out_path)]
    err = (loader.work / f"{out_path.stem}.stderr").open("wb")
    proc = subprocess.Popen(argv, stdout=err, stderr=err, env=child_env())
    err.close()
    return proc, out_path


def _finish(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> Any:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"load generator did not finish within {timeout:.0f}s") from None
    if code != 0:
        log = out.with_name(f"{out.stem}.stderr").read_text(errors="replace")
        raise RuntimeError(f"load generator failed ({code}): {log[-1500:]}")
    return json.loads(out.read_text())
