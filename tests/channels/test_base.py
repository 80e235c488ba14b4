"""The one HTTP status table: every status class, and Retry-After handling; the one URL check."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from relay.channels import REGISTRY
from relay.channels.base import (
    PermanentError,
    RetryableError,
    classify_http_status,
    parse_retry_after,
)
from relay.channels.slack import SlackSettings
from relay.channels.telegram import TelegramSettings
from relay.channels.webhook import WebhookSettings


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_success(status: int) -> None:
    assert classify_http_status(status) is None


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_kind", "expected_wait"),
    [
        (429, "2", RetryableError, 2.0),
        (429, None, RetryableError, None),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", RetryableError, None),
        (500, None, RetryableError, None),
        (502, None, RetryableError, None),
        (503, "7", RetryableError, 7.0),
        (504, None, RetryableError, None),
        (599, None, RetryableError, None),
        (408, None, RetryableError, None),
        (425, None, RetryableError, None),
        (300, None, PermanentError, None),
        (301, None, PermanentError, None),
        (302, None, PermanentError, None),
        (400, None, PermanentError, None),
        (401, None, PermanentError, None),
        (403, None, PermanentError, None),
        (404, None, PermanentError, None),
        (410, None, PermanentError, None),
        (413, None, PermanentError, None),
        (422, None, PermanentError, None),
        (100, None, PermanentError, None),
    ],
)
def test_status_table(
    status: int, retry_after: str | None, expected_kind: type, expected_wait: float | None
) -> None:
    decided = classify_http_status(status, retry_after=retry_after, detail="example")
    assert type(decided) is expected_kind
    assert decided is not None
    assert str(status) in decided.reason and "example" in decided.reason
    if isinstance(decided, RetryableError):
        assert decided.retry_after == expected_wait
        assert decided.rate_limited is (status == 429)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (2, 2.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("999999999", 86_400.0),
    ],
)
def test_parse_retry_after(value: str | int | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


URL_FIELDS: list[tuple[type[Any], dict[str, Any], str]] = [
    (SlackSettings, {"type": "slack"}, "webhook_url"),
    (SlackSettings, {"type": "slack", "token": "xoxb-1", "channel": "#x"}, "api_url"),
    (TelegramSettings, {"type": "telegram", "token": "1:a", "chat_id": "1"}, "api_url"),
    (WebhookSettings, {"type": "webhook"}, "url"),
]


def _url_of(settings: Any, field: str) -> str:
    value = getattr(settings, field)
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


@pytest.mark.parametrize(("model", "base", "field"), URL_FIELDS)
@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/x", "https://", "not a url"])
def test_every_url_setting_takes_only_http_urls(
    model: type[Any], base: dict[str, Any], field: str, url: str
) -> None:
    with pytest.raises(ValidationError, match=r"must be an http\(s\) URL"):
        model.model_validate(base | {field: url})


@pytest.mark.parametrize(("model", "base", "field"), URL_FIELDS)
def test_every_url_setting_is_read_without_surrounding_blanks(
    model: type[Any], base: dict[str, Any], field: str
) -> None:
    settings = model.model_validate(base | {field: "  https://relay.example.com/a  "})
    assert _url_of(settings, field).rstrip("/") == "https://relay.example.com/a"


@pytest.mark.parametrize("channel_type", list(REGISTRY))
def test_a_channels_own_templates_are_text_settings_of_it(channel_type: str) -> None:
    settings = REGISTRY[channel_type].settings
    for name in settings.template_fields:
        assert settings.model_fields[name].annotation == str | None, name


def test_a_channel_hands_over_the_templates_it_declares_and_has() -> None:
    base = {"type": "webhook", "url": "https://hooks.example.com/x"}
    assert WebhookSettings.model_validate(base).templates() == {}
    with_body = WebhookSettings.model_validate(base | {"body": '{"t": {{ text | tojson }}}'})
    assert with_body.templates() == {"body": '{"t": {{ text | tojson }}}'}
    assert SlackSettings.template_fields == () and TelegramSettings.template_fields == ()
