from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from relay.render import SlackTemplate, TemplateSettings


def test_text_only() -> None:
    settings = TemplateSettings.model_validate({"text": "hi {{ agent_name }}"})
    assert settings.text == "hi {{ agent_name }}"
    assert settings.slack_blocks is None
    assert settings.slack_text is None


def test_slack_as_block_list_or_dict() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "{{ title }}"}}]
    as_list = TemplateSettings.model_validate({"slack": blocks})
    assert as_list.slack_blocks == blocks
    assert as_list.slack_text is None
    as_dict = TemplateSettings.model_validate({"slack": {"blocks": blocks, "text": "{{ title }}"}})
    assert isinstance(as_dict.slack, SlackTemplate)
    assert as_dict.slack_blocks == blocks
    assert as_dict.slack_text == "{{ title }}"


def test_email_parts() -> None:
    settings = TemplateSettings.model_validate({"email": {"subject": "S", "html": "<p>x</p>"}})
    assert settings.email is not None
    assert (settings.email.subject, settings.email.text, settings.email.html) == (
        "S",
        None,
        "<p>x</p>",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "at least one of text, slack, telegram, email, webhook"),
        ({"text": "x", "teams": "y"}, "Extra inputs are not permitted"),
        ({"email": {}}, "at least one of subject, text, html"),
        ({"email": {"subjet": "typo"}}, "Extra inputs are not permitted"),
        ({"slack": [{"text": "no type"}]}, "block 0 needs a 'type'"),
        ({"slack": {"blocks": [{"type": "divider"}, {}]}}, "block 1 needs a 'type'"),
        ({"slack": {}}, "set blocks, text or both"),
        ({"slack": {"blocks": [], "colour": "red"}}, "Extra inputs are not permitted"),
        ({"telegram": 5}, "valid string"),
    ],
)
def test_invalid(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TemplateSettings.model_validate(data)
    assert message in str(caught.value)
