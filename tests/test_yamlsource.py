"""``${file:PATH}`` secrets: read at every load, relative to the config, errors with their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, load_config
from relay.yamlsource import MAX_SECRET_FILE_BYTES, interpolate, load_yaml

CONFIG = """\
auth:
  secrets: ["${file:secrets/webhook}"]
channels:
  team:
    type: slack
    token: ${file:/run/none/slack-token}
    channel: "#alerts"
routes: [{to: [team]}]
"""


def resolve(text: str, base: Path, env: dict[str, str] | None = None) -> object:
    located = load_yaml(text)
    interpolate(located, env or {}, base)
    return located


def test_a_file_secret_is_its_text_without_the_final_line_end(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("xoxb-from-a-file\n")
    located = resolve(
        "token: ${file:token}\nboth: a-${file:token}-${NAME}\n", tmp_path, {"NAME": "n"}
    )
    assert located.data == {"token": "xoxb-from-a-file", "both": "a-xoxb-from-a-file-n"}  # type: ignore[attr-defined]


def test_a_files_text_is_never_interpolated_again(tmp_path: Path) -> None:
    (tmp_path / "odd").write_text("${HOME}${file:/etc/passwd}")
    located = resolve("value: ${file:odd}\n", tmp_path, {"HOME": "/root"})
    assert located.data == {"value": "${HOME}${file:/etc/passwd}"}  # type: ignore[attr-defined]


def test_unreadable_files_are_errors_with_their_lines(tmp_path: Path) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    with pytest.raises(ConfigError) as raised:
        load_config(config, env={})
    lines = [issue.format("relay.yaml") for issue in raised.value.issues]
    assert lines == [
        f"relay.yaml:2: auth.secrets[0]: secret file: cannot read {tmp_path}/secrets/webhook: "
        "No such file or directory",
        "relay.yaml:6: channels.team.token: secret file: cannot read /run/none/slack-token: "
        "No such file or directory",
    ]


def test_secrets_from_files_load_and_never_show_in_the_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "webhook").write_text("whsec-from-file\n")
    (tmp_path / "slack").write_text("xoxb-from-file")
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG.replace("/run/none/slack-token", str(tmp_path / "slack")))
    loaded = load_config(config, env={})
    assert loaded.config.auth.secrets[0].get_secret_value() == "whsec-from-file"
    assert "from-file" not in repr(loaded.config)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (MAX_SECRET_FILE_BYTES + 1))
    located = resolve("token: ${file:big}\n", tmp_path)
    assert located.data == {"token": None}  # type: ignore[attr-defined]
    assert "larger than" in located.file_errors[("token",)]  # type: ignore[attr-defined]
