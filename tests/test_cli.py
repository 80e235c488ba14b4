"""`relay check`, `relay schema`, `relay route-test` and `relay send-sample`."""

from __future__ import annotations

import asyncio
import json
import operator
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay.channels import REGISTRY
from relay.cli import config_schema, main
from relay.config import RelayConfig
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SAMPLES, sample_names

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "config" / "relay.schema.json"
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- check ---------------------------------------------------------------------------------------

SLACK_CONFIG = """\
server: {admin_token: "${ADMIN_TOKEN_FOR_TESTS}"}
auth:
  secrets: ["${WEBHOOK_SECRET_FOR_TESTS}"]
channels:
  team-slack:
    type: slack
    token: xoxb-very-secret-token
    channel: "#alerts"
  archive: {type: file}
routes:
  - name: failed
    match: {flag: RUN_FINISHED, status: failed}
    to: [team-slack, archive]
    template: short
    stop: true
  - to: [archive]
    mode: card
templates:
  short: {text: "{{ title }}"}
"""


def test_check_prints_a_summary(
    write_config: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET_FOR_TESTS", "whsec-1")
    monkeypatch.delenv("ADMIN_TOKEN_FOR_TESTS", raising=False)
    path = write_config(SLACK_CONFIG)
    code, out, err = run(capsys, "check", "-c", str(path))
    assert code == 0 and err == ""
    assert out.startswith("relay.yaml: OK (sha256 ")
    assert "  channels (2):\n    - team-slack (slack)\n    - archive (file)\n" in out
    assert "    - failed -> team-slack, archive, template short, stop\n" in out
    assert "    - routes[1] -> archive, mode card\n" in out
    assert "  templates: short\n" in out
    assert "  admin endpoints: off" in out
    assert out.rstrip().endswith("unset environment variables: ADMIN_TOKEN_FOR_TESTS")
    assert "xoxb-very-secret-token" not in out and "whsec-1" not in out


def test_check_reads_relay_config_from_the_environment(
    write_config: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAY_CONFIG", str(write_config(BASE_CONFIG)))
    code, out, _ = run(capsys, "check")
    assert code == 0 and "archive (file)" in out


def test_check_prints_every_error_with_its_line_in_file_order(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = """\
auth:
  secrets: [x]
delivery:
  lease: 5q
channels:
  a:
    type: slak
  b:
    type: file
    pathh: x.jsonl
routes:
  - to: [b]
    match: {trigger: yt}
"""
    code, out, err = run(capsys, "check", "-c", str(write_config(text)))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "relay.yaml:4: delivery.lease: not a duration: '5q' "
        "(use seconds or e.g. '500ms', '1s', '5m', '24h', '7d')",
        f"relay.yaml:7: channels.a.type: unknown channel type (one of: {', '.join(REGISTRY)})",
        "relay.yaml:10: channels.b.pathh: unknown key (check the spelling)",
        "relay.yaml:13: routes[0].match.trigger: unknown trigger 'yt' "
        "(one of: youtube, schedule, manual, none; or {unknown: yt} for a trigger the relay "
        "does not know yet)",
        "relay: relay.yaml: 4 error(s)",
    ]


def test_check_names_an_unset_environment_variable(
    write_config: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET_FOR_TESTS", raising=False)
    path = write_config(SLACK_CONFIG)
    code, _, err = run(capsys, "check", "-c", str(path))
    assert code == 1
    assert "relay.yaml:3: auth.secrets: no webhook secret configured" in err
    assert "(environment variable WEBHOOK_SECRET_FOR_TESTS is not set)" in err


def test_check_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "-c", str(tmp_path / "nope.yaml"))
    assert code == 1 and out == ""
    assert "nope.yaml: cannot read: No such file or directory" in err


def test_check_reports_schema_and_reference_errors_together(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE_CONFIG.replace("  workers: 4", "  wrokers: 4").replace(
        "    to: [archive]\n  - name: tests", "    to: [archiv]\n  - name: tests"
    )
    code, _, err = run(capsys, "check", "-c", str(write_config(text)))
    assert code == 1
    assert "delivery.wrokers: unknown key" in err
    assert "unknown channel 'archiv'" in err


TEN_MISTAKES = """\
auth:
  secrets: ["${SECRET_FOR_TESTS}"]
delivery:
  lease: 5q
agents:
  123e4567-e89b-12d3-a456-789012345678: Shorts cutter
channels:
  slack:
    type: slack
    token: ${SLACK_TOKEN_FOR_TESTS}
    channel: "#alerts"
  tg:
    type: telegram
    token: ${TELEGRAM_TOKEN_FOR_TESTS}
    chat_id: "-100123"
    colour: red
routes:
  - match: {flag: RUN_FINSHED, status: [failed, partial_completed]}
    to: [slack]
  - match: {agent: Shorts cuter, trigger: yotube}
    to: [slak, tg]
"""


def test_check_prints_ten_mixed_mistakes_in_one_run(
    write_config: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SECRET_FOR_TESTS", "SLACK_TOKEN_FOR_TESTS", "TELEGRAM_TOKEN_FOR_TESTS"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run(capsys, "check", "-c", str(write_config(TEN_MISTAKES)))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "relay.yaml:2: auth.secrets: no webhook secret configured; set one, or set "
        "auth.allow_unsigned: true to accept unsigned webhooks "
        "(environment variable SECRET_FOR_TESTS is not set)",
        "relay.yaml:4: delivery.lease: not a duration: '5q' "
        "(use seconds or e.g. '500ms', '1s', '5m', '24h', '7d')",
        "relay.yaml:8: channels.slack: set exactly one of 'token' (Web API: posts, edits, "
        "threads) or 'webhook_url' (incoming webhook: posts only) "
        "(environment variable SLACK_TOKEN_FOR_TESTS is not set)",
        "relay.yaml:14: channels.tg.token: Input should be a valid string "
        "(environment variable TELEGRAM_TOKEN_FOR_TESTS is not set)",
        "relay.yaml:16: channels.tg.colour: unknown key (check the spelling)",
        "relay.yaml:18: routes[0].match.flag: unknown flag 'RUN_FINSHED' "
        "(did you mean 'RUN_FINISHED'?)",
        "relay.yaml:18: routes[0].match.status: unknown status 'partial_completed' "
        "(did you mean 'partial_complete'?)",
        "relay.yaml:20: routes[1].match.agent: unknown agent 'Shorts cuter' "
        "(did you mean 'Shorts cutter'?)",
        "relay.yaml:20: routes[1].match.trigger: unknown trigger 'yotube' "
        "(did you mean 'youtube'?)",
        "relay.yaml:21: routes[1].to: unknown channel 'slak' (did you mean 'slack'?)",
        "relay: relay.yaml: 10 error(s)",
    ]


def test_check_prints_warnings_with_their_lines_and_succeeds(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE_CONFIG.replace(
        "    path: deliveries.jsonl\n", "    path: deliveries.jsonl\n  spare: {type: console}\n"
    ).replace(
        "  - name: all\n    to: [archive]\n",
        "  - name: all\n    to: [archive]\n"
        "  - name: started-failures\n    match: {flag: RUN_STARTED, status: failed}\n"
        "    to: [archive]\n",
    )
    code, out, err = run(capsys, "check", "-c", str(write_config(text)))
    assert code == 0 and out.startswith("relay.yaml: OK")
    assert err.splitlines() == [
        "relay.yaml:18: warning: channels.spare: channel 'spare' is not used by any route",
        "relay.yaml:23: warning: routes[1].match: can never match: RUN_STARTED events carry "
        "status running",
        "relay: relay.yaml: 2 warning(s)",
    ]


# --- schema --------------------------------------------------------------------------------------


def test_the_committed_schema_is_the_models(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out) == config_schema()
    assert SCHEMA_FILE.read_text() == out, (
        "config/relay.schema.json is stale: regenerate it with `relay schema > "
        "config/relay.schema.json`"
    )
    assert set(config_schema()["properties"]) == set(RelayConfig.model_fields)


def yaml_files() -> list[Path]:
    return [ROOT / "relay.yaml.example", *sorted((ROOT / "config").glob("*.yaml"))]


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.name)
def test_yaml_files_name_the_schema_for_editors(path: Path) -> None:
    found = MODELINE.match(path.read_text().splitlines()[0])
    assert found, "the first line must be the yaml-language-server modeline"
    assert (path.parent / found.group(1)).resolve() == SCHEMA_FILE


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.name)
def test_yaml_files_are_valid_for_an_editor(path: Path) -> None:
    """What an editor sees: the raw YAML, ``${VAR}`` not interpolated, durations as typed."""
    assert validate(yaml.safe_load(path.read_text()), schema()) == []


@pytest.mark.parametrize(
    ("snippet", "valid"),
    [
        ({"delivery": {"lease": "5m", "max_age": 3600, "backoff": {"initial": "500ms"}}}, True),
        ({"delivery": {"lease": "5 minutes"}}, False),
        ({"delivery": {"lease": -1}}, False),
        ({"delivery": {"wrokers": 3}}, False),
        ({"routes": [{"to": "a", "match": {"flag": "TEST", "status": ["running"]}}]}, True),
        ({"routes": [{"to": "a", "match": {"flag": "RUN_FINSHED"}}]}, False),
        ({"routes": [{"to": "a", "match": {"status": ["failed", "partial_completed"]}}]}, False),
        ({"routes": [{"to": "a", "match": {"flag": {"unknown": "RUN_STALE"}}}]}, True),
        (
            {
                "routes": [
                    {"to": "a", "match": {"flag": ["RUN_FINISHED", {"unknown": "RUN_STALE"}]}}
                ]
            },
            True,
        ),
        ({"routes": [{"to": "a", "match": {"flag": {"unknwn": "RUN_STALE"}}}]}, False),
        ({"routes": [{"to": "a", "not": {"trigger": "yotube"}}]}, False),
        ({"routes": [{"to": "a", "match": {"youtube_channel": "UCuAXFkgsw1L7xaCfnd5JJOw"}}]}, True),
        ({"routes": [{"to": "a", "match": {"youtube_channel": "@handle"}}]}, False),
        ({"routes": [{"to": "a", "match": {"agent": ["Shorts cutter"]}}]}, True),
        ({"routes": [{"to": []}]}, False),
        ({"routes": [{"to": ["a"], "mode": "cards"}]}, False),
        ({"routes": [{"to": ["a"], "not": {"agent": "x"}, "card_interval": "2s"}]}, True),
        ({"channels": {"a": {"type": "slak"}}}, False),
        ({"channels": {"a": {"type": "file", "pathh": "x"}}}, False),
        ({"channels": {"a": {"type": "email", "host": "h", "from": "f", "to": ["t"]}}}, True),
        ({"channels": {"a": {"type": "file", "rate_limit": "off"}}}, True),
        ({"channels": {"a": {"type": "file", "rate_limit": {"per_second": 2}}}}, True),
    ],
)
def test_the_schema_accepts_what_the_relay_accepts(snippet: dict[str, Any], valid: bool) -> None:
    assert (validate(snippet, schema()) == []) is valid


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


_IGNORED = {"title", "description", "default", "format", "writeOnly", "discriminator", "$schema"}
_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": operator.ge,
    "exclusiveMinimum": operator.gt,
    "maximum": operator.le,
}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(value: Any, node: dict[str, Any], root: dict[str, Any] | None = None) -> list[str]:
    """The JSON Schema keywords the committed schema uses; an unknown keyword fails loudly."""
    root = root or node
    errors: list[str] = []
    for keyword, arg in node.items():
        if keyword in _IGNORED or keyword == "$defs":
            continue
        if keyword == "$ref":
            errors += validate(value, root["$defs"][arg.removeprefix("#/$defs/")], root)
        elif keyword == "type":
            errors += [] if _TYPES[arg](value) else [f"{value!r} is not {arg}"]
        elif keyword == "anyOf":
            if all(validate(value, option, root) for option in arg):
                errors.append(f"{value!r} matches no option")
        elif keyword == "oneOf":
            if sum(not validate(value, option, root) for option in arg) != 1:
                errors.append(f"{value!r} does not match exactly one option")
        elif keyword == "const":
            errors += [] if value == arg else [f"{value!r} != {arg!r}"]
        elif keyword == "enum":
            errors += [] if value in arg else [f"{value!r} not in {arg}"]
        elif keyword == "pattern":
            errors += [] if not isinstance(value, str) or re.search(arg, value) else [value]
        elif keyword in _BOUNDS:
            if _TYPES["number"](value) and not _BOUNDS[keyword](value, arg):
                errors.append(f"{value!r} out of range ({keyword} {arg})")
        elif keyword == "minLength":
            errors += [] if not isinstance(value, str) or len(value) >= arg else ["too short"]
        elif keyword == "minItems":
            errors += [] if not isinstance(value, list) or len(value) >= arg else ["too few"]
        elif keyword == "required":
            if isinstance(value, dict):
                errors += [f"missing {name}" for name in arg if name not in value]
        elif keyword == "items":
            for item in value if isinstance(value, list) else []:
                errors += validate(item, arg, root)
        elif keyword in ("properties", "additionalProperties"):
            if keyword == "properties" or "properties" not in node:  # checked once per object
                errors += _object(value, node, root)
        else:
            raise AssertionError(f"the test validator does not know {keyword!r}")
    return errors


def _object(value: Any, node: dict[str, Any], root: dict[str, Any]) -> list[str]:
    if not isinstance(value, dict):
        return []
    errors: list[str] = []
    properties = node.get("properties", {})
    extra = node.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            errors += validate(item, properties[name], root)
        elif extra is False:
            errors.append(f"unknown key {name!r}")
        elif isinstance(extra, dict):
            errors += validate(item, extra, root)
    return errors


# --- route-test ----------------------------------------------------------------------------------


def test_route_test_shows_routes_channels_and_messages(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(BASE_CONFIG)
    event = SAMPLES / "run_finished_failed.json"
    code, out, _ = run(capsys, "route-test", str(event), "-c", str(path))
    assert code == 0
    assert out.startswith("event: RUN_FINISHED failed run c2d9e8f7-6a5b-4c3d-2e1f-0a9b8c7d6e5f\n")
    assert "-> archive (route all, template default)" in out
    assert "Render node ran out of credits" in out
    assert not (path.parent / "deliveries.jsonl").exists()  # sends nothing
    assert not (path.parent / "relay.db").exists()  # nor touches the store


def test_route_test_json(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(BASE_CONFIG)
    code, out, _ = run(capsys, "route-test", str(SAMPLES / "test.json"), "--json", "-c", str(path))
    assert code == 0
    result = json.loads(out)
    assert result["event"]["flag"] == "TEST"
    (delivery,) = result["deliveries"]
    assert delivery["route"] == "tests" and delivery["channel"] == "archive"
    assert delivery["type"] == "file" and delivery["text"].strip()


def test_route_test_says_when_a_held_event_goes_out(
    write_config: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = BASE_CONFIG.replace(
        "  - name: all\n    to: [archive]\n",
        "  - name: all\n    to: [archive]\n    mode: digest\n"
        '    digest: {schedule: "0 9 * * *", timezone: Europe/Berlin}\n',
    )
    path = write_config(held)
    monkeypatch.setattr("relay.dryrun.time.time", lambda: 1_796_000_000.0)  # Mon 01:53 CET
    event = str(SAMPLES / "run_finished_failed.json")
    code, out, _ = run(capsys, "route-test", event, "-c", str(path))
    assert code == 0
    assert "-> archive (route all, template default) → digest at Mon 30 Nov 09:00 CET" in out
    assert "📋 all: 1 run" in out and "Render node ran out of credits" not in out

    quiet = BASE_CONFIG.replace(
        "    path: deliveries.jsonl\n",
        '    path: deliveries.jsonl\n    quiet_hours: {from: "22:00", to: "08:00"}\n',
    )
    path = write_config(quiet)
    monkeypatch.setattr("relay.dryrun.time.time", lambda: 1_795_986_000.0)  # Sun 21:00 UTC
    code, out, _ = run(capsys, "route-test", event, "-c", str(path))
    assert "-> archive (route all, template default)\n" in out  # not quiet yet
    monkeypatch.setattr("relay.dryrun.time.time", lambda: 1_795_993_200.0)  # Sun 23:00 UTC
    code, out, _ = run(capsys, "route-test", event, "-c", str(path))
    assert "→ after the quiet hours at Mon 30 Nov 08:00 UTC" in out
    assert "🌙 Quiet hours: 1 run held" in out


def test_route_test_when_nothing_matches(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    only_tests = BASE_CONFIG.replace("  - name: all\n    to: [archive]\n", "")
    path = write_config(only_tests)
    code, out, _ = run(capsys, "route-test", str(SAMPLES / "run_progress.json"), "-c", str(path))
    assert code == 0 and "no route matches: nothing would be sent" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b'{"flag": "RUN_FINISHED"}', "not a Mosaic event: agent_id: Field required"),
        (None, "cannot read"),
    ],
)
def test_route_test_refuses_a_bad_event(
    write_config: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: bytes | None,
    message: str,
) -> None:
    path = write_config(BASE_CONFIG)
    event = tmp_path / "event.json"
    if content is not None:
        event.write_bytes(content)
    code, out, err = run(capsys, "route-test", str(event), "-c", str(path))
    assert code == 1 and out == ""
    assert err.startswith("relay: ") and message in err


# --- send-sample ---------------------------------------------------------------------------------


async def receiver(
    aiohttp_server: Callable[..., Awaitable[TestServer]], status: int = 202
) -> tuple[TestServer, list[tuple[str, dict[str, str], bytes]]]:
    got: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((request.path, dict(request.headers), await request.read()))
        return web.json_response({"status": "accepted", "event_id": "e"}, status=status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    return await aiohttp_server(app), got


async def test_send_sample_uses_the_configs_address_and_first_secret(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    write_config: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, got = await receiver(aiohttp_server)
    config = BASE_CONFIG.replace(
        'secrets: ["s3cret-for-tests"]', 'secrets: ["first-one", "second-one"]'
    )
    config += f"server: {{host: 0.0.0.0, port: {server.port}, path: /hooks/in}}\n"
    path = write_config(config)
    code = await asyncio.to_thread(main, ["send-sample", "run_progress", "-c", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out == 'run_progress: 202 {"status": "accepted", "event_id": "e"}\n'
    ((where, headers, body),) = got
    assert where == "/hooks/in"
    assert headers[SIGNATURE_HEADER] == "first-one"
    assert json.loads(body) == json.loads((SAMPLES / "run_progress.json").read_text())


async def test_send_sample_all_with_url_and_secret(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, got = await receiver(aiohttp_server)
    url = str(server.make_url("/webhooks/mosaic"))
    missing_config = str(tmp_path / "none.yaml")  # not needed with --url and --secret
    argv = ["send-sample", "all", "--url", url, "--secret", "given", "-c", missing_config]
    code = await asyncio.to_thread(main, argv)
    assert code == 0
    assert len(got) == len(sample_names())
    assert {headers[SIGNATURE_HEADER] for _, headers, _ in got} == {"given"}
    printed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert printed == sample_names()


async def test_send_sample_fails_on_a_refusal_or_an_unknown_sample(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _ = await receiver(aiohttp_server, status=401)
    url = str(server.make_url("/"))
    assert (
        await asyncio.to_thread(main, ["send-sample", "test", "--url", url, "--secret", "x"]) == 1
    )
    assert capsys.readouterr().out.startswith("test: 401 ")
    argv = ["send-sample", "nope", "--url", url, "--secret", "x"]
    assert await asyncio.to_thread(main, argv) == 1
    err = capsys.readouterr().err
    assert "unknown sample 'nope'" in err and "run_finished_failed" in err


async def test_send_sample_to_nothing(
    unused_tcp_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}/webhooks/mosaic"
    argv = ["send-sample", "test", "--url", url, "--secret", "x"]
    assert await asyncio.to_thread(main, argv) == 1
    assert "cannot reach" in capsys.readouterr().err
