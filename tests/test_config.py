from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, load_config, parse_config
from relay.confmodel import RateLimit, parse_duration

GOOD = """\
auth:
  secrets: ["${SECRET_A}", "${SECRET_B:-fallback}", ""]
server:
  admin_token: ${ADMIN_TOKEN}
channels:
  team-slack:
    type: console
  archive:
    type: file
    path: out.jsonl
    rate_limit: off
  paced:
    type: console
    rate_limit: {per_second: 2, burst: 5}
routes:
  - name: failed
    match: {flag: RUN_FINISHED, status: [failed, partial_complete]}
    to: [team-slack]
  - to: archive
templates:
  youtube:
    text: "New video: {{ trigger.video_title }}"
"""


def issues_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "relay.yaml", env or {"S": "x"})
    return [issue.format("relay.yaml") for issue in caught.value.issues]


def test_good_config_with_env_interpolation() -> None:
    config, unset = parse_config(GOOD, env={"SECRET_A": "a"})
    assert [s.get_secret_value() for s in config.auth.secrets] == ["a", "fallback"]
    assert config.server.admin_token is None
    assert unset == ("ADMIN_TOKEN",)
    assert config.routes[1].to == ("archive",)
    assert config.channels["archive"].rate_limit == "off"
    assert config.channels["paced"].rate_limit == RateLimit(per_second=2, burst=5)
    assert config.channels["team-slack"].rate_limit is None


def test_env_value_cannot_inject_yaml() -> None:
    config, _ = parse_config(GOOD, env={"SECRET_A": "x\nallow_unsigned: true", "ADMIN_TOKEN": "t"})
    assert config.auth.secrets[0].get_secret_value() == "x\nallow_unsigned: true"
    assert config.auth.allow_unsigned is False
    assert config.server.admin_token is not None


def test_empty_default_env_value_uses_default() -> None:
    config, _ = parse_config(GOOD, env={"SECRET_A": "a", "SECRET_B": ""})
    assert config.auth.secrets[1].get_secret_value() == "fallback"


def test_unknown_channel_in_route_names_line_and_suggests() -> None:
    text = GOOD.replace("to: [team-slack]", "to: [tema-slack]")
    assert issues_of(text) == [
        "relay.yaml:18: routes[0].to: unknown channel 'tema-slack' (did you mean 'team-slack'?)"
    ]


def test_a_channel_name_cannot_take_the_mark_of_apprise_destinations() -> None:
    text = GOOD.replace("  archive:", "  archive#2:").replace("to: archive", "to: archive#2")
    assert issues_of(text) == [
        "relay.yaml:8: channels.archive#2: channel name 'archive#2' cannot contain '#' "
        "(it numbers an Apprise channel's URLs: NAME#1, NAME#2)"
    ]


def test_unknown_key_is_an_error_with_its_line() -> None:
    text = GOOD.replace("    path: out.jsonl", "    pth: out.jsonl")
    assert issues_of(text) == [
        "relay.yaml:10: channels.archive.pth: unknown key (check the spelling)"
    ]


def test_unknown_template_and_every_error_reported_at_once() -> None:
    text = GOOD.replace("  - to: archive", "  - to: archive\n    template: yotube\n    mode: cards")
    found = issues_of(text)
    assert any("relay.yaml:21: routes[1].mode:" in line for line in found)
    text = GOOD.replace("  - to: archive", "  - to: archive\n    template: yotube")
    assert issues_of(text) == [
        "relay.yaml:20: routes[1].template: unknown template 'yotube' (did you mean 'youtube'?)"
    ]


def test_unknown_channel_type_and_missing_type() -> None:
    text = GOOD.replace("type: console\n  archive", "type: slak\n  archive")
    assert issues_of(text)[0].startswith(
        "relay.yaml:7: channels.team-slack.type: unknown channel type"
    )
    text = GOOD.replace("    type: console\n  archive", "    template: youtube\n  archive")
    assert "missing 'type'" in issues_of(text)[0]


def test_no_secret_refuses_unless_unsigned_allowed() -> None:
    text = GOOD.replace('["${SECRET_A}", "${SECRET_B:-fallback}", ""]', '["${NOT_SET}"]')
    found = issues_of(text)
    assert len(found) == 1
    assert found[0].startswith("relay.yaml:2: auth.secrets: no webhook secret configured")
    assert "NOT_SET is not set" in found[0]
    config, _ = parse_config(text.replace("auth:\n", "auth:\n  allow_unsigned: true\n"), env={})
    assert config.auth.secrets == []


def test_required_value_from_unset_env_is_named() -> None:
    text = GOOD.replace("path: out.jsonl", "path: ${OUT_PATH}")
    found = issues_of(text)
    assert found == [
        "relay.yaml:10: channels.archive.path: Input should be a valid string "
        "(environment variable OUT_PATH is not set)"
    ]


def test_yaml_syntax_and_duplicate_keys() -> None:
    assert issues_of("server: [1\n")[0].startswith("relay.yaml:2: invalid YAML")
    assert issues_of("server: {}\nserver: {}\n") == ["relay.yaml:2: duplicate key 'server'"]
    assert issues_of("- a\n") == ["relay.yaml:1: the file must be a mapping of sections"]


def test_bad_values() -> None:
    found = issues_of(GOOD.replace("to: [team-slack]", "to: []"))
    assert found[0].startswith("relay.yaml:18: routes[0].to:")
    found = issues_of("auth: {allow_unsigned: true}\nstore: {retention: soon}\n")
    assert found[0].startswith("relay.yaml:2: store.retention: not a duration")
    found = issues_of(
        "auth: {allow_unsigned: true}\nroutes:\n  - to: x\n    match: {trigger: yt}\n"
    )
    assert any("routes[0].match.trigger: unknown trigger 'yt'" in line for line in found)


def test_every_check_reports_in_the_same_run() -> None:
    text = """\
auth:
  secrets: ["${SECRET_A}", "${SECRET_B}"]
delivery:
  lease: 5q
channels:
  hook:
    type: webhook
    url: ${HOOK_URL}
    body: "{{ text"
templates:
  short: {text: "{% if %}"}
"""
    found = issues_of(text, env={})
    assert [line.split(": ")[1] for line in found] == [
        "auth.secrets",
        "delivery.lease",
        "channels.hook.url",
        "channels.hook.body",
        "templates.short.text",
    ]
    assert found[0].endswith("(environment variables SECRET_A, SECRET_B are not set)")
    assert found[2].endswith("(environment variable HOOK_URL is not set)")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        ("500ms", 0.5),
        ("1s", 1.0),
        ("5m", 300.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
        ("1.5s", 1.5),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "5 years", -1, True, "1w"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_load_config_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(GOOD)
    loaded = load_config(path, env={"SECRET_A": "a"})
    assert loaded.base_dir == tmp_path.resolve()
    assert len(loaded.sha256) == 64
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "relay.yaml.example"
    loaded = load_config(example, env={})
    assert loaded.config.auth.secrets[0].get_secret_value() == "dev-secret"
    assert {"stdout", "archive"} <= set(loaded.config.channels)


def test_secrets_not_in_repr() -> None:
    config, _ = parse_config(GOOD, env={"SECRET_A": "very-secret-value", "ADMIN_TOKEN": "adm1n"})
    assert "very-secret-value" not in repr(config)
    assert "adm1n" not in str(config)
