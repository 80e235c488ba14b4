"""Match values are checked at load: a typo is an error with its line, never a silent miss."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_config
from relay.events import KNOWN_FLAGS, TERMINAL_STATUSES
from relay.matchers import FLAG_CARRIES, KNOWN_VALUES, MatchSpec

HEAD = """\
auth: {allow_unsigned: true}
agents:
  123e4567-e89b-12d3-a456-789012345678: Shorts cutter
channels:
  a: {type: console}
routes:
  - to: [a]
"""
"""Line 8 is the route's first key below."""


def issues_of(route_keys: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + route_keys, env=env or {})
    return [issue.format("relay.yaml") for issue in caught.value.issues]


def spec_of(route_keys: str) -> MatchSpec | None:
    config, _ = parse_config(HEAD + route_keys, env={})
    return config.routes[0].match


@pytest.mark.parametrize(
    ("route_keys", "expected"),
    [
        (
            "    match: {flag: RUN_FINSHED}\n",
            "relay.yaml:8: routes[0].match.flag: unknown flag 'RUN_FINSHED' "
            "(did you mean 'RUN_FINISHED'?)",
        ),
        (
            "    match: {flag: run_finished}\n",
            "relay.yaml:8: routes[0].match.flag: unknown flag 'run_finished' "
            "(did you mean 'RUN_FINISHED'?)",
        ),
        (
            "    match:\n      status:\n        - failed\n        - partial_completed\n",
            "relay.yaml:11: routes[0].match.status: unknown status 'partial_completed' "
            "(did you mean 'partial_complete'?)",
        ),
        (
            "    not: {flag: RUN_PROGRES}\n",
            "relay.yaml:8: routes[0].not.flag: unknown flag 'RUN_PROGRES' "
            "(did you mean 'RUN_PROGRESS'?)",
        ),
        (
            "    match: {flag: PAUSED}\n",
            "relay.yaml:8: routes[0].match.flag: unknown flag 'PAUSED' (one of: RUN_STARTED, "
            "RUN_PROGRESS, RUN_FINISHED, RUN_STALE, TEST; or {unknown: PAUSED} for a flag the "
            "relay does not know yet)",
        ),
        (
            "    match: {trigger: yotube}\n",
            "relay.yaml:8: routes[0].match.trigger: unknown trigger 'yotube' "
            "(did you mean 'youtube'?)",
        ),
        (
            "    match: {agent: Shorts cuter}\n",
            "relay.yaml:8: routes[0].match.agent: unknown agent 'Shorts cuter' "
            "(did you mean 'Shorts cutter'?)",
        ),
        (
            "    match: {agent: nobody}\n",
            "relay.yaml:8: routes[0].match.agent: unknown agent 'nobody' "
            "(an agent is an id (a UUID) or a name from agents:)",
        ),
        (
            "    match: {agent: 0B7E2A10-5C1D-4F3E-9A8B-6C5D4E3F2A1B}\n",
            "relay.yaml:8: routes[0].match.agent: agent ids are lowercase in webhooks "
            "(did you mean '0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b'?)",
        ),
        (
            "    match: {youtube_channel: '@RickAstleyYT'}\n",
            "relay.yaml:8: routes[0].match.youtube_channel: '@RickAstleyYT' is a handle, but "
            "webhooks carry the channel id ('UC' and 22 letters, digits, '-' or '_'; "
            "YouTube: Settings > Advanced settings)",
        ),
        (
            "    match: {youtube_channel: UCuAXFkgsw1L7xaCfnd5JJO}\n",
            "relay.yaml:8: routes[0].match.youtube_channel: not a YouTube channel id: "
            "'UCuAXFkgsw1L7xaCfnd5JJO' (expected 'UC' and 22 letters, digits, '-' or '_')",
        ),
        (
            "    match: {flag: {unknwn: RUN_STALE}}\n",
            "relay.yaml:8: routes[0].match.flag: a match value is a string, or "
            "{unknown: VALUE} for a value the relay does not know yet",
        ),
    ],
)
def test_a_wrong_match_value_is_an_error_with_its_line(route_keys: str, expected: str) -> None:
    assert issues_of(route_keys) == [expected]


def test_every_wrong_value_of_every_route_at_once() -> None:
    found = issues_of(
        "    match: {flag: [RUN_STARTED, RUN_FINSHED], status: [failed, partial_completed]}\n"
        "    not: {agent: [Shorts cutter, Shorts cuter]}\n"
    )
    assert [line.split(": unknown ")[1].split(" (")[0] for line in found] == [
        "flag 'RUN_FINSHED'",
        "status 'partial_completed'",
        "agent 'Shorts cuter'",
    ]


def test_an_unset_variable_as_a_match_value_is_an_error_not_a_match_all() -> None:
    assert issues_of("    match: {agent: '${VIP_AGENT}'}\n") == [
        "relay.yaml:8: routes[0].match.agent: environment variable VIP_AGENT is not set "
        "(without it this would match any agent)"
    ]
    assert issues_of("    match: {agent: ['${A}', '${B}']}\n") == [
        "relay.yaml:8: routes[0].match.agent[0]: Input should be a valid string "
        "(environment variable A is not set)",
        "relay.yaml:8: routes[0].match.agent[1]: Input should be a valid string "
        "(environment variable B is not set)",
    ]
    config, _ = parse_config(
        HEAD + "    match: {agent: '${VIP_AGENT}'}\n", env={"VIP_AGENT": "Shorts cutter"}
    )
    assert config.routes[0].match == MatchSpec(agent=("Shorts cutter",))


def test_known_values_pass() -> None:
    spec = spec_of(
        "    match:\n"
        "      flag: [RUN_STARTED, RUN_PROGRESS, RUN_FINISHED, TEST]\n"
        "      status: [running, completed, partial_complete, failed, cancelled]\n"
        "      trigger: [youtube, schedule, manual, none]\n"
        "      agent: [Shorts cutter, 123e4567-e89b-12d3-a456-789012345678,\n"
        "              0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b]\n"
        "      youtube_channel: [UCuAXFkgsw1L7xaCfnd5JJOw, UC-_09azAZ-_09azAZ-_09az]\n"
    )
    assert spec is not None and spec.flag == ("RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED", "TEST")


def test_unknown_takes_a_value_as_written() -> None:
    spec = spec_of(
        "    match:\n"
        "      flag: [RUN_FINISHED, {unknown: RUN_STALE}]\n"
        "      status: {unknown: paused}\n"
        "      agent: {unknown: agent-7}\n"
        "      youtube_channel: {unknown: UCxxxxxxxxxxxxxx}\n"
    )
    assert spec == MatchSpec(
        flag=("RUN_FINISHED", "RUN_STALE"),
        status=("paused",),
        agent=("agent-7",),
        youtube_channel=("UCxxxxxxxxxxxxxx",),
    )


def test_the_known_values_are_mosaics() -> None:
    assert KNOWN_VALUES["flag"] == KNOWN_FLAGS
    assert set(KNOWN_VALUES["status"]) == {"running"} | TERMINAL_STATUSES
    assert set(FLAG_CARRIES) <= set(KNOWN_FLAGS)
    for carried in FLAG_CARRIES.values():
        for key, values in carried.items():
            assert values <= set(KNOWN_VALUES[key])


def test_source_values_are_checked_with_a_suggestion() -> None:
    assert issues_of("    match: {source: reconcilled}\n") == [
        "relay.yaml:8: routes[0].match.source: unknown source 'reconcilled' "
        "(did you mean 'reconciled'?)"
    ]
    spec = spec_of("    match: {flag: RUN_STALE, source: [watch, reconciled, webhook]}\n")
    assert spec == MatchSpec(flag=("RUN_STALE",), source=("watch", "reconciled", "webhook"))


API_NAMES = "mosaic: {api_key: mk_test_key_0123456789}\n"


def test_an_agent_name_not_in_agents_is_accepted_only_with_mosaics_names_on() -> None:
    route = "    match: {agent: Long-form editor}\n"
    assert issues_of(route)[0].startswith("relay.yaml:8: routes[0].match.agent: unknown agent")
    config, _ = parse_config(API_NAMES + HEAD + route, env={})
    assert config.routes[0].match == MatchSpec(agent=("Long-form editor",))
    off = "mosaic: {api_key: mk_test_key_0123456789, agent_names: false}\n"
    with pytest.raises(ConfigError, match="unknown agent 'Long-form editor'"):
        parse_config(off + HEAD + route, env={})
    # An id in the wrong case is still an error: it can never be a name.
    upper = "    match: {agent: 0B7E2A10-5C1D-4F3E-9A8B-6C5D4E3F2A1B}\n"
    with pytest.raises(ConfigError, match="agent ids are lowercase"):
        parse_config(API_NAMES + HEAD + upper, env={})
