"""`relay serve` refusing to start: one line on stderr with a hint, exit 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import start_server

BASE = """\
auth: {secrets: [s3cret]}
channels: {out: {type: console}}
routes: [{to: [out]}]
"""


def serve(tmp_path: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "relay.yaml"
    path.write_text(config)
    command = [sys.executable, "-m", "relay", "serve", "-c", str(path), "--port", "0", *args]
    return subprocess.run(
        [*command, "--log-format", "text"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if " ERROR " in line]
    return line


def test_a_store_folder_that_does_not_exist(tmp_path: Path) -> None:
    done = serve(tmp_path, 'store: {url: "sqlite:///missing/dir/relay.db"}\n' + BASE)
    line = one_error_line(done)
    assert "cannot open the store" in line
    assert "does not exist: create it or change store.url" in line


def test_a_redis_that_does_not_answer(tmp_path: Path, unused_tcp_port: int) -> None:
    config = f'store: {{url: "redis://127.0.0.1:{unused_tcp_port}/0", sync: normal}}\n' + BASE
    line = one_error_line(serve(tmp_path, config))
    assert "cannot open the redis store" in line and "ConnectionError" in line


def test_a_redis_that_could_lose_acknowledged_webhooks(tmp_path: Path) -> None:
    redis = start_server(tmp_path, "--appendonly", "no")
    try:
        line = one_error_line(serve(tmp_path, f'store: {{url: "{redis.url}"}}\n' + BASE))
    finally:
        redis.stop()
    assert "needs Redis with appendonly yes" in line


def test_no_config_file_says_how_to_get_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "relay", "serve", "--log-format", "text"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    line = one_error_line(done)
    assert "no config file at relay.yaml" in line and "relay init" in line


@pytest.mark.parametrize("host", ["192.0.2.1"])  # TEST-NET-1: never an address of this machine
def test_an_address_that_is_not_local(tmp_path: Path, host: str) -> None:
    line = one_error_line(serve(tmp_path, BASE, "--host", host))
    assert f"{host} is not an address of this machine" in line
