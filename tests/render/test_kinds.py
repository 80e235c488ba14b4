"""The kind registry: a kind registered from outside renders end to end, like the built-in ones.

``ShoutKind`` is a test-only markup: everything upper case, ``!`` its own emphasis (so a value's
``!`` is escaped as ``\\!``), links written ``LABEL -> url``. It has one module's worth of code
and one registry line, and nothing else in the relay knows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from relay.channels import REGISTRY as CHANNELS
from relay.channels.base import Limits, Message
from relay.render import KINDS, Renderer, Reply, render_reply
from relay.render.kinds import markups_of
from relay.render.kinds.base import Builtin, Draft, Parts, RenderKind, reply_lines
from relay.render.limits import measure, oneline, safe_url, truncate_plain
from relay.render.markup import OutputMarkup
from tests.render.helpers import render, renderer, sample


class ShoutText(str):
    """Text already in shout markup: the escape passes it through."""

    __slots__ = ()


def shout_escape(value: object) -> ShoutText:
    if isinstance(value, ShoutText):
        return value
    return ShoutText(str(value).upper().replace("!", "\\!"))


def shout_link(url: object, text: object = None) -> ShoutText:
    label, target = shout_escape(oneline(text)), safe_url(url)
    return ShoutText(f"{label} -> {target}" if target else label)


SHOUT = OutputMarkup(
    "shout",
    link=shout_link,
    escape=shout_escape,
    filters={"shout": shout_escape},
    escaped=ShoutText,
    truncate=lambda text, length: ShoutText(truncate_plain(text, length)),
)


class ShoutKind(RenderKind):
    name: ClassVar[str] = "shout"
    text_markup: ClassVar[OutputMarkup] = SHOUT
    builtins: ClassVar[Mapping[str, Builtin]] = {
        "shout": Builtin(
            "shout",
            "{{ emoji }} {{ status_word }}!! {{ agent_name }}"
            "{% if status_message %}: {{ status_message }}{% endif %}",
            "shout.j2",
        )
    }

    def render(self, draft: Draft) -> Parts:
        own = draft.text(SHOUT.name)
        text = own if own is not None else draft.builtin("shout")
        return Parts(text=truncate_plain(text, draft.limits.text), subject=draft.subject())

    def render_reply(self, reply: Reply, limits: Limits) -> Parts:
        icon, title, detail = reply_lines(reply)
        text = f"{icon} {shout_escape(title)}!!"
        if detail:
            text += f" {shout_escape(detail)}"
        if reply.url:
            text += f" {shout_link(reply.url, 'download')}"
        return Parts(text=truncate_plain(text, limits.text))


@pytest.fixture
def shout(monkeypatch: pytest.MonkeyPatch) -> None:
    """``shout`` registered for one test (the registry is as it was afterwards)."""
    monkeypatch.setitem(KINDS, "shout", ShoutKind())


def failed(**fields: Any) -> dict[str, Any]:
    return sample("run_finished_failed") | fields


@pytest.mark.usefixtures("shout")
def test_a_registered_kind_renders_its_built_in_message() -> None:
    message = render(renderer(), "shout", failed(status_message="out of credits! add some"))
    assert message.text == "❌ FAILED!! CLIP CUTTER: OUT OF CREDITS\\! ADD SOME"
    assert message.subject and "Clip cutter" in message.subject  # the common subject line
    assert message.run_id == failed()["run_id"] and message.route == "failed-runs"


@pytest.mark.usefixtures("shout")
def test_a_templates_text_is_written_in_the_registered_markup() -> None:
    text = "{{ agent_name }}: {{ status_message }}! {{ inputs[0].video_url | link('in!') }}"
    r = renderer({"t": {"text": text}})
    message = render(r, "shout", failed(status_message="boom!"), "t")
    url = failed()["inputs"][0]["video_url"]
    assert message.text == f"CLIP CUTTER: BOOM\\!! IN\\! -> {url}"


@pytest.mark.usefixtures("shout")
def test_a_registered_markups_filters_reach_every_environment() -> None:
    r = renderer({"t": {"text": "{{ status_word | shout }}"}})
    assert render(r, "plain", failed(), "t").text == "FAILED"
    assert "shout" in {markup.name for markup in markups_of(KINDS.values())}


@pytest.mark.usefixtures("shout")
def test_a_registered_kind_keeps_to_the_limits() -> None:
    message = render(renderer(), "shout", failed(status_message="x" * 500), limits=Limits(text=40))
    assert measure(message.text) <= 40 and message.text.endswith("…")


@pytest.mark.usefixtures("shout")
def test_a_registered_kind_writes_card_replies() -> None:
    base = Message(text="card", subject="Run failed", run_id="run-1", event_id="ev-1")
    reply = Reply("fail:n", "Node n failed", "gpu! out of memory", None, True)
    message = render_reply("shout", reply, base, Limits())
    assert message.text == "❌ NODE N FAILED!! GPU\\! OUT OF MEMORY"
    assert (message.subject, message.run_id, message.event_id) == ("Run failed", "run-1", "ev-1")
    short = render_reply("shout", reply, base, Limits(text=12))
    assert measure(short.text) <= 12


def test_a_renderer_keeps_the_kinds_it_was_built_with(monkeypatch: pytest.MonkeyPatch) -> None:
    before = Renderer({}, {})
    monkeypatch.setitem(KINDS, "shout", ShoutKind())
    with pytest.raises(ValueError, match="unknown render kind 'shout'"):
        render(before, "shout", failed())
    assert render(Renderer({}, {}), "shout", failed()).text.startswith("❌ FAILED!!")


def test_every_kind_is_registered_under_its_name() -> None:
    assert {name: kind.name for name, kind in KINDS.items()} == {name: name for name in KINDS}


def test_every_channel_type_renders_in_a_registered_kind() -> None:
    kinds = {name: getattr(kind.factory, "render_kind", None) for name, kind in CHANNELS.items()}
    assert {name: kind for name, kind in kinds.items() if kind not in KINDS} == {}
