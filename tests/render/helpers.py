"""Shared helpers for the render tests: samples, a renderer, markup checks."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Protocol

from relay.channels.base import Limits, Message
from relay.events import Event
from relay.render import Renderer, TemplateSettings
from relay.render.context import build_context

SAMPLES = Path(__file__).resolve().parents[2] / "relay" / "samples"
SHORTS = "123e4567-e89b-12d3-a456-789012345678"
CUTTER = "0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b"
AGENTS = {SHORTS: "Shorts cutter", CUTTER: "Clip cutter"}
KINDS = ("plain", "slack", "telegram", "email", "webhook", "discord")
LIMITS = {
    "plain": Limits(text=40_000),
    "slack": Limits(text=40_000, header=150, section=3000, blocks=50),
    "telegram": Limits(text=4096, caption=1024),
    "email": Limits(text=100_000, subject=200),
    "webhook": Limits(text=40_000),
    "discord": Limits(text=2000, header=256, section=4096, blocks=10),
}
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}
VOID = {"br", "img", "meta", "hr", "input", "link", "area", "base", "col", "source", "wbr"}
_ENTITY_OK = re.compile(r"&(?!(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);)")


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return data


def sample_names() -> list[str]:
    return sorted(p.stem for p in SAMPLES.glob("*.json"))


def renderer(templates: dict[str, dict[str, Any]] | None = None) -> Renderer:
    settings = {name: TemplateSettings.model_validate(t) for name, t in (templates or {}).items()}
    return Renderer(settings, AGENTS)


def render(
    r: Renderer,
    kind: str,
    payload: dict[str, Any],
    template: str | None = None,
    *,
    limits: Limits | None = None,
    channel_templates: dict[str, str] | None = None,
    run_started_at: float | None = 1_000.0,
) -> Message:
    return r.render(
        kind,
        template,
        Event.model_validate(payload),
        event_id="evt-1",
        route="failed-runs",
        channel="team",
        limits=limits or LIMITS.get(kind, Limits()),
        run_started_at=run_started_at,
        now=1_065.0,
        channel_templates=channel_templates,
    )


def context_of(event: Event, **overrides: Any) -> dict[str, Any]:
    """The template context of one delivery of ``event``, with plain defaults for the rest."""
    options: dict[str, Any] = {
        "agents": AGENTS,
        "event_id": "e",
        "route": "r",
        "channel": "c",
        "run_started_at": None,
        "now": 0.0,
        **overrides,
    }
    return build_context(event, **options)


def _texts(message: SlackLike, keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    """The ``text`` of every block-tree object ``keep`` accepts."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if keep(node) and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.blocks or [])
    return found


class SlackLike(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def blocks(self) -> list[dict[str, Any]] | None: ...


def slack_texts(message: Message) -> list[str]:
    """Every text string in the blocks, plus the fallback text."""
    return [message.text, *_texts(message, lambda _: True)]


def mrkdwn_texts(message: SlackLike) -> list[str]:
    """The fallback text and every mrkdwn text object (what Slack parses): of a rendered
    ``Message`` or of a message a fake Slack received."""
    return [message.text, *_texts(message, lambda node: node.get("type") == "mrkdwn")]


def plain_texts(message: SlackLike) -> list[str]:
    """Every ``plain_text`` object's text: Slack clients still link bare URLs in it."""
    return _texts(message, lambda node: node.get("type") == "plain_text")


SLACK_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
"""A ``<target>`` or ``<target|label>`` token: a link, a mention or a channel link."""
_ACTIVE = {
    "format": re.compile(r"[*_~`]"),
    "quote": re.compile(r"^[ \t]*(?:>|&gt;|＞)", re.MULTILINE),
    "url": re.compile(r"://"),
    "domain": re.compile(r"[.\u3002\uff0e\uff61][^\W_]"),
    "name": re.compile(r"[@#][^\W_]"),
    "raw &": re.compile(r"&(?!(?:amp|lt|gt);)"),
}
"""What Slack acts on in text: formatting markers, a quote marker, and what a client links by
itself (``scheme://``, ``host.tld``, ``a@b.c``, ``@name``, ``#channel``). Over-approximate on
purpose: a marker counts even where Slack would not pair it."""


def slack_markup(texts: list[str], *, mrkdwn: bool = True) -> tuple[Counter[str], list[str]]:
    """How often each kind of active Slack markup occurs in ``texts``, and the link targets.

    Link tokens count as ``link`` and are replaced by their label before the rest is counted.
    For ``plain_text`` (``mrkdwn=False``) only what a client links by itself is counted.
    """
    counts: Counter[str] = Counter()
    targets: list[str] = []
    for text in texts:
        if mrkdwn:
            targets += [target for target, _ in SLACK_LINK.findall(text)]
            counts["link"] += len(SLACK_LINK.findall(text))
            text = SLACK_LINK.sub(lambda found: found.group(2) or "", text)
            counts["angle"] += text.count("<") + text.count(">")
        for kind, pattern in _ACTIVE.items():
            if mrkdwn or kind in ("url", "domain", "name"):
                counts[kind] += len(pattern.findall(text))
    return counts, targets


def assert_no_slack_markup_from_event(
    hostile: SlackLike, benign: SlackLike, link_targets: set[str]
) -> None:
    """``hostile`` (event text everywhere) has no active markup that ``benign`` (the same
    template, harmless event text) lacks, and links only to ``link_targets`` or to the
    template's own links."""
    for mrkdwn, texts in ((True, mrkdwn_texts), (False, plain_texts)):
        seen, targets = slack_markup(texts(hostile), mrkdwn=mrkdwn)
        expected, own_targets = slack_markup(texts(benign), mrkdwn=mrkdwn)
        extra = {kind: n for kind, n in (seen - expected).items() if n > 0}
        assert not extra, f"markup from event text: {extra} in {texts(hostile)}"
        foreign = set(targets) - link_targets - set(own_targets)
        assert not foreign, f"links from event text: {foreign}"


def everything(message: Message, kind: str) -> str:
    """All the text a reader of this kind could see, to search for expected content."""
    if kind == "slack":
        return "\n".join(slack_texts(message))
    if kind == "email":
        return f"{message.subject}\n{message.text}\n{message.html}"
    if kind == "discord":
        return "\n".join(discord_texts(message))
    return message.text


def discord_texts(message: Message) -> list[str]:
    """Content and every text of the embeds, as Discord shows them (escapes taken out)."""
    texts = [message.text]
    for embed in message.blocks or []:
        texts += [embed.get(key, "") for key in ("title", "description", "url")]
        texts += [embed.get("author", {}).get("name", ""), embed.get("footer", {}).get("text", "")]
        texts += [f"{field['name']}\n{field['value']}" for field in embed.get("fields", [])]
    return [re.sub(r"\\(.)", r"\1", text).replace("\u200b", "") for text in texts if text]


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack}")
        else:
            self.stack.pop()


def html_tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    return checker.tags


def assert_well_formed(html: str) -> None:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed {checker.stack}"
    assert not re.search(r"<[^>]*$", html), "cut inside a tag"
    assert not _ENTITY_OK.search(html), "a bare & or a cut entity"
