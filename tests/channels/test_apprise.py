"""The Apprise channel against local JSON and form targets (Apprise's ``json://``, ``form://``):
settings checked by Apprise at load, one destination per URL, plain text kept as text, failures
retryable, and no part of a URL in reasons, reprs, rate keys or logs."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError

from relay.channels import REGISTRY, PermanentError, RetryableError
from relay.channels.apprise import AppriseChannel, title_and_body
from relay.channels.apprise_parts import scheme_of, secret_parts
from relay.channels.apprise_settings import AppriseSettings
from relay.channels.base import Message, VerifyError
from relay.cli import main
from relay.config import ConfigError, load_config
from relay.routing import Router
from relay.runtime import Runtime

HOSTILE = "<b>x</b> *y* @everyone [a](http://e.example) &amp; `z` _w_ \\n"
PASSWORD = "SECRETPASS-7q2"
TOKEN = "tok3n-9v8w"


@dataclass
class Target:
    """A local HTTP server standing in for an Apprise JSON/form target: records what each path
    got and answers ``status[path]`` (200 by default)."""

    port: int = 0
    received: list[tuple[str, str, bytes]] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((request.path, request.content_type, body))
        return web.Response(status=self.status.get(request.path, 200), text="answer")

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(body) for got, _, body in self.received if got == path]

    def url(self, scheme: str, path: str, credentials: str = "") -> str:
        return f"{scheme}://{credentials}127.0.0.1:{self.port}{path}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    peer = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", peer.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    peer.port = runner.addresses[0][1]
    yield peer
    await runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def channel_for(url: str, **settings: Any) -> AppriseChannel:
    parsed = AppriseSettings.model_validate({"type": "apprise", "urls": [url], **settings})
    return AppriseChannel("team#1", parsed, Path("."))


MESSAGE = Message(text=f"Run failed: {HOSTILE}", subject="Run failed", status="failed")


# --- settings ----------------------------------------------------------------------------------


def test_each_url_is_a_secret_destination_of_its_own() -> None:
    settings = AppriseSettings.model_validate(
        {
            "type": "apprise",
            "urls": ["ntfy://my-topic-x1", f"json://u:{PASSWORD}@127.0.0.1:9/h"],
            "template": "short",
            "rate_limit": {"per_second": 2, "burst": 3},
        }
    )
    assert PASSWORD not in repr(settings) + settings.model_dump_json()
    destinations = settings.destinations("team")
    assert [name for name, _ in destinations] == ["team#1", "team#2"]
    for (_, one), url in zip(destinations, settings.urls, strict=True):
        assert isinstance(one, AppriseSettings)
        assert one.urls == [url]
        assert one.template == "short" and one.rate_limit == settings.rate_limit
    assert settings.schemes() == ["ntfy", "json"]


def test_another_channel_type_is_its_own_only_destination() -> None:
    settings = REGISTRY["console"].settings.model_validate({"type": "console"})
    assert settings.destinations("stdout") == [("stdout", settings)]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            f"nosuchscheme://user:{PASSWORD}@host/{TOKEN}",
            "unknown Apprise scheme 'nosuchscheme://'",
        ),
        (f"{PASSWORD} {TOKEN}", "is not an Apprise URL"),
        (f"pover://{TOKEN}", "Apprise cannot use this pover:// URL"),
        (f"json://{PASSWORD}@", "Apprise cannot use this json:// URL"),
        ("  ", "is empty"),
    ],
)
def test_a_url_apprise_cannot_use_is_a_config_error_naming_its_index(
    tmp_path: Path, url: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "relay.yaml"
    config = {
        "auth": {"allow_unsigned": True},
        "channels": {"team": {"type": "apprise", "urls": ["ntfy://fine-topic", url]}},
        "routes": [{"to": ["team"]}],
    }
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError) as failed:
        load_config(path, env={})
    [issue] = failed.value.issues
    assert issue.where == "channels.team.urls[1]"
    assert problem in issue.message
    shown = "\n".join(i.format("relay.yaml") for i in failed.value.issues) + caplog.text
    for secret in (PASSWORD, TOKEN):
        assert secret not in shown


def test_a_channel_needs_at_least_one_url() -> None:
    with pytest.raises(ValidationError):
        AppriseSettings.model_validate({"type": "apprise", "urls": []})


def test_the_secret_parts_of_a_url_are_each_part_that_may_hold_a_secret() -> None:
    url = f"matrix://bot:{PASSWORD}@matrix.example.org:8448/%23room-x/{TOKEN}?token=qs-s3cret#frag1"
    parts = secret_parts(url)
    for part in (
        url,
        "bot",
        PASSWORD,
        "matrix.example.org",
        "#room-x",
        TOKEN,
        "qs-s3cret",
        "frag1",
    ):
        assert part in parts
    assert "8448" not in parts  # a port is not a secret, and would mask every such number
    assert scheme_of(url) == "matrix" and scheme_of("no scheme here") is None


# --- the relay's view: destinations, routes, settings lookups ----------------------------------


def test_a_route_to_an_apprise_channel_reaches_each_of_its_urls(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    config = {
        "auth": {"allow_unsigned": True},
        "channels": {
            "team": {"type": "apprise", "urls": ["ntfy://topic-one", "ntfy://topic-two"]},
            "archive": {"type": "file", "path": "out.jsonl"},
        },
        "routes": [{"to": ["team", "archive", "team"]}],
    }
    path.write_text(json.dumps(config))
    loaded = load_config(path, env={})
    router = Router.from_config(loaded.config)
    assert router.routes[0].channels == ("team#1", "team#2", "archive")

    runtime = Runtime.build(loaded)
    assert sorted(runtime.channels) == ["archive", "team#1", "team#2"]
    assert runtime.settings_of("team#2") is loaded.config.channels["team"]
    assert runtime.settings_of("archive") is loaded.config.channels["archive"]
    assert runtime.settings_of("gone") is None
    assert runtime.destinations_of("team") == ["team#1", "team#2"]
    assert runtime.destinations_of("team#2") == ["team#2"]
    assert runtime.destinations_of("archive") == ["archive"]
    assert runtime.destinations_of("nothing") == []
    assert runtime.rate_limits["team#1"] == AppriseChannel.default_rate_limit
    assert runtime.channels["team#1"].rate_key != runtime.channels["team#2"].rate_key


def test_a_channel_named_like_a_destination_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    config = {
        "auth": {"allow_unsigned": True},
        "channels": {
            "team": {"type": "apprise", "urls": ["ntfy://topic-one"]},
            "team#1": {"type": "console"},
        },
        "routes": [{"to": ["team", "team#1"]}],
    }
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="channel name 'team#1' cannot contain '#'"):
        load_config(path, env={})


# --- sending -----------------------------------------------------------------------------------


async def test_a_json_target_gets_the_text_once_as_plain_text(target: Target) -> None:
    channel = channel_for(target.url("json", "/hook"))
    assert await channel.send(MESSAGE) is None
    [body] = target.bodies("/hook")
    assert body["title"] == "Run failed"
    assert body["message"] == MESSAGE.text  # untouched: no markup interpreted or escaped
    assert body["type"] == "failure"


@pytest.mark.parametrize(
    ("text", "subject", "expected"),
    [
        ("Run failed\nWhy: x", "Run failed", ("Run failed", "Why: x")),
        ("Run failed: x", "Run failed", ("Run failed", "Run failed: x")),
        ("Run failed\n", "Run failed", ("Run failed", "Run failed\n")),
        ("Just text", None, ("", "Just text")),
    ],
)
def test_the_title_is_not_repeated_as_the_first_line_of_the_body(
    text: str, subject: str | None, expected: tuple[str, str]
) -> None:
    assert title_and_body(Message(text=text, subject=subject)) == expected


async def test_a_form_target_gets_the_text_as_form_fields(target: Target) -> None:
    channel = channel_for(target.url("form", "/form"))
    await channel.send(MESSAGE)
    [(path, content_type, raw)] = target.received
    assert (path, content_type) == ("/form", "application/x-www-form-urlencoded")
    fields = urllib.parse.parse_qs(raw.decode())
    assert fields["title"] == ["Run failed"] and fields["message"] == [MESSAGE.text]


async def test_a_failing_target_is_retryable_and_names_only_the_scheme(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")  # scrubbing must hold even at DEBUG
    target.status["/x/" + TOKEN] = 500
    url = target.url("json", f"/x/{TOKEN}?secret={TOKEN}-q", credentials=f"user:{PASSWORD}@")
    channel = channel_for(url)
    with pytest.raises(RetryableError) as failed:
        await channel.send(MESSAGE)
    assert failed.value.reason == "apprise json:// target failed"
    assert not failed.value.rate_limited and failed.value.__cause__ is None
    assert len(target.received) == 1  # Apprise's own retries are off: the relay retries
    assert "apprise" in {record.name for record in caplog.records}  # it did log, scrubbed
    exposed = [caplog.text, str(failed.value), repr(channel), channel.rate_key]
    for secret in (PASSWORD, TOKEN, url):
        for text in exposed:
            assert secret not in text


async def test_an_unreachable_target_is_retryable() -> None:
    channel = channel_for(f"json://127.0.0.1:{free_port()}/down")
    with pytest.raises(RetryableError, match=r"^apprise json:// target failed$"):
        await channel.send(MESSAGE)


async def test_a_url_apprise_cannot_use_at_run_time_is_permanent() -> None:
    # Settings from a config checked elsewhere (model_construct skips the check).
    settings = AppriseSettings.model_construct(
        type="apprise", urls=[SecretStr(f"pover://{TOKEN}")], timeout=5.0
    )
    channel = AppriseChannel("team#1", settings, Path("."))
    with pytest.raises(PermanentError) as refused:
        await channel.send(MESSAGE)
    assert TOKEN not in refused.value.reason
    with pytest.raises(VerifyError):
        await channel.verify()


def test_an_apprise_channel_is_built_for_one_url() -> None:
    settings = AppriseSettings.model_validate(
        {"type": "apprise", "urls": ["ntfy://topic-one", "ntfy://topic-two"]}
    )
    with pytest.raises(ValueError, match="one URL"):
        AppriseChannel("team", settings, Path("."))


# --- verify ------------------------------------------------------------------------------------


async def test_verify_connects_to_a_json_target_without_posting(target: Target) -> None:
    channel = channel_for(target.url("json", f"/x/{TOKEN}"))
    detail = await channel.verify()
    assert detail == f"127.0.0.1:{target.port} answers"
    assert target.received == []


async def test_verify_names_a_json_target_that_does_not_answer() -> None:
    channel = channel_for(f"json://127.0.0.1:{free_port()}/x/{TOKEN}")
    with pytest.raises(VerifyError) as failed:
        await channel.verify()
    assert "cannot connect to 127.0.0.1" in failed.value.reason
    assert TOKEN not in failed.value.reason


async def test_verify_of_another_service_only_parses_its_url() -> None:
    channel = channel_for("ntfy://some-private-topic")
    detail = await channel.verify()
    assert "accepted by Apprise" in detail and "some-private-topic" not in detail


# --- imports -----------------------------------------------------------------------------------

PROBE = """
import json, sys
from relay.cli import load
from relay.runtime import Runtime
loaded = load(sys.argv[1])
checked = "apprise" in sys.modules
Runtime.build(loaded)
print(json.dumps([checked, "apprise" in sys.modules]))
"""


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ({"type": "console"}, [False, False]),
        ({"type": "apprise", "urls": ["ntfy://topic-one"]}, [True, True]),
    ],
)
def test_apprise_is_loaded_only_by_a_config_that_uses_it(
    tmp_path: Path, channel: dict[str, Any], expected: list[bool]
) -> None:
    path = tmp_path / "relay.yaml"
    config = {
        "auth": {"allow_unsigned": True},
        "channels": {"one": channel},
        "routes": [{"to": ["one"]}],
    }
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == expected


# --- the command line: relay test, relay check --online ----------------------------------------


def cli_config(tmp_path: Path, urls: list[str]) -> str:
    path = tmp_path / "relay.yaml"
    config = {
        "auth": {"allow_unsigned": True},
        "channels": {"team": {"type": "apprise", "urls": urls}},
        "routes": [{"to": ["team"]}],
    }
    path.write_text(json.dumps(config))
    return str(path)


async def test_relay_test_sends_to_each_url_of_the_channel(
    tmp_path: Path, target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"json://127.0.0.1:{free_port()}/down/{TOKEN}"
    config = cli_config(tmp_path, [target.url("json", "/one"), target.url("json", "/two"), down])
    code = await asyncio.to_thread(main, ["test", "-c", config, "team"])
    out = capsys.readouterr().out
    assert code == 1, "one URL failed"
    assert out.splitlines() == [
        "team#1 (apprise): sent",
        "team#2 (apprise): sent",
        "team#3 (apprise): FAILED: apprise json:// target failed",
    ]
    assert [path for path, _, _ in target.received] == ["/one", "/two"]
    assert target.bodies("/one")[0]["title"].startswith("[relay test]")

    assert await asyncio.to_thread(main, ["test", "-c", config, "team#2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["team#2 (apprise): sent"]
    assert [path for path, _, _ in target.received] == ["/one", "/two", "/two"]


async def test_relay_check_online_checks_each_url(
    tmp_path: Path, target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"json://127.0.0.1:{free_port()}/down/{TOKEN}"
    config = cli_config(tmp_path, [target.url("json", "/one"), "ntfy://private-topic-q", down])
    code = await asyncio.to_thread(main, ["check", "--online", "-c", config])
    out = capsys.readouterr().out
    assert code == 1
    assert "    - team (apprise): team#1, team#2, team#3" in out
    assert f"team#1 (apprise): ok (127.0.0.1:{target.port} answers)" in out
    assert "team#2 (apprise): ok (ntfy URL accepted by Apprise; not contacted)" in out
    assert "team#3 (apprise): FAILED: cannot connect to 127.0.0.1" in out
    assert TOKEN not in out and "private-topic-q" not in out
    assert target.received == []
