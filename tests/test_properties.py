"""Properties of the router (a route matches iff its keys match) and of the renderers, built-in
and user templates alike (any event text renders within the channel's limits and never becomes
markup).

Bounded for CI: ``RELAY_FUZZ_EXAMPLES`` examples per property (default 200).
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.channels.base import Limits, Message
from relay.config import RelayConfig
from relay.events import Event
from relay.render import Renderer, TemplateSettings
from relay.render.limits import measure
from relay.routing import Router
from tests.conftest import SAMPLES
from tests.render.helpers import assert_no_slack_markup_from_event
from tests.render.test_hostile import USER_TEMPLATES, link_targets, readme_templates

FUZZ = settings(
    max_examples=int(os.environ.get("RELAY_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- router ---------------------------------------------------------------------------------------

AGENTS = {"a1": "Cutter", "a2": "Cutter", "a3": "Clipper"}
VALUES = {
    "flag": ["RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED", "TEST", "RUN_PAUSED"],
    "status": ["running", "completed", "failed", "cancelled"],
    "agent": ["a1", "a2", "a3", "a4", "Cutter", "Clipper"],
    "trigger": ["youtube", "schedule", "manual", "none"],
    "youtube_channel": ["UC1", "UC2"],
}
CHANNELS = ["c1", "c2", "c3", "c4"]
match_specs = st.fixed_dictionaries(
    {},
    optional={
        key: st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True)
        for key, values in VALUES.items()
    },
)
routes = st.fixed_dictionaries(
    {"to": st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3)},
    optional={
        "match": match_specs,
        "not": match_specs,
        "stop": st.booleans(),
        "template": st.sampled_from(["t1", "t2"]),
    },
)
trigger_objects = st.one_of(
    st.none(),
    st.builds(
        lambda kind, channel: {"type": kind, "channel_id": channel},
        st.sampled_from(["youtube", "schedule", "manual", "webhook"]),
        st.sampled_from(["UC1", "UC2", "UC3"]),
    ),
)
router_events = st.builds(
    lambda flag, status, agent, trigger: {
        "flag": flag,
        "status": status,
        "agent_id": agent,
        "run_id": "r1",
        **({"triggered_by": trigger} if trigger else {}),
    },
    st.sampled_from(VALUES["flag"]),
    st.sampled_from(VALUES["status"]),
    st.sampled_from(["a1", "a2", "a3", "a4"]),
    trigger_objects,
)


def spec_matches(spec: dict[str, list[str]], event: dict[str, Any]) -> bool:
    trigger = event.get("triggered_by") or {}
    kind = trigger.get("type") or "none"
    have = {
        "flag": [event["flag"]],
        "status": [event["status"]],
        "agent": [event["agent_id"], AGENTS.get(event["agent_id"])],
        "trigger": [kind],
        "youtube_channel": [trigger.get("channel_id")] if kind == "youtube" else [],
    }
    return all(any(v in wanted for v in have[key]) for key, wanted in spec.items())


def reference_match(
    config: dict[str, Any], event: dict[str, Any]
) -> list[tuple[str, str, str | None]]:
    """Routes walked in order, straight from the README's wording."""
    out: list[tuple[str, str, str | None]] = []
    taken: set[str] = set()
    for index, route in enumerate(config["routes"]):
        match = route.get("match")
        if event["flag"] == "TEST" and "TEST" not in (match or {}).get("flag", []):
            continue
        if match is not None and not spec_matches(match, event):
            continue
        if route.get("not") and spec_matches(route["not"], event):
            continue
        for channel in route["to"]:
            if channel not in taken:
                taken.add(channel)
                template = route.get("template") or config["channels"][channel].get("template")
                out.append((f"routes[{index}]", channel, template))
        if route.get("stop"):
            break
    return out


@FUZZ
@given(
    route_list=st.lists(routes, max_size=8),
    event=router_events,
    channel_templates=st.dictionaries(st.sampled_from(CHANNELS), st.sampled_from(["t1", "t2"])),
)
def test_a_route_matches_iff_its_keys_match(
    route_list: list[dict[str, Any]], event: dict[str, Any], channel_templates: dict[str, str]
) -> None:
    channels = {
        name: {
            "type": "console",
            **({"template": channel_templates[name]} if name in channel_templates else {}),
        }
        for name in CHANNELS
    }
    config = {
        "auth": {"secrets": ["x"]},
        "agents": AGENTS,
        "channels": channels,
        "routes": route_list,
        "templates": {"t1": {"text": "one"}, "t2": {"text": "two"}},
    }
    router = Router.from_config(RelayConfig.model_validate(config))
    got = [(d.route.name, d.channel, d.template) for d in router.match(Event.model_validate(event))]
    assert got == reference_match(config, event)


# --- renderers --------------------------------------------------------------------------------------

RENDER_LIMITS = {
    "plain": Limits(text=40_000),
    "slack": Limits(text=40_000, header=150, section=3000, blocks=50),
    "telegram": Limits(text=4096, caption=1024),
    "email": Limits(text=100_000, subject=200),
    "webhook": Limits(text=40_000),
}
MARKUP_PIECES = [
    *"<>&*_~`|!@#\"'/=;:.\n\r\t \u202e\u2028\u3002\uff0e＞",
    *("<!channel>", "<@U1>", "<b>", "</a>", "https://", "evil.example", "www.", "a@b.co"),
    *("@here", "#general", "\n> ", "<https://evil.example|x>", "[x](https://evil.example)"),
]
MARKUP_TEXT = st.text(max_size=300) | st.lists(
    st.sampled_from(MARKUP_PIECES) | st.text(max_size=4), max_size=80
).map("".join)


def hostile_payload(text: str, url: str) -> dict[str, Any]:
    """A failed YouTube run whose every free-text field (and the run id) is ``text``."""
    payload: dict[str, Any] = json.loads(
        (SAMPLES / "run_finished_completed_youtube.json").read_text()
    )
    payload.update(status="failed", status_message=text, run_id=text or "r", errors=[text])
    payload["triggered_by"].update(video_title=text, video_url=url)
    payload["outputs"][0]["video_url"] = url
    return payload


class _Shapes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[str, tuple[str, ...]]] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.shapes.add((tag, tuple(sorted(name for name, _ in attrs))))
        self.urls += [value or "" for name, value in attrs if name in ("href", "src")]


def html_shapes(html: str) -> _Shapes:
    parser = _Shapes()
    parser.feed(html)
    parser.close()
    return parser


KINDS_WITH_HTML = ("telegram", "email")


def render(
    renderer: Renderer, kind: str, payload: dict[str, Any], template: str | None = None
) -> Message:
    return renderer.render(
        kind, template, Event.model_validate(payload), event_id="e1", route="r", channel="c",
        limits=RENDER_LIMITS[kind], run_started_at=1.0, now=2.0,
    )  # fmt: skip


def html_of(message: Message, kind: str) -> list[str]:
    return [message.text, message.caption or ""] if kind == "telegram" else [message.html or ""]


@pytest.fixture(scope="module")
def default_renderer() -> Renderer:
    return Renderer({}, {"a1": "Cutter"})


@pytest.fixture(scope="module")
def benign_shapes(default_renderer: Renderer) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
    """The HTML tags (with attribute names) the built-in templates produce for plain text."""
    payload = hostile_payload("plain words", "https://ok.example/v")
    shapes = {}
    for kind in KINDS_WITH_HTML:
        message = render(default_renderer, kind, payload)
        shapes[kind] = set().union(*(html_shapes(h).shapes for h in html_of(message, kind)))
    return shapes


URLS = st.sampled_from(["https://ok.example/v?a=1&b=<2>", "javascript:alert(1)", ""]) | MARKUP_TEXT


@FUZZ
@given(text=MARKUP_TEXT, url=URLS)
def test_any_text_renders_within_limits_and_never_as_markup(
    default_renderer: Renderer,
    benign_shapes: dict[str, set[tuple[str, tuple[str, ...]]]],
    text: str,
    url: str,
) -> None:
    payload = hostile_payload(text, url)
    for kind, limits in RENDER_LIMITS.items():
        message = render(default_renderer, kind, payload)
        assert measure(message.text) <= limits.text
        assert message.subject is not None and not re.search(r"[\r\n]", message.subject)
        if limits.subject:
            assert measure(message.subject) <= limits.subject
        if kind == "slack":
            texts = [message.text]
            for block in message.blocks or []:
                parts = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
                texts += [p["text"] for p in parts if p and p.get("type") == "mrkdwn"]
            for mrkdwn in texts:
                for inner in re.findall(r"<([^>]*)>", mrkdwn):
                    assert re.match(r"https?://", inner), f"<{inner}> is not a plain link"
                assert not re.search(r"&(?!(?:amp|lt|gt);)", mrkdwn), "a raw & got through"
            benign = render(default_renderer, kind, hostile_payload("plain words", url))
            assert_no_slack_markup_from_event(message, benign, link_targets(payload))
        if kind in KINDS_WITH_HTML:
            if kind == "telegram":
                assert message.caption is not None and measure(message.caption) <= 1024
            for html in html_of(message, kind):
                shapes = html_shapes(html)
                assert shapes.shapes <= benign_shapes[kind], "event text became markup"
                assert all(re.match(r"https?://", u) for u in shapes.urls), shapes.urls
                assert not re.search(
                    r"&(?!(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);)", html
                )


USER_TEMPLATE_SET = {**USER_TEMPLATES, **{f"readme:{n}": t for n, t in readme_templates().items()}}


@pytest.fixture(scope="module")
def user_renderer() -> Renderer:
    return Renderer(
        {name: TemplateSettings.model_validate(t) for name, t in USER_TEMPLATE_SET.items()},
        {"a1": "Cutter"},
    )


@FUZZ
@given(text=MARKUP_TEXT, url=URLS, template=st.sampled_from(sorted(USER_TEMPLATE_SET)))
def test_user_templates_never_turn_event_text_into_slack_markup(
    user_renderer: Renderer, text: str, url: str, template: str
) -> None:
    """Through a user template, event text adds no formatting, quote, link, mention or
    self-linking URL to Slack: only the template's own markup and the URL fields it links."""
    payload = hostile_payload(text, url)
    benign = render(user_renderer, "slack", hostile_payload("plain words", url), template)
    message = render(user_renderer, "slack", payload, template)
    assert measure(message.text) <= RENDER_LIMITS["slack"].text
    assert_no_slack_markup_from_event(message, benign, link_targets(payload))
