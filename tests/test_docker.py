"""The Dockerfile, without a Docker engine: its shape, and its command line run here for real."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config import load_config
from tests.conftest import read_jsonl, sample

ROOT = Path(__file__).resolve().parent.parent
SECRET = "docker-test-secret"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        name, _, args = (pending + line).partition(" ")
        found.append((name.upper(), args.strip()))
        pending = ""
    return found


def only(name: str) -> str:
    (args,) = [args for found, args in instructions() if found == name]
    return args


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"use the exec form (JSON array): {args}"
    parsed: list[str] = json.loads(args)
    return parsed


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for name, args in instructions():
        if name == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                values[key] = value
    return values


def command() -> list[str]:
    return exec_form(only("ENTRYPOINT")) + exec_form(only("CMD"))


def healthcheck() -> tuple[str, list[str]]:
    options, _, probe = only("HEALTHCHECK").partition("CMD ")
    return options, exec_form(probe)


def volume() -> str:
    (path,) = exec_form(only("VOLUME"))
    return path


def copies() -> list[tuple[list[str], str]]:
    found = []
    for name, args in instructions():
        if name == "COPY":
            *sources, target = shlex.split(args)
            assert not any(s.startswith("--") for s in sources), "plain COPY only"
            found.append((sources, target))
    return found


# --- the Dockerfile's shape ----------------------------------------------------------------------


def test_a_small_python_base() -> None:
    (base,) = [args for name, args in instructions() if name == "FROM"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base)


def test_runs_as_a_non_root_user_with_state_in_a_volume() -> None:
    names = [name for name, _ in instructions()]
    user = [args for name, args in instructions() if name == "USER"][-1]
    assert user not in ("root", "0") and not user.startswith("0:")
    assert names.index("USER") < names.index("ENTRYPOINT")
    assert volume() == "/data"
    assert any(
        "chown" in args and "/data" in args for name, args in instructions() if name == "RUN"
    )
    assert only("WORKDIR") == "/data"


def test_the_config_is_at_etc_relay_and_the_server_binds_all_interfaces() -> None:
    assert env()["RELAY_CONFIG"] == "/etc/relay/relay.yaml"
    assert (["config/docker.yaml"], "/etc/relay/relay.yaml") in copies()
    argv = command()
    assert argv[:2] == ["relay", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    port = argv[argv.index("--port") + 1]
    assert only("EXPOSE") == port


def test_the_healthcheck_probes_healthz_with_python_not_curl() -> None:
    options, probe = healthcheck()
    assert probe[:2] == ["python", "-c"]
    port = command()[command().index("--port") + 1]
    assert f"http://127.0.0.1:{port}/healthz" in probe[2]
    assert "--interval=" in options and "--timeout=" in options
    assert not [args for _, args in instructions() if "curl" in args or "wget" in args]


def test_the_image_config_keeps_all_state_in_the_volume() -> None:
    loaded = load_config(ROOT / "config" / "docker.yaml", env={"MOSAIC_WEBHOOK_SECRET": "x"})
    store = loaded.config.store.url
    assert store.startswith(f"sqlite:///{volume()}/")
    for name, channel in loaded.config.channels.items():
        path = getattr(channel, "path", None)
        assert path is None or path.startswith(f"{volume()}/"), name


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rules, for the patterns used here (globs, **/, ! exceptions)."""
    verdict = False
    for pattern in patterns:
        exclude = not pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern] + ([pattern[3:]] if pattern.startswith("**/") else [])
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for candidate in candidates:
            if any(fnmatch.fnmatchcase(prefix, candidate) for prefix in prefixes) or (
                candidate != pattern and any(fnmatch.fnmatchcase(part, candidate) for part in parts)
            ):
                verdict = exclude
    return verdict


def test_copied_files_exist_and_are_not_dockerignored() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored("tests/test_docker.py", patterns) and ignored(".venv/bin/x", patterns)
    assert ignored("relay/__pycache__/cli.cpython-311.pyc", patterns)
    copied: set[str] = set()
    for sources, _ in copies():
        for source in sources:
            found = ROOT / source
            assert found.exists(), source
            files = [found] if found.is_file() else [p for p in found.rglob("*") if p.is_file()]
            copied |= {str(p.relative_to(ROOT)) for p in files if "__pycache__" not in p.parts}
    assert not [path for path in copied if ignored(path, patterns)]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    for package, globs in project["tool"]["setuptools"]["package-data"].items():
        for pattern in globs:
            assert any(fnmatch.fnmatch(p, f"{package}/{pattern}") for p in copied), pattern


# --- the image's command line, run here ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def local(argv: list[str], port: int) -> list[str]:
    """The image's argv on this machine: this interpreter and its ``relay`` script, another port."""
    script = Path(sys.executable).parent / argv[0]
    head = [str(script)] if argv[0] == "relay" and script.exists() else None
    if head is None:
        head = [sys.executable] if argv[0] == "python" else [sys.executable, "-m", "relay"]
    exposed = only("EXPOSE")
    return head + [arg.replace(exposed, str(port)) for arg in argv[1:]]


class Container:
    """The entrypoint run with the image's environment, its config copied to a temporary root."""

    def __init__(self, root: Path, secret: str | None) -> None:
        self.data = root / volume().lstrip("/")
        self.data.mkdir(parents=True)
        config_path = root / env()["RELAY_CONFIG"].lstrip("/")
        config_path.parent.mkdir(parents=True)
        config_text = (ROOT / "config" / "docker.yaml").read_text()
        config_path.write_text(config_text.replace(volume(), str(self.data)))
        variables = {**os.environ, **env(), "RELAY_CONFIG": str(config_path)}
        variables.pop("MOSAIC_WEBHOOK_SECRET", None)
        if secret is not None:
            variables["MOSAIC_WEBHOOK_SECRET"] = secret
        self.port = free_port()
        self.stderr = root / "stderr.log"
        self.proc = subprocess.Popen(
            local(command(), self.port),
            env=variables,
            cwd=self.data,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr.open("w"),
        )

    def wait_listening(self) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://\S+)", self.stderr.read_text())
            if found:
                return found.group(1)
            assert self.proc.poll() is None, self.stderr.read_text()
            time.sleep(0.02)
        raise AssertionError("the relay did not start in time")

    def healthcheck(self) -> int:
        options, probe = healthcheck()
        timeout = float(re.search(r"--timeout=(\d+)s", options).group(1))  # type: ignore[union-attr]
        done = subprocess.run(local(probe, self.port), capture_output=True, timeout=timeout)
        return done.returncode

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # what `docker stop` sends
        return self.proc.wait(timeout=20)


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    running = Container(tmp_path, SECRET)
    try:
        yield running
    finally:
        running.stop()


def test_the_entrypoint_serves_and_the_healthcheck_passes(container: Container) -> None:
    url = container.wait_listening()
    assert url.startswith(f"http://0.0.0.0:{container.port}/")
    assert container.healthcheck() == 0

    request = urllib.request.Request(
        url.replace("0.0.0.0", "127.0.0.1"),
        data=json.dumps(sample("run_finished_failed")).encode(),
        headers={"X-Mosaic-Signature": SECRET},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202
    deadline = time.monotonic() + 10
    while not read_jsonl(container.data / "deliveries.jsonl"):
        assert time.monotonic() < deadline, "nothing delivered"
        time.sleep(0.02)
    assert (container.data / "relay.db").exists()

    assert container.stop() == 0
    assert container.healthcheck() != 0  # and the probe does fail when nothing answers


def test_the_image_refuses_to_start_without_a_webhook_secret(tmp_path: Path) -> None:
    refused = Container(tmp_path, secret=None)
    assert refused.proc.wait(timeout=20) == 1
    assert "MOSAIC_WEBHOOK_SECRET is not set" in refused.stderr.read_text()
