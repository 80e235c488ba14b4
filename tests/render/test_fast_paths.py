"""The text helpers' fast paths change nothing: each helper against the plain implementation it
replaced, on text full of what they handle (markup, controls, bidi, emoji, URLs, names)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.events import MAX_ITEMS
from relay.render import context
from relay.render.limits import (
    SlackText,
    clean_text,
    measure,
    slack_escape,
    slack_literal,
    slack_unlink,
)
from relay.text import oneline

# --- the implementations the fast paths replaced ----------------------------------------------

_BLANKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_DROP = {
    **{cp: None for cp in range(0x20) if cp not in (0x09, 0x0A)},
    **{cp: None for cp in range(0x7F, 0xA0)},
    **{cp: None for cp in range(0x202A, 0x202F)},
    **{cp: None for cp in range(0x2066, 0x206A)},
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_NEWLINES = re.compile(r"\r\n?")
_LOOKALIKE = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})
_QUOTE_START = re.compile(r"^([ \t]*)(&gt;|＞)", re.MULTILINE)
_SELF_LINKING = re.compile(r"(?<=:)(?=//)|(?<=[.\u3002\uff0e\uff61@#])(?=[\w-])")


def measure_before(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def oneline_before(value: object) -> str:
    return _BLANKS.sub(" ", "" if value is None else str(value)).strip()


def clean_text_before(text: str) -> str:
    if text.isascii() and text.isprintable():
        return text
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _NEWLINES.sub("\n", text).translate(_DROP)


def slack_unlink_before(value: object) -> str:
    return _SELF_LINKING.sub("\u200b", "" if value is None else str(value))


def slack_literal_before(value: object) -> SlackText:
    if isinstance(value, SlackText):
        return value
    text = slack_escape(value).translate(_LOOKALIKE)
    return SlackText(slack_unlink_before(_QUOTE_START.sub("\\1\u00ad\\2", text)))


def clean_before(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clean_text_before(value)
    if depth > 32:
        return None
    if isinstance(value, dict):
        return {clean_text_before(str(k)): clean_before(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_before(item, depth + 1) for item in value[:MAX_ITEMS]]
    return value


# --- text to try them on -----------------------------------------------------------------------

WORDS = "&gt; &amp; :// https:// www. .com @here #general <!channel> <@U1|x> <https://a.example|b>"
EMOJI = "👩\u200d👩\u200d👧 🇫🇷 ❌ ✅ ℹ️"
PIECES = [
    *" \t\n\r\x00\x0b\x0c\x1b\x1f\x7f\x85\x9f\xa0\u1680\u2000\u200b\u200d\u2028\u2029",
    *"\u202a\u202e\u2066\u2069\u3000\ufeff\ud800\udc00",
    *"*_~`>|<&:/.@#-aZ9éß名",
    *"。．｡＞",
    *WORDS.split(),
    *EMOJI.split(),
    "\r\n",
    "e\u0301",
]
TEXT = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=24).map("".join),
    st.text(max_size=40),
)


@settings(max_examples=2000)
@given(TEXT)
def test_oneline_as_before(text: str) -> None:
    assert oneline(text) == oneline_before(text)
    assert type(oneline(text)) is str


@given(st.one_of(st.none(), st.integers(), st.floats(), TEXT.map(SlackText)))
def test_oneline_of_other_values_as_before(value: object) -> None:
    assert oneline(value) == oneline_before(value)


@settings(max_examples=2000)
@given(TEXT)
def test_clean_text_as_before(text: str) -> None:
    assert clean_text(text) == clean_text_before(text)
    assert type(clean_text(SlackText(text))) is type(clean_text_before(SlackText(text)))


@settings(max_examples=2000)
@given(TEXT)
def test_slack_unlink_as_before(text: str) -> None:
    assert slack_unlink(text) == slack_unlink_before(text)
    assert slack_unlink(SlackText(text)) == slack_unlink_before(SlackText(text))
    assert type(slack_unlink(SlackText(text))) is str


@settings(max_examples=2000)
@given(TEXT)
def test_slack_literal_as_before(text: str) -> None:
    assert slack_literal(text) == slack_literal_before(text)
    assert type(slack_literal(text)) is SlackText


@settings(max_examples=1000)
@given(TEXT)
def test_measure_as_before(text: str) -> None:
    assert measure(text) == measure_before(text)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=25), st.dictionaries(TEXT, inner, max_size=5)),
    max_leaves=60,
)


@settings(max_examples=500)
@given(JSON)
def test_clean_as_before(value: Any) -> None:
    assert context._clean(value) == clean_before(value)


def _nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = {"k": leaf, "n": 1, "s": "x"} if i % 2 else [leaf, 2, None, "y"]
    return leaf


def test_clean_cuts_at_the_same_depth_as_before() -> None:
    for depth in range(28, 38):
        for leaf in (1, None, "text", "\x00bad", 1.5, True):
            assert context._clean(_nested(depth, leaf)) == clean_before(_nested(depth, leaf))
