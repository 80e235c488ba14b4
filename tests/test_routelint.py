"""Warnings: routes that can never deliver and channels no route uses; the config still loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import load_config

ROOT = Path(__file__).resolve().parent.parent
HEAD = """\
auth: {allow_unsigned: true}
agents:
  123e4567-e89b-12d3-a456-789012345678: Shorts cutter
channels:
  a: {type: console}
  b: {type: console}
routes:
"""
"""Routes start on line 8."""


def warnings_of(routes: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "relay.yaml"
    path.write_text(HEAD + routes)
    loaded = load_config(path, env={})
    return [warning.format(loaded.source) for warning in loaded.warnings]


BOTH = "    to: [a, b]\n"


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        (
            "  - match: {flag: RUN_STARTED, status: failed}\n" + BOTH,
            "relay.yaml:8: warning: routes[0].match: can never match: RUN_STARTED events "
            "carry status running",
        ),
        (
            "  - name: finished-running\n    match: {flag: RUN_FINISHED, status: running}\n" + BOTH,
            "relay.yaml:9: warning: routes[0].match: can never match: RUN_FINISHED events carry "
            "status one of cancelled, completed, failed, partial_complete",
        ),
        (
            "  - match: {flag: TEST, status: [failed, completed]}\n" + BOTH,
            "relay.yaml:8: warning: routes[0].match: can never match: TEST events carry "
            "status running",
        ),
        (
            "  - match: {flag: TEST, trigger: youtube}\n" + BOTH,
            "relay.yaml:8: warning: routes[0].match: can never match: TEST events carry "
            "trigger none",
        ),
        (
            "  - match: {flag: [TEST, RUN_FINISHED], status: failed}\n" + BOTH,
            "relay.yaml:8: warning: routes[0].match.flag: flag TEST can never match here: "
            "TEST events carry status running",
        ),
        (
            "  - match: {trigger: schedule, youtube_channel: UCuAXFkgsw1L7xaCfnd5JJOw}\n" + BOTH,
            "relay.yaml:8: warning: routes[0].match.youtube_channel: can never match: events "
            "have a youtube_channel only when their trigger is youtube",
        ),
        (
            "  - match: {flag: RUN_FINISHED, agent: Shorts cutter}\n"
            "    not: {agent: 123e4567-e89b-12d3-a456-789012345678}\n" + BOTH,
            "relay.yaml:9: warning: routes[0].not: can never match: 'not' excludes every event "
            "the match includes",
        ),
        (
            "  - match: {flag: RUN_STARTED}\n    not: {status: running}\n" + BOTH,
            "relay.yaml:9: warning: routes[0].not: can never match: 'not' excludes every event "
            "the match includes",
        ),
    ],
)
def test_a_route_that_can_never_match(routes: str, expected: str, tmp_path: Path) -> None:
    assert warnings_of(routes, tmp_path) == [expected]


def test_a_channel_no_route_uses(tmp_path: Path) -> None:
    assert warnings_of("  - to: [a]\n", tmp_path) == [
        "relay.yaml:6: warning: channels.b: channel 'b' is not used by any route"
    ]


@pytest.mark.parametrize(
    ("stop", "later"),
    [
        ("{}", "{flag: RUN_FINISHED}"),
        ("{flag: RUN_FINISHED}", "{flag: RUN_FINISHED, status: failed, agent: Shorts cutter}"),
        ("{flag: [RUN_FINISHED, RUN_STARTED]}", "{flag: RUN_FINISHED}"),
        ("{agent: Shorts cutter}", "{agent: 123e4567-e89b-12d3-a456-789012345678}"),
        ("{status: running}", "{flag: RUN_STARTED}"),
        ("{flag: TEST}", "{flag: TEST, agent: Shorts cutter}"),
    ],
)
def test_a_route_after_a_stop_route_that_takes_all_its_events(
    stop: str, later: str, tmp_path: Path
) -> None:
    routes = f"  - name: first\n    match: {stop}\n    to: [a]\n    stop: true\n"
    routes += f"  - name: later\n    match: {later}\n    to: [b]\n"
    assert warnings_of(routes, tmp_path) == [
        "relay.yaml:12: warning: routes[1]: never reached: every event it matches goes to the "
        "earlier route 'first', which has stop: true"
    ]


@pytest.mark.parametrize(
    ("stop", "later"),
    [
        ("match: {flag: RUN_FINISHED, status: failed}", "match: {flag: RUN_FINISHED}"),
        ("match: {flag: RUN_FINISHED}", "match: {status: failed}"),
        ("match: {agent: Shorts cutter}", "match: {flag: RUN_FINISHED}"),
        ("match: {}", "match: {flag: TEST}"),  # a catch-all does not take TEST events
        (
            "match: {agent: Shorts cutter}\n    not: {flag: RUN_PROGRESS}",
            "match: {flag: RUN_PROGRESS, agent: Shorts cutter}",
        ),
    ],
)
def test_a_route_an_earlier_stop_route_does_not_cover(
    stop: str, later: str, tmp_path: Path
) -> None:
    routes = f"  - name: first\n    {stop}\n    to: [a]\n    stop: true\n"
    routes += f"  - name: later\n    {later}\n    to: [b]\n"
    assert warnings_of(routes, tmp_path) == []


def test_a_stop_route_whose_not_spares_the_later_routes_events(tmp_path: Path) -> None:
    routes = (
        "  - name: vip\n    match: {agent: Shorts cutter}\n    not: {flag: RUN_PROGRESS}\n"
        "    to: [a]\n    stop: true\n"
        "  - name: vip-failures\n    match: {agent: Shorts cutter, flag: RUN_FINISHED}\n"
        "    to: [b]\n"
    )
    assert warnings_of(routes, tmp_path) == [
        "relay.yaml:13: warning: routes[1]: never reached: every event it matches goes to the "
        "earlier route 'vip', which has stop: true"
    ]


def test_many_routes_are_checked_against_stop_routes_through_an_index(tmp_path: Path) -> None:
    routes = "".join(
        f"  - match: {{agent: {i:08x}-0000-4000-8000-000000000000}}\n    to: [a, b]\n"
        "    stop: true\n"
        for i in range(300)
    )
    routes += "  - match: {agent: 0000012b-0000-4000-8000-000000000000, flag: TEST}\n"
    routes += "    to: [a]\n"
    assert warnings_of(routes, tmp_path) == []
    routes += "  - match: {agent: 0000012b-0000-4000-8000-000000000000, status: failed}\n"
    routes += "    to: [a]\n"
    assert [w.split(": warning: ")[1] for w in warnings_of(routes, tmp_path)] == [
        "routes[301]: never reached: every event it matches goes to the earlier route "
        "routes[299], which has stop: true"
    ]


@pytest.mark.parametrize(
    "path",
    [ROOT / "relay.yaml.example", *sorted((ROOT / "config").glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_the_shipped_configs_have_no_warnings(path: Path) -> None:
    env = {
        name: "x"
        for name in (
            "MOSAIC_WEBHOOK_SECRET",
            "SLACK_BOT_TOKEN",
            "TELEGRAM_BOT_TOKEN",
            "SMTP_PASSWORD",
        )
    }
    env["DISCORD_WEBHOOK_URL"] = "https://discord.com/api/webhooks/1/x"
    env["NTFY_URL"] = env["MATRIX_URL"] = "ntfy://x"
    assert load_config(path, env=env).warnings == ()


def test_run_stale_carries_status_running_and_comes_from_the_watch(tmp_path: Path) -> None:
    routes = (
        "  - match: {flag: RUN_STALE, status: failed}\n"
        + BOTH
        + "  - match: {flag: RUN_STALE, source: webhook}\n"
        + BOTH
        + "  - match: {flag: [RUN_STALE, RUN_FINISHED], status: running}\n"
        + BOTH
    )
    assert warnings_of(routes, tmp_path) == [
        "relay.yaml:8: warning: routes[0].match: can never match: RUN_STALE events carry "
        "status running",
        "relay.yaml:10: warning: routes[1].match: can never match: RUN_STALE events carry "
        "source watch",
        "relay.yaml:12: warning: routes[2].match.flag: flag RUN_FINISHED can never match here: "
        "RUN_FINISHED events carry status one of cancelled, completed, failed, partial_complete",
    ]


def test_an_agent_only_mosaic_can_name_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(
        "mosaic: {api_key: mk_test_key_0123456789}\n"
        + HEAD
        + "  - match: {agent: [Shorts cutter, Long-form editor]}\n"
        + BOTH
    )
    loaded = load_config(path, env={})
    assert [warning.format(loaded.source) for warning in loaded.warnings] == [
        "relay.yaml:9: warning: routes[0].match.agent[1]: agent 'Long-form editor' is not in "
        "agents: and not an id: it is resolved through Mosaic's API at run time (until its "
        "name is known, it matches nothing)"
    ]
