from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup, escape

from relay.render.limits import (
    ELLIPSIS,
    clean_text,
    graphemes,
    html_link,
    measure,
    oneline,
    safe_url,
    slack_escape,
    slack_link,
    slack_literal,
    slack_unlink,
    truncate_html,
    truncate_plain,
    truncate_slack,
)
from tests.render.helpers import TELEGRAM_TAGS, assert_well_formed

FAMILY = "👨‍👩‍👧"
FLAG = "🇫🇷"


# --- escaping -----------------------------------------------------------------------------------


def test_slack_escape_replaces_only_the_three_control_characters() -> None:
    assert (
        slack_escape('<!channel> & <@U1> "x" *b*') == '&lt;!channel&gt; &amp; &lt;@U1&gt; "x" *b*'
    )
    assert slack_escape(None) == ""
    escaped = slack_escape("a & b")
    assert slack_escape(escaped) == escaped  # already mrkdwn: not escaped twice


def test_slack_literal_defuses_formatting_and_quotes() -> None:
    text = slack_literal("> quoted *bold* _it_ ~s~ `code`\n＞ again\n \t> indented")
    assert not re.search(r"[*_~`]", text)
    assert text.startswith("\u00ad&gt; quoted ∗bold∗ ˍitˍ ∼s∼ ˋcodeˋ")
    assert "\n\u00ad＞ again" in text
    assert text.endswith("\n \t\u00ad&gt; indented")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at https://evil.example/a.b", "at https:\u200b//evil.\u200bexample/a.\u200bb"),
        ("HTTPS://x", "HTTPS:\u200b//x"),
        ("www.evil.example.", "www.\u200bevil.\u200bexample."),
        ("mail a@b.co", "mail a@\u200bb.\u200bco"),
        ("@here @channel #general", "@\u200bhere @\u200bchannel #\u200bgeneral"),
        ("evil。example evil．example", "evil。\u200bexample evil．\u200bexample"),
        ("v1.2 ends. Done: 3/4 #1", "v1.\u200b2 ends. Done: 3/4 #\u200b1"),
        ("plain words, no links", "plain words, no links"),
    ],
)
def test_slack_unlink_breaks_what_a_client_would_link(text: str, expected: str) -> None:
    assert slack_unlink(text) == expected
    assert slack_unlink(text).replace("\u200b", "") == text
    assert slack_literal(text) == slack_escape(expected)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1&c=2", "https://example.com/a?b=1&c=2"),
        ("HTTP://Example.com", "HTTP://Example.com"),
        ('https://example.com/a b|c<d>"e', "https://example.com/a%20b%7Cc%3Cd%3E%22e"),
        ("javascript:alert(1)", None),
        ("data:text/html,x", None),
        ("//example.com/x", None),
        ("https://", None),
        ("ftp://example.com/x", None),
        ("http://[::1", None),
        ("", None),
        (None, None),
        (42, None),
        ("https://e.com/" + "a" * 3000, None),
    ],
)
def test_safe_url(url: object, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_slack_link() -> None:
    assert (
        slack_link("https://e.com/?a=1&b=2", "A & <B>")
        == "<https://e.com/?a=1&amp;b=2|A &amp; &lt;B&gt;>"
    )
    assert slack_link("javascript:alert(1)", "<!here>") == "&lt;!here&gt;"
    assert slack_link("https://e.com/x|y", "") == "<https://e.com/x%7Cy>"
    assert slack_link("https://e.com", "line\nbreak") == "<https://e.com|line break>"
    assert (
        slack_link("https://e.com", "*b* https://x.y")
        == "<https://e.com|∗b∗ https:\u200b//x.\u200by>"
    )


def test_html_link() -> None:
    assert html_link("https://e.com/?a=1&b=2", "<b>x</b>") == Markup(
        '<a href="https://e.com/?a=1&amp;b=2">&lt;b&gt;x&lt;/b&gt;</a>'
    )
    assert html_link('https://e.com/"onmouseover="x', "t") == Markup(
        '<a href="https://e.com/%22onmouseover=%22x">t</a>'
    )
    assert html_link("javascript:alert(1)", "<i>t</i>") == Markup("&lt;i&gt;t&lt;/i&gt;")


def test_clean_text_and_oneline() -> None:
    lone = json.loads('"a\\ud800b"')
    assert clean_text(lone) == "a\ufffdb"
    assert clean_text("a\r\nb\rc\x00d\x1b[31m\u202eevil\u2066x") == "a\nb\ncd[31mevilx"
    assert clean_text("tab\tnew\nline שלום") == "tab\tnew\nline שלום"
    assert oneline("Hello\r\nBcc: victim@example.com\u2028x\x85y") == (
        "Hello Bcc: victim@example.com x y"
    )
    assert oneline(None) == ""


# --- graphemes and measure ------------------------------------------------------------------------


def test_graphemes_keep_sequences_whole() -> None:
    text = f"e\u0301{FAMILY}{FLAG}👍🏽x\r\n"
    assert list(graphemes(text)) == ["e\u0301", FAMILY, FLAG, "👍🏽", "x", "\r\n"]


def test_measure_counts_utf16_code_units() -> None:
    assert measure("abc") == 3
    assert measure("😀") == 2
    assert measure(FAMILY) == 8


# --- truncation examples --------------------------------------------------------------------------


def test_truncate_plain_examples() -> None:
    assert truncate_plain("short", 10) == "short"
    assert truncate_plain("hello world", 8) == "hello w…"
    assert truncate_plain("hello world", 7) == "hello…"  # trailing space dropped before the …
    assert truncate_plain(f"ab{FAMILY}cd", 9) == "ab…"
    assert truncate_plain(f"ab{FAMILY}cd", 11) == f"ab{FAMILY}…"
    assert truncate_plain("abc", 0) == ""


def test_truncate_slack_never_splits_entities_or_links() -> None:
    text = "a &amp; <https://e.com/x|label> tail"
    assert truncate_slack(text, 5) == "a…"
    assert truncate_slack(text, 8) == "a &amp;…"
    assert truncate_slack(text, 12) == "a &amp;…"
    assert truncate_slack(text, 31) == "a &amp;…"
    assert truncate_slack(text, 32) == "a &amp; <https://e.com/x|label>…"


def test_truncate_html_closes_tags_and_keeps_entities() -> None:
    html = '<b>bold &amp; <a href="https://e.com">link text</a></b> rest'
    cut = truncate_html(html, 40)
    assert cut == "<b>bold &amp;…</b>"
    cut = truncate_html(html, 53)
    assert cut == '<b>bold &amp; <a href="https://e.com">link t…</a></b>'
    assert truncate_html("<b>x</b>", 100) == "<b>x</b>"
    assert truncate_html("a<br>b<br>c" * 10, 12) == "a<br>b<br>c…"
    assert truncate_html("</i>stray" * 3 + "x" * 50, 10).startswith("stray")


# --- truncation properties ------------------------------------------------------------------------

tricky = st.sampled_from(
    ["a", " ", "é", "e\u0301", FAMILY, FLAG, "😀", "👍🏽", "&", "<", ">", "\n"]
)
texts = st.text(max_size=300) | st.lists(tricky, max_size=80).map("".join)
limits = st.integers(min_value=1, max_value=200)


def _is_grapheme_prefix(kept: str, text: str) -> bool:
    prefix = ""
    if kept == "":
        return True
    for cluster in graphemes(text):
        prefix += cluster
        if prefix.rstrip() == kept:
            return True
        if len(prefix) > len(kept) + 1 and not prefix.startswith(kept):
            return False
    return False


@given(texts, limits)
def test_truncate_plain_property(text: str, limit: int) -> None:
    result = truncate_plain(text, limit)
    assert measure(result) <= limit
    if measure(text) <= limit:
        assert result == text
    else:
        assert result.endswith(ELLIPSIS)
        assert _is_grapheme_prefix(result[: -len(ELLIPSIS)], text)


slack_pieces = st.one_of(
    texts.map(slack_escape),
    st.builds(slack_link, st.sampled_from(["https://e.com/?a=1&b=2", "https://x.org"]), texts),
)


@given(st.lists(slack_pieces, max_size=6).map("".join), limits)
def test_truncate_slack_property(text: str, limit: int) -> None:
    result = truncate_slack(text, limit)
    assert measure(result) <= limit
    if measure(text) <= limit:
        assert result == text
        return
    assert result.endswith(ELLIPSIS)
    body = result[: -len(ELLIPSIS)]
    assert text.startswith(body.rstrip()) or text.startswith(body)
    assert not re.search(r"&(?!(?:amp|lt|gt);)", body), "cut inside an entity"
    for link in re.findall(r"<[^>]*>?", body):
        assert link.endswith(">") and link in text, "cut inside a link"


@st.composite
def html_documents(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        choice = draw(st.integers(0, 3 if depth < 3 else 1))
        if choice <= 1:
            parts.append(str(escape(draw(texts))))
        elif choice == 2:
            tag = draw(st.sampled_from(sorted(TELEGRAM_TAGS - {"a"})))
            parts.append(f"<{tag}>{draw(html_documents(depth + 1))}</{tag}>")
        else:
            parts.append(
                str(html_link("https://e.com/?a=1&b=2", Markup(draw(html_documents(depth + 1)))))
            )
    return "".join(parts)


@settings(max_examples=200)
@given(html_documents(), limits)
def test_truncate_html_property(html: str, limit: int) -> None:
    result = truncate_html(html, limit)
    assert measure(result) <= limit
    if measure(html) <= limit:
        assert result == html
        return
    if limit >= measure(ELLIPSIS):
        assert re.sub(r"(</[a-z]+>)+$", "", result).endswith(ELLIPSIS)
    assert_well_formed(result)
