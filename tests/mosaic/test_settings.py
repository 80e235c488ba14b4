"""The ``mosaic:`` section: optional, off without a key, every mistake with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, load_config
from tests.conftest import BASE_CONFIG


def load(tmp_path: Path, section: str, env: dict[str, str] | None = None) -> object:
    path = tmp_path / "relay.yaml"
    path.write_text(BASE_CONFIG + section)
    return load_config(path, env=env or {}).config.mosaic


def test_absent_or_without_a_key_the_api_is_off(tmp_path: Path) -> None:
    settings = load(tmp_path, "")
    assert not settings.api_enabled  # type: ignore[attr-defined]
    unset = load(tmp_path, "mosaic: {api_key: '${MOSAIC_API_KEY}'}\n")
    assert not unset.api_enabled  # type: ignore[attr-defined]


def test_a_full_section(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "mosaic:\n  api_key: ${MOSAIC_API_KEY}\n  api_url: http://127.0.0.1:9/\n"
        "  reconcile: {interval: 1m, lookback: 2h}\n  stale_after: off\n"
        "  run_url: https://edit.mosaic.so/agents/{agent_id}/runs/{run_id}\n",
        {"MOSAIC_API_KEY": "mk_live_123"},
    )
    assert settings.api_enabled  # type: ignore[attr-defined]
    assert settings.api_url == "http://127.0.0.1:9"  # type: ignore[attr-defined]
    assert settings.reconcile.interval == 60  # type: ignore[attr-defined]
    assert settings.stale_after == "off"  # type: ignore[attr-defined]
    assert "mk_live_123" not in repr(settings)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("mosaic: {api_key: sk_wrong}\n", "starts with 'mk_'"),
        ("mosaic: {run_url: 'https://x/{run}'}\n", "only {run_id} and {agent_id}"),
        ("mosaic: {run_url: 'ftp://x/{run_id}'}\n", "http(s) URL"),
        ("mosaic: {reconcile: sometimes}\n", "mosaic.reconcile"),
        ("mosaic: {stale_afer: 2h}\n", "unknown key"),
    ],
)
def test_mistakes_are_errors_with_their_line(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, section)
    text = str(raised.value)
    assert message in text and f"relay.yaml:{BASE_CONFIG.count(chr(10)) + 1}:" in text
