"""MosaicClient against FakeMosaic, with an injected clock and sleep (no real waiting)."""

from __future__ import annotations

import email.utils
import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from relay.mosaic import (
    Agent,
    MosaicAuthError,
    MosaicClient,
    MosaicResponseError,
    MosaicUnavailableError,
    RetryPolicy,
    Run,
)
from relay.mosaic.client import LOGGER_NAME, backoff_delay, retry_after_seconds
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic
from tests.mosaic.conftest import AGENT, T0, FakeTime, make_client


def seed_runs(mosaic: FakeMosaic, n: int, *, agent_id: str = AGENT) -> list[str]:
    """``n`` runs one minute apart from T0; returns their ids newest first."""
    mosaic.add_agent(agent_id, "Shorts cutter")
    for i in range(n):
        mosaic.add_run(f"run-{i:03d}", agent_id=agent_id, created_at=T0 + timedelta(minutes=i))
    return [f"run-{i:03d}" for i in reversed(range(n))]


async def test_whoami(client: MosaicClient) -> None:
    me = await client.whoami()
    assert (me.organization_name, me.organization_slug) == ("Fake Studio", "fake-studio")
    assert me.last_used_at is not None and me.last_used_at.tzinfo is not None
    assert client.api_calls == 1


async def test_agent_and_unknown_agent(fake_mosaic: FakeMosaic, client: MosaicClient) -> None:
    fake_mosaic.add_agent(AGENT, "Shorts cutter", created_at=T0)
    agent = await client.agent(AGENT)
    assert agent == Agent(
        id=AGENT,
        name="Shorts cutter",
        description="",
        visibility="private",
        created_at=T0,
        updated_at=agent.updated_at if agent else None,
    )
    assert await client.agent("nope") is None
    assert [c.status for c in fake_mosaic.calls] == [200, 404]


async def test_ids_are_one_path_segment(fake_mosaic: FakeMosaic, client: MosaicClient) -> None:
    fake_mosaic.add_agent("a/runs", "Slashed")
    found = await client.agent("a/runs")
    assert found is not None and found.name == "Slashed"
    assert fake_mosaic.calls[-1].path == "/agent/a%2Fruns"
    calls = len(fake_mosaic.calls)
    for odd in ("", ".", ".."):
        assert await client.agent(odd) is None
        assert await client.run(odd) is None
    assert len(fake_mosaic.calls) == calls


async def test_run_and_unknown_run(fake_mosaic: FakeMosaic, client: MosaicClient) -> None:
    fake_mosaic.add_run(
        "r1",
        agent_id=AGENT,
        created_at=T0,
        status="failed",
        status_message="out of credits",
        needs_credits=True,
        errors=[{"node": "n1", "message": "no credits"}],
        node_status_counts={"completed": 2, "in_progress": 0, "failed": 1},
        outputs=[{"id": "o1", "video_url": "https://cdn.example/o1.mp4"}],
    )
    run = await client.run("r1")
    assert isinstance(run, Run)
    assert (run.run_id, run.agent_id, run.status, run.status_message) == (
        "r1",
        AGENT,
        "failed",
        "out of credits",
    )
    assert (run.needs_credits, run.errors) == (True, [{"node": "n1", "message": "no credits"}])
    assert (run.counts.completed, run.counts.failed, run.is_terminal) == (2, 1, True)
    assert run.started_at == T0
    assert run.outputs[0].video_url == "https://cdn.example/o1.mp4"
    assert (run.updated_at, run.triggered_by) == (None, None)
    assert await client.run("nope") is None


async def test_odd_fields_are_read_leniently(fake_mosaic: FakeMosaic, client: MosaicClient) -> None:
    fake_mosaic.add_run(
        "r1",
        created_at=T0,
        node_status_counts={"completed": -1},
        outputs=["junk", {"id": "o1", "video_url": 5}],
        errors="not a list",
        needs_credits="perhaps",
    )
    fake_mosaic.runs["r1"].triggered_by = {"type": "youtube", "video_title": "t", "new": 1}
    run = await client.run("r1")
    assert run is not None
    assert (run.node_status_counts, run.errors, run.needs_credits) == (None, [], None)
    assert [(o.id, o.video_url) for o in run.outputs] == [("o1", None)]
    [summary] = [s async for s in client.runs(created_from=T0)]
    assert summary.triggered_by is not None and summary.triggered_by.type == "youtube"


async def test_runs_follow_every_page(fake_mosaic: FakeMosaic, client: MosaicClient) -> None:
    newest_first = seed_runs(fake_mosaic, 23)
    listed = [run async for run in client.runs(created_from=T0, page_size=10)]
    assert [run.run_id for run in listed] == newest_first
    assert client.api_calls == 3
    assert [c.body.get("limit") for c in fake_mosaic.calls] == ["10", "10", "10"]
    assert ["cursor" in c.body for c in fake_mosaic.calls] == [False, True, True]
    assert listed[0].updated_at == T0 + timedelta(minutes=22)


async def test_runs_default_to_pages_of_100(fake_mosaic: FakeMosaic, client: MosaicClient) -> None:
    seed_runs(fake_mosaic, 201)
    assert len([run async for run in client.runs(created_from=T0)]) == 201
    assert client.api_calls == 3


async def test_runs_filters_reach_mosaic(fake_mosaic: FakeMosaic, client: MosaicClient) -> None:
    other = "agent-other"
    fake_mosaic.add_run("old", agent_id=AGENT, created_at=T0 - timedelta(days=1), status="failed")
    fake_mosaic.add_run("a", agent_id=AGENT, created_at=T0, status="running")
    fake_mosaic.add_run("b", agent_id=other, created_at=T0 + timedelta(minutes=1), status="failed")
    fake_mosaic.add_run(
        "c", agent_id=AGENT, created_at=T0 + timedelta(minutes=2), status="completed"
    )

    async def ids(**filters: Any) -> list[str]:
        return [run.run_id async for run in client.runs(**filters)]

    assert await ids(created_from=T0) == ["c", "b", "a"]
    assert await ids(created_from=T0, status=["running", "failed"]) == ["b", "a"]
    assert await ids(created_from=T0, status="running, completed") == ["c", "a"]
    assert await ids(created_from=T0 - timedelta(days=2), agent_id=AGENT) == ["c", "a", "old"]
    to = T0 + timedelta(minutes=1)
    assert await ids(created_from=T0, created_to=to) == ["b", "a"]
    berlin = datetime(2025, 1, 10, 15, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert await ids(created_from=berlin) == ["c", "b", "a"]
    sent = fake_mosaic.calls[-2].body
    assert sent == {
        "limit": "100",
        "from": "2025-01-10T14:30:00Z",
        "to": "2025-01-10T14:31:00Z",
    }
    assert fake_mosaic.calls[-1].body["from"] == "2025-01-10T14:30:00Z"


async def test_bad_arguments_are_refused_before_any_call(client: MosaicClient) -> None:
    with pytest.raises(ValueError, match="created_from needs a timezone"):
        await client.runs_page(created_from=datetime(2025, 1, 10))
    with pytest.raises(ValueError, match="created_to needs a timezone"):
        await client.runs_page(created_from=T0, created_to=datetime(2025, 1, 10))
    for size in (0, 101):
        with pytest.raises(ValueError, match="page_size"):
            await client.runs_page(created_from=T0, page_size=size)
    assert client.api_calls == 0


async def test_a_cursor_loop_stops_the_listing(
    fake_mosaic: FakeMosaic, client: MosaicClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mosaic.add_run("r1", created_at=T0)
    summary = fake_mosaic.runs["r1"].as_summary()

    def looping(query: dict[str, str]) -> dict[str, Any]:
        return {"runs": [summary], "next_cursor": "again" if "cursor" not in query else "loop"}

    monkeypatch.setattr(fake_mosaic, "_list", looping)
    listed: list[str] = []
    with pytest.raises(MosaicResponseError, match="cursor twice"):
        async for run in client.runs(created_from=T0):
            listed.append(run.run_id)
    assert listed == ["r1", "r1", "r1"]
    assert client.api_calls == 3


async def test_unreadable_items_are_skipped_and_counted(
    fake_mosaic: FakeMosaic, client: MosaicClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake_mosaic.add_run("good", created_at=T0)
    fake_mosaic.add_run("bad", created_at=T0 + timedelta(minutes=1), status=None)
    page = await client.runs_page(created_from=T0)
    assert ([r.run_id for r in page.runs], page.skipped, page.next_cursor) == (["good"], 1, None)
    assert "cannot read: status" in caplog.text


async def test_rate_limit_honours_retry_after_seconds(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.fail_next(2, status=429, retry_after=7)
    assert (await client.whoami()).organization_slug == "fake-studio"
    assert fake_time.waits == [7.0, 7.0]
    assert client.api_calls == 3
    assert [c.status for c in fake_mosaic.calls] == [429, 429, 200]


async def test_rate_limit_honours_retry_after_date(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    when = email.utils.format_datetime(T0 + timedelta(seconds=30), usegmt=True)
    fake_mosaic.fail_next(1, status=429, retry_after=when)
    await client.whoami()
    assert fake_time.waits == [30.0]


async def test_rate_limit_without_retry_after_backs_off(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.fail_next(3, status=429)
    await client.whoami()
    assert fake_time.waits == [0.75, 1.5, 3.0]


async def test_jitter_spreads_waits_between_half_and_all(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    for rng, expected in ((lambda: 0.0, [0.5, 1.0, 2.0]), (lambda: 1.0, [1.0, 2.0, 4.0])):
        fake_time.waits.clear()
        fake_mosaic.fail_next(3, status=503)
        await make_client(fake_mosaic, session, fake_time, rng=rng).whoami()
        assert fake_time.waits == expected


async def test_server_error_then_success(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.add_run("r1")
    fake_mosaic.fail_next(1, status=500, path="/agent_run/{run_id}")
    run = await client.run("r1")
    assert run is not None and run.run_id == "r1"
    assert (fake_time.waits, client.api_calls) == ([0.75], 2)


async def test_a_page_is_retried_in_the_middle_of_a_listing(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    newest_first = seed_runs(fake_mosaic, 5)
    pages = client.runs(created_from=T0, page_size=2)
    first = [await anext(pages), await anext(pages)]
    fake_mosaic.fail_next(1, status=502, path="/agent_runs")
    rest = [run async for run in pages]
    assert [r.run_id for r in first + rest] == newest_first
    assert (client.api_calls, fake_time.waits) == (4, [0.75])


async def test_retries_exhausted_is_a_clear_error(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.fail_next(10, status=503)
    with pytest.raises(MosaicUnavailableError) as caught:
        await client.whoami()
    error = caught.value
    assert (error.status, error.attempts, error.retry_after) == (503, 4, None)
    assert str(error) == "Mosaic API GET /whoami: gave up after 4 tries in 5.2s (last: HTTP 503)"
    assert fake_time.waits == [0.75, 1.5, 3.0]
    assert client.api_calls == 4


async def test_a_retry_after_beyond_the_budget_gives_up_at_once(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.fail_next(1, status=429, retry_after=600)
    with pytest.raises(MosaicUnavailableError) as caught:
        await client.whoami()
    assert (caught.value.attempts, caught.value.retry_after, caught.value.status) == (1, 600, 429)
    assert "Retry-After 600s" in str(caught.value)
    assert fake_time.waits == []


async def test_the_time_budget_bounds_the_backoff(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    policy = RetryPolicy(attempts=10, initial=1.0, maximum=8.0, budget=5.0)
    client = make_client(fake_mosaic, session, fake_time, retry=policy)
    fake_mosaic.fail_next(10, status=500)
    with pytest.raises(MosaicUnavailableError) as caught:
        await client.whoami()
    assert fake_time.waits == [0.75, 1.5]
    assert caught.value.attempts == 3


@pytest.mark.parametrize(
    ("key", "status"), [("mk_wrong_key", 401), ("not-a-mosaic-key", 401), ("mk_revoked", 403)]
)
async def test_a_refused_key_is_an_auth_error_without_the_key(
    session: aiohttp.ClientSession,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
    key: str,
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeMosaic(forbidden_keys=["mk_revoked"]) as mosaic:
        client = make_client(mosaic, session, fake_time, key=key)
        with pytest.raises(MosaicAuthError) as caught:
            await client.runs_page(created_from=T0)
        assert client.api_calls == 1
        assert fake_time.waits == []
    error = caught.value
    assert error.status == status
    assert str(error).startswith(f"Mosaic refused the API key: HTTP {status} to GET /agent_runs: ")
    for text in (str(error), repr(error), repr(error.args), repr(client)):
        assert key not in text
    assert key not in caplog.text
    assert all(key not in record.getMessage() for record in caplog.records)


async def test_the_key_is_masked_in_its_logger_and_in_error_texts(
    fake_mosaic: FakeMosaic, client: MosaicClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger(LOGGER_NAME).warning("key is %s", DEFAULT_KEY)
    assert DEFAULT_KEY not in caplog.text and "key is ***" in caplog.text
    fake_mosaic.fail_next(1, status=400, error=f"bad key {DEFAULT_KEY} in request")
    with pytest.raises(MosaicResponseError) as caught:
        await client.whoami()
    assert str(caught.value) == "Mosaic answered HTTP 400 to GET /whoami: bad key *** in request"
    assert repr(client) == (
        f"MosaicClient(base_url={fake_mosaic.url!r}, api_key=SecretStr('**********'))"
    )


async def test_other_statuses_are_not_retried(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.fail_next(1, status=400, error="limit must be a whole number")
    with pytest.raises(MosaicResponseError, match="HTTP 400 to GET /agent_runs: limit must"):
        await client.runs_page(created_from=T0)
    fake_mosaic.fail_next(1, status=404, path="/agent_runs")
    with pytest.raises(MosaicResponseError, match="HTTP 404 to GET /agent_runs"):
        await client.runs_page(created_from=T0)
    fake_mosaic.fail_next(1, status=302)
    with pytest.raises(MosaicResponseError, match="HTTP 302 to GET /whoami"):
        await client.whoami()
    assert (client.api_calls, fake_time.waits) == (3, [])


async def test_a_slow_answer_times_out_is_retried_then_fails(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    client = make_client(fake_mosaic, session, fake_time, timeout=0.1)
    fake_mosaic.slow_next(10)
    with pytest.raises(MosaicUnavailableError) as caught:
        await client.whoami()
    assert (caught.value.status, caught.value.attempts) == (None, 4)
    assert "no answer within 0.1s" in str(caught.value)
    assert fake_time.waits == [0.75, 1.5, 3.0]
    await fake_mosaic.wait_for(lambda: fake_mosaic.holding == 4)
    fake_mosaic.release()


async def test_a_slow_answer_then_a_quick_one(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    client = make_client(fake_mosaic, session, fake_time, timeout=0.1)
    fake_mosaic.slow_next(1)
    assert (await client.whoami()).organization_slug == "fake-studio"
    assert (client.api_calls, fake_time.waits) == (2, [0.75])
    fake_mosaic.release()


async def test_an_unreachable_mosaic_is_retried_then_fails(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    await fake_mosaic.go_down(refuse=True)
    with pytest.raises(MosaicUnavailableError, match=r"cannot reach Mosaic \(Client"):
        await client.whoami()
    assert client.api_calls == 4


async def test_a_body_that_is_not_the_documented_shape(
    fake_mosaic: FakeMosaic, client: MosaicClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mosaic.add_agent(AGENT)
    monkeypatch.setattr(fake_mosaic, "_list", lambda query: {"items": []})
    with pytest.raises(MosaicResponseError, match="no 'runs' list"):
        await client.runs_page(created_from=T0)
    monkeypatch.setattr(fake_mosaic, "_list", lambda query: {"runs": [], "next_cursor": 3})
    with pytest.raises(MosaicResponseError, match="not a string"):
        await client.runs_page(created_from=T0)
    fake_mosaic.agents[AGENT].as_api = lambda: {"agent": "x"}  # type: ignore[method-assign]
    with pytest.raises(MosaicResponseError, match="no 'agent' object"):
        await client.agent(AGENT)


async def test_an_owned_session_is_closed_and_a_given_one_is_not(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    async with make_client(fake_mosaic, None, fake_time) as owner:
        await owner.whoami()
        owned = owner._session
    assert owned is not None and owned.closed
    async with make_client(fake_mosaic, session, fake_time) as borrower:
        await borrower.whoami()
    assert not session.closed


def test_retry_after_values() -> None:
    now = T0.timestamp()
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(" 0 ", now) == 0.0
    assert retry_after_seconds("Fri, 10 Jan 2025 14:31:00 GMT", now) == 60.0
    assert retry_after_seconds("Fri, 10 Jan 2025 14:00:00 GMT", now) == 0.0
    for unreadable in (None, "", "-1", "1.5", "soon", "Fri, 99 Jan 2025"):
        assert retry_after_seconds(unreadable, now) is None


def test_backoff_doubles_up_to_the_maximum() -> None:
    policy = RetryPolicy(attempts=10, initial=1.0, maximum=8.0)
    assert [backoff_delay(n, policy, lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(initial=10.0, maximum=1.0)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        MosaicClient(" ")
