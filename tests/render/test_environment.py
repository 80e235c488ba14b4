from __future__ import annotations

from typing import Any

import pytest
from jinja2 import TemplateError
from jinja2.exceptions import SecurityError, UndefinedError

from relay.render import TemplateConfigError, check_syntax
from relay.render.environment import Environments, duration
from relay.render.kinds import REGISTRY as KINDS
from relay.render.kinds import markups_of


@pytest.fixture(scope="module")
def envs() -> Environments:
    return Environments(markups_of(KINDS.values()))


def run(envs: Environments, markup: str, source: str, **context: Any) -> str:
    return envs.compile(markup, source, name="t", key="text").render(context)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, ""),
        (0, "0s"),
        (42.4, "42s"),
        (65, "1m 05s"),
        (3725, "1h 02m"),
        (97_200, "1d 03h"),
        (-5, "0s"),
        ("x", ""),
        (True, ""),
    ],
)
def test_duration(seconds: object, expected: str) -> None:
    assert duration(seconds) == expected


def test_slack_finalize_makes_values_literal_but_not_template_markup(envs: Environments) -> None:
    out = run(
        envs,
        "slack",
        "*Failed* <https://docs.example|docs> {{ v }} {{ n }} {{ none }}",
        v="<!channel> & <@U1> *b* _i_ ~s~ `c` https://evil.example a@b.example #general",
        n=3,
        none=None,
    )
    assert out == (
        "*Failed* <https://docs.example|docs> &lt;!channel&gt; &amp; &lt;@\u200bU1&gt; "
        "∗b∗ ˍiˍ ∼s∼ ˋcˋ https:\u200b//evil.\u200bexample a@\u200bb.\u200bexample "
        "#\u200bgeneral 3 "
    )


def test_slack_finalize_defuses_a_quote_wherever_a_value_starts_a_line(
    envs: Environments,
) -> None:
    out = run(envs, "slack", "> {{ a }}\n{{ b }}", a="ok", b="> x\n  > y")
    assert out == "> ok\n\u00ad&gt; x\n  \u00ad&gt; y"


def test_slack_filters_are_not_escaped_twice(envs: Environments) -> None:
    out = run(
        envs,
        "slack",
        "{{ v | slack_escape }} {{ u | slack_link(v) }} {{ v | slack_literal }}",
        v="a & *b*",
        u="https://e.com/?x=1&y=2",
    )
    assert out == "a &amp; ∗b∗ <https://e.com/?x=1&amp;y=2|a &amp; ∗b∗> a &amp; ∗b∗"


@pytest.mark.parametrize(
    "source",
    [
        "{{ v | safe }}",
        "{{ v | e }}",
        "{{ v | string }}",
        "{{ v | oneline }}",
        "{{ v | truncate(100) }}",
        "{{ v | safe_url }}",
        "{{ [v] | join }}",
        "{{ '%s' | format(v) }}",
        "{{ v | urlize }}",
        "{% set x %}{{ v }}{% endset %}{{ x }}",
        "{{ (u | link('w')) ~ v }}",
    ],
)
def test_no_filter_takes_a_value_past_slack_escaping(envs: Environments, source: str) -> None:
    v = "https://evil.example/*x*"
    out = run(envs, "slack", source, v=v, u="https://ok.example")
    assert "<" not in out and "*" not in out and "://" not in out and "evil.example" not in out


def test_slack_plain_text_is_shown_as_is_but_never_linked(envs: Environments) -> None:
    out = run(envs, "slack_plain", "{{ v }} {{ u | link('Watch') }}", v="*a* <b> @here", u="x:y")
    assert out == "*a* <b> @\u200bhere Watch"


def test_link_filter_follows_the_markup(envs: Environments) -> None:
    source = "{{ url | link(title) }}|{{ bad | link(title) }}"
    context = {"url": "https://e.com/v?a=1&b=2", "bad": "javascript:x", "title": "<T>"}
    assert run(envs, "plain", source, **context) == "<T> (https://e.com/v?a=1&b=2)|<T>"
    assert (
        run(envs, "slack", source, **context) == "<https://e.com/v?a=1&amp;b=2|&lt;T&gt;>|&lt;T&gt;"
    )
    assert run(envs, "html", source, **context) == (
        '<a href="https://e.com/v?a=1&amp;b=2">&lt;T&gt;</a>|&lt;T&gt;'
    )


def test_html_autoescapes(envs: Environments) -> None:
    assert run(envs, "html", "<b>{{ v }}</b>", v='<a href="x">&') == (
        "<b>&lt;a href=&#34;x&#34;&gt;&amp;</b>"
    )


def test_truncate_filter_is_grapheme_safe_and_markup_aware(envs: Environments) -> None:
    assert run(envs, "plain", "{{ v | truncate(8) }}", v="hello big world") == "hello…"
    assert run(envs, "plain", "{{ v | truncate(8, true) }}", v="hello big world") == "hello b…"
    assert run(envs, "plain", "{{ v | truncate(4, true) }}", v="ab👨‍👩‍👧") == "ab…"
    assert run(envs, "plain", "{{ v | truncate(50) }}", v="short") == "short"
    html = run(envs, "html", "{{ u | html_link(v) | truncate(30) }}", u="https://e.com", v="x" * 40)
    assert html == '<a href="https://e.com">x…</a>'
    slack = run(envs, "slack", "{{ v | slack_escape | truncate(6) }}", v="a & b")
    assert slack == "a…"


def test_tojson_and_safe_url(envs: Environments) -> None:
    assert (
        run(envs, "plain", "{{ v | tojson }}", v='say "hi" <b>') == '"say \\"hi\\" \\u003cb\\u003e"'
    )
    assert run(
        envs, "plain", "[{{ a | safe_url }}][{{ b | safe_url }}]", a="https://e.com", b="x:y"
    ) == ("[https://e.com][]")


def test_strict_undefined(envs: Environments) -> None:
    with pytest.raises(UndefinedError):
        run(envs, "plain", "{{ missing }}")
    with pytest.raises(UndefinedError):
        run(envs, "plain", "{{ event.nope }}", event={})


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ event.update({'x': 1}) }}",
        "{{ items.append(1) }}",
        "{{ ''.format.__globals__ }}",
        "{{ '{0.__class__}'.format('') }}",
    ],
)
def test_sandbox_blocks_unsafe_access(envs: Environments, source: str) -> None:
    with pytest.raises((SecurityError, UndefinedError)):
        run(envs, "plain", source, event={"a": 1}, items=[1])


@pytest.mark.parametrize(
    "source",
    ["{{ environ }}", "{{ os }}", "{{ config }}", "{{ lipsum() }}", "{{ request }}", "{{ open }}"],
)
def test_no_environment_or_file_access(envs: Environments, source: str) -> None:
    with pytest.raises(UndefinedError):
        run(envs, "plain", source)


def test_no_includes(envs: Environments) -> None:
    with pytest.raises((TemplateError, TypeError)):
        run(envs, "plain", "{% include '/etc/passwd' %}")


def test_syntax_error_names_the_part_and_line(envs: Environments) -> None:
    with pytest.raises(TemplateConfigError) as caught:
        envs.compile("plain", "line one\n{{ oops }\n", name="youtube", key="email.text")
    error = caught.value
    assert (error.name, error.key, error.lineno) == ("youtube", "email.text", 2)
    assert "template 'youtube', email.text line 2:" in str(error)


def test_check_syntax() -> None:
    check_syntax('{"text": {{ text | tojson }}}', name="in-house", key="body")
    with pytest.raises(TemplateConfigError) as caught:
        check_syntax('{"text": {{ text | tojson }', name="in-house", key="body")
    assert caught.value.key == "body"
    assert caught.value.lineno == 1
    with pytest.raises(TemplateConfigError):
        check_syntax("{{ x | no_such_filter }}", name="in-house", key="body")
