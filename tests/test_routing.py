from __future__ import annotations

from typing import Any

import pytest

from relay.config import parse_config
from relay.events import Event
from relay.routing import Router
from tests.conftest import sample

HEAD = """\
auth: {allow_unsigned: true}
agents:
  123e4567-e89b-12d3-a456-789012345678: Shorts cutter
channels:
  a: {type: console}
  b: {type: console}
  c: {type: console, template: t2}
templates:
  t1: {text: one}
  t2: {text: two}
routes:
"""


def router(routes: str) -> Router:
    config, _ = parse_config(HEAD + routes, env={})
    return Router.from_config(config)


def event(name: str, **changes: Any) -> Event:
    data = sample(name)
    data.update(changes)
    return Event.model_validate(data)


def targets(r: Router, e: Event) -> list[tuple[str, str, str | None]]:
    return [(d.route.name, d.channel, d.template) for d in r.match(e)]


FAILED = "run_finished_failed"
YOUTUBE = "run_finished_completed_youtube"


@pytest.mark.parametrize(
    ("match", "name", "expected"),
    [
        ("{flag: RUN_FINISHED}", FAILED, True),
        ("{flag: RUN_STARTED}", FAILED, False),
        ("{flag: [RUN_STARTED, RUN_FINISHED]}", FAILED, True),
        ("{status: failed}", FAILED, True),
        ("{status: [completed, partial_complete]}", FAILED, False),
        ("{agent: 0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b}", FAILED, True),
        ("{agent: Shorts cutter}", YOUTUBE, True),
        ("{agent: Shorts cutter}", FAILED, False),
        ("{agent: [ffffffff-0000-4000-8000-000000000000, Shorts cutter]}", YOUTUBE, True),
        ("{trigger: youtube}", YOUTUBE, True),
        ("{trigger: none}", FAILED, True),
        ("{trigger: none}", YOUTUBE, False),
        ("{trigger: schedule}", "run_finished_partial_schedule", True),
        ("{trigger: manual}", "run_cancelled_manual", True),
        ("{trigger: [schedule, manual]}", YOUTUBE, False),
        # The samples' channel id is the docs' placeholder, shorter than a real one.
        ("{youtube_channel: {unknown: UCxxxxxxxxxxxxxx}}", YOUTUBE, True),
        ("{youtube_channel: UCuAXFkgsw1L7xaCfnd5JJOw}", YOUTUBE, False),
        ("{youtube_channel: {unknown: UCxxxxxxxxxxxxxx}}", FAILED, False),
        ("{flag: RUN_FINISHED, status: completed, trigger: youtube}", YOUTUBE, True),
        ("{flag: RUN_FINISHED, status: failed, trigger: youtube}", YOUTUBE, False),
        ("{flag: {unknown: RUN_STALE}}", FAILED, False),
        (
            "{flag: RUN_FINISHED, agent: Shorts cutter, "
            "youtube_channel: [UCuAXFkgsw1L7xaCfnd5JJOw, {unknown: UCxxxxxxxxxxxxxx}]}",
            YOUTUBE,
            True,
        ),
    ],
)
def test_each_match_key(match: str, name: str, expected: bool) -> None:
    r = router(f"  - name: r\n    match: {match}\n    to: [a]\n")
    assert bool(r.match(event(name))) is expected


def test_a_value_the_relay_does_not_know_yet_routes_as_written() -> None:
    r = router(
        "  - name: stale\n    match: {flag: [{unknown: RUN_STALE}], status: running}\n    to: [a]\n"
    )
    assert targets(r, event("run_progress", flag="RUN_STALE")) == [("stale", "a", None)]
    assert targets(r, event("run_progress")) == []


def test_no_match_block_matches_everything_but_test() -> None:
    r = router("  - name: all\n    to: [a]\n")
    assert targets(r, event(FAILED)) == [("all", "a", None)]
    assert targets(r, event("test")) == []


def test_test_events_only_reach_routes_naming_test() -> None:
    r = router(
        "  - name: all\n    to: [a]\n"
        "  - name: status\n    match: {status: running}\n    to: [b]\n"
        "  - name: tests\n    match: {flag: [TEST, RUN_STARTED]}\n    to: [c]\n"
    )
    assert targets(r, event("test")) == [("tests", "c", "t2")]
    assert [t[0] for t in targets(r, event("run_started_youtube"))] == ["all", "status", "tests"]


def test_not_excludes() -> None:
    r = router("  - name: r\n    not: {flag: RUN_PROGRESS}\n    to: [a]\n")
    assert targets(r, event("run_progress")) == []
    assert targets(r, event(FAILED)) == [("r", "a", None)]
    r = router(
        "  - name: r\n    match: {agent: Shorts cutter}\n"
        "    not: {flag: RUN_FINISHED, status: cancelled}\n    to: [a]\n"
    )
    assert targets(r, event("run_cancelled_manual")) == []
    assert targets(r, event(YOUTUBE)) == [("r", "a", None)]


def test_every_matching_route_delivers_in_order_and_stop_ends_the_walk() -> None:
    r = router(
        "  - name: one\n    match: {status: failed}\n    to: [a]\n"
        "  - name: two\n    match: {flag: RUN_FINISHED}\n    to: [b]\n    stop: true\n"
        "  - name: three\n    to: [c]\n"
    )
    assert [t[:2] for t in targets(r, event(FAILED))] == [("one", "a"), ("two", "b")]
    assert [t[:2] for t in targets(r, event("run_progress"))] == [("three", "c")]


def test_channel_at_most_once_first_route_wins_its_template() -> None:
    r = router(
        "  - name: first\n    match: {status: failed}\n    to: [a, b]\n    template: t1\n"
        "  - name: second\n    to: [b, c, a]\n"
    )
    assert targets(r, event(FAILED)) == [
        ("first", "a", "t1"),
        ("first", "b", "t1"),
        ("second", "c", "t2"),
    ]


def test_template_precedence_route_then_channel_then_default() -> None:
    r = router("  - name: x\n    to: [a, c]\n  - name: y\n    to: [b]\n    template: t1\n")
    assert targets(r, event(FAILED)) == [("x", "a", None), ("x", "c", "t2"), ("y", "b", "t1")]


def test_order_is_kept_across_index_keys() -> None:
    routes = "".join(
        f"  - name: r{i}\n    match: {m}\n    to: [a]\n    stop: {str(i == 3).lower()}\n"
        for i, m in enumerate(
            [
                "{trigger: none}",
                "{agent: 0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b}",
                "{status: failed}",
                "{flag: RUN_FINISHED}",
                "{status: failed}",
            ]
        )
    )
    r = router(routes.replace("to: [a]", "to: [a, b, c]"))
    matched = r.match(event(FAILED))
    assert [d.route.name for d in matched] == ["r0", "r0", "r0"]
    r = router(routes)
    assert [d.route.name for d in r.match(event(FAILED))] == ["r0"]


def test_many_routes_only_candidates_are_checked() -> None:
    routes = "".join(
        f"  - name: r{i}\n    match: {{agent: {agent(i)}}}\n    to: [a]\n" for i in range(500)
    )
    r = router(routes)
    assert (
        len(
            list(
                r.candidates(
                    {
                        "agent": agent(7),
                        "flag": "X",
                        "status": "s",
                        "trigger": "none",
                        "youtube_channel": None,
                    }
                )
            )
        )
        == 1
    )
    assert targets(r, event(FAILED, agent_id=agent(499))) == [("r499", "a", None)]


def agent(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("match", "relay_key", "expected"),
    [
        ("{source: webhook}", None, True),
        ("{source: webhook}", {"source": "reconciled"}, False),
        ("{source: reconciled}", {"source": "reconciled"}, True),
        ("{source: [reconciled, watch]}", {"source": "watch"}, True),
        ("{source: reconciled}", None, False),
    ],
)
def test_routes_match_the_events_source(
    match: str, relay_key: dict[str, Any] | None, expected: bool
) -> None:
    r = router(f"  - match: {match}\n    to: [a]\n")
    changes = {} if relay_key is None else {"_relay": relay_key}
    assert bool(r.match(event(FAILED, **changes))) is expected
    excluded = router(f"  - not: {match}\n    to: [a]\n")
    assert bool(excluded.match(event(FAILED, **changes))) is not expected


def test_run_stale_routes_like_any_flag() -> None:
    r = router(
        "  - match: {flag: RUN_STALE}\n    to: [b]\n    stop: true\n"
        "  - match: {status: running}\n    to: [a]\n"
    )
    stale = event("run_progress", flag="RUN_STALE", _relay={"source": "watch", "silent_for": 7200})
    assert targets(r, stale) == [("routes[0]", "b", None)]
    assert targets(r, event("run_progress")) == [("routes[1]", "a", None)]


MOSAIC = "mosaic: {api_key: mk_test_key_0123456789}\n"
FAILED_AGENT = "0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b"
SHORTS = "123e4567-e89b-12d3-a456-789012345678"


def test_an_agent_matches_by_its_name_in_mosaic_and_agents_still_wins() -> None:
    config, _ = parse_config(
        MOSAIC
        + HEAD
        + "  - match: {agent: Long-form editor}\n    to: [a]\n"
        + "  - match: {agent: Shorts cutter}\n    to: [b]\n",
        env={},
    )
    names = {FAILED_AGENT: "Long-form editor", "ffffffff-0000-4000-8000-000000000000": "x"}
    # agents: names the Shorts cutter; Mosaic's name for it does not make it another agent.
    names[SHORTS] = "Long-form editor"
    r = Router.from_config(config, names)
    assert targets(r, event(FAILED)) == [("routes[0]", "a", None)]
    assert targets(r, event(YOUTUBE)) == [("routes[1]", "b", None)]
    # Until the name is known, the route matches nothing.
    assert targets(Router.from_config(config), event(FAILED)) == []


def test_a_route_naming_an_agent_by_id_and_by_name_delivers_once() -> None:
    config, _ = parse_config(
        MOSAIC + HEAD + f"  - match: {{agent: [{FAILED_AGENT}, Editor]}}\n    to: [a, b]\n",
        env={},
    )
    r = Router.from_config(config, {FAILED_AGENT: "Editor"})
    assert targets(r, event(FAILED)) == [("routes[0]", "a", None), ("routes[0]", "b", None)]
    assert list(r.candidates({"agent": FAILED_AGENT, "agent_name": "Editor"})) == [0]


QUIET = """\
auth: {allow_unsigned: true}
channels:
  phones:
    type: apprise
    urls: ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]
    quiet_hours: {from: "22:00", to: "08:00", except: {status: failed}}
  archive: {type: file}
routes:
  - {to: [phones, archive]}
  - name: daily
    match: {flag: RUN_STARTED}
    to: [archive]
    mode: digest
    digest: {every: 1h}
"""
NIGHT = 1_800_000_000.0 - 1_800_000_000.0 % 86_400 + 23 * 3600  # 23:00 UTC
NOON = NIGHT - 11 * 3600


def holds(r: Router, e: Event, at: float | None) -> list[tuple[str, str | None]]:
    return [(d.channel, d.hold) for d in r.match(e, at)]


def test_quiet_hours_hold_every_destination_of_a_channel_but_not_the_exceptions() -> None:
    config, _ = parse_config(QUIET, env={})
    r = Router.from_config(config)
    done = event("run_finished_completed_youtube")
    assert holds(r, done, NIGHT) == [
        ("phones#1", '["quiet", "phones#1"]'),
        ("phones#2", '["quiet", "phones#2"]'),
        ("archive", None),
    ]
    assert holds(r, done, NOON) == [("phones#1", None), ("phones#2", None), ("archive", None)]
    assert holds(r, event("run_finished_failed"), NIGHT)[:2] == [
        ("phones#1", None),
        ("phones#2", None),
    ]
    assert holds(r, done, None)[0] == ("phones#1", None)  # no time given: nothing held


def test_a_digest_route_holds_whatever_the_time() -> None:
    config, _ = parse_config(QUIET, env={})
    r = Router.from_config(config)
    started = event("run_started_youtube")
    assert holds(r, started, NOON)[-1] == ("archive", None)  # the first route took archive
    r = Router.from_config(config.model_copy(update={"routes": config.routes[1:]}))
    assert holds(r, started, NOON) == [("archive", '["digest", "daily", "archive"]')]
