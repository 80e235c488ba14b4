"""Every kind's built-in message for every sample, byte for byte as recorded (``golden.py``)."""

from __future__ import annotations

import json

import pytest

from tests.render.golden import GOLDEN, dump, messages

RECORDED = json.loads(GOLDEN.read_text())
RENDERED = json.loads(dump(messages()))


def test_the_same_cases_are_rendered() -> None:
    assert sorted(RENDERED) == sorted(RECORDED)


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_message_is_unchanged(case: str) -> None:
    assert RENDERED[case] == RECORDED[case]
