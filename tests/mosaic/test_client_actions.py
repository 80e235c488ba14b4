"""MosaicClient acting on runs (resume, cancel, start) against FakeMosaic, with a fake clock."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from relay.mosaic import (
    MosaicAuthError,
    MosaicClient,
    MosaicNotFoundError,
    MosaicResponseError,
    MosaicUnavailableError,
)
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic, StartAnswer
from tests.mosaic.conftest import AGENT, FakeTime, make_client

RESUME = "/agent_run/{run_id}/resume"
CANCEL = "/agent_run/{run_id}/cancel"
START = "/agent/{agent_id}/run"
"""Routes, as the fake names them in its faults and (after the method) in its call log."""
VIDEOS = ["https://youtu.be/a", "https://youtu.be/b"]


async def test_resume_and_cancel(fake_mosaic: FakeMosaic, client: MosaicClient) -> None:
    fake_mosaic.add_run("r1", status="failed")

    await client.resume_run("r1")
    assert fake_mosaic.runs["r1"].status == "running"
    await client.cancel_run("r1")
    assert fake_mosaic.runs["r1"].status == "cancelled"
    assert [(c.method, c.path, c.body) for c in fake_mosaic.calls] == [
        ("POST " + RESUME, "/agent_run/r1/resume", {}),
        ("POST " + CANCEL, "/agent_run/r1/cancel", {}),
    ]


@pytest.mark.parametrize("answer", ["run_id", "id", "empty", "no_body"])
async def test_start_run_returns_the_new_runs_id_when_the_answer_has_one(
    fake_mosaic: FakeMosaic, client: MosaicClient, answer: StartAnswer
) -> None:
    fake_mosaic.add_agent(AGENT)
    fake_mosaic.start_answer = answer

    started = await client.start_run(AGENT, video_urls=VIDEOS)

    (run,) = fake_mosaic.runs.values()
    assert started == (run.run_id if answer in ("run_id", "id") else None)
    assert fake_mosaic.calls_for("POST " + START)[0].body == {"video_urls": VIDEOS}


async def test_start_run_on_outputs_with_a_callback(
    fake_mosaic: FakeMosaic, client: MosaicClient
) -> None:
    fake_mosaic.add_agent(AGENT)
    await client.start_run(AGENT, node_render_ids=("out-1",), callback_url="https://h/hook")
    assert fake_mosaic.calls_for("POST " + START)[0].body == {
        "node_render_ids": ["out-1"],
        "callback_url": "https://h/hook",
    }


@pytest.mark.parametrize(
    "inputs",
    [{}, {"video_urls": []}, {"video_urls": VIDEOS, "node_render_ids": ["n"]}],
)
async def test_start_run_needs_one_kind_of_input_before_any_call(
    client: MosaicClient, inputs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="video_urls or node_render_ids"):
        await client.start_run(AGENT, **inputs)
    with pytest.raises(TypeError):
        await client.start_run(AGENT, video_urls="https://youtu.be/a")
    assert client.api_calls == 0


async def test_unknown_runs_and_agents_are_not_found(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    with pytest.raises(MosaicNotFoundError) as caught:
        await client.resume_run("nope")
    assert str(caught.value) == (
        "Mosaic has no such run (HTTP 404 to POST /agent_run/{run_id}/resume: run not found)"
    )
    assert caught.value.status == 404
    with pytest.raises(MosaicNotFoundError, match="no such run"):
        await client.cancel_run("nope")
    with pytest.raises(MosaicNotFoundError, match="no such agent"):
        await client.start_run("nope", video_urls=VIDEOS)
    with pytest.raises(MosaicNotFoundError, match="no such run"):
        await client.resume_run("..")  # names nothing: not asked
    assert (client.api_calls, fake_time.waits) == (3, [])


async def test_other_refusals_carry_mosaics_message_and_are_not_retried(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.add_run("r1", status="completed")
    with pytest.raises(MosaicResponseError) as caught:
        await client.resume_run("r1")
    assert not isinstance(caught.value, MosaicNotFoundError)
    assert str(caught.value) == (
        "Mosaic answered HTTP 409 to POST /agent_run/{run_id}/resume: "
        "run is completed: only failed runs can be resumed"
    )
    fake_mosaic.fail_next(1, status=400, error=f"bad key {DEFAULT_KEY}", path=START)
    fake_mosaic.add_agent(AGENT)
    with pytest.raises(MosaicResponseError, match=r"HTTP 400 to POST .*: bad key \*\*\*$"):
        await client.start_run(AGENT, video_urls=VIDEOS)
    assert (client.api_calls, fake_time.waits) == (2, [])


@pytest.mark.parametrize(("key", "status"), [("mk_wrong_key", 401), ("mk_revoked", 403)])
async def test_a_refused_key_is_an_auth_error_without_the_key(
    session: aiohttp.ClientSession,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
    key: str,
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeMosaic(forbidden_keys=["mk_revoked"]) as mosaic:
        mosaic.add_run("r1", agent_id=AGENT)
        client = make_client(mosaic, session, fake_time, key=key)
        with pytest.raises(MosaicAuthError) as caught:
            await client.cancel_run("r1")
        with pytest.raises(MosaicAuthError):
            await client.start_run(AGENT, video_urls=VIDEOS)
        assert (client.api_calls, fake_time.waits) == (2, [])
        assert mosaic.runs["r1"].status == "running" and len(mosaic.runs) == 1
    assert caught.value.status == status
    assert str(caught.value).startswith(
        f"Mosaic refused the API key: HTTP {status} to POST /agent_run/{{run_id}}/cancel"
    )
    assert key not in str(caught.value) and key not in caplog.text


async def test_rate_limits_and_server_errors_are_retried_with_retry_after(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.add_run("r1", status="failed")
    fake_mosaic.fail_next(1, status=429, retry_after=7, path=RESUME)
    fake_mosaic.fail_next(1, status=500)
    fake_mosaic.fail_next(1, status=503)

    await client.resume_run("r1")

    assert [c.status for c in fake_mosaic.calls_for("POST " + RESUME)] == [429, 500, 503, 200]
    assert fake_time.waits == [7.0, 1.5, 3.0]
    assert fake_mosaic.runs["r1"].status == "running"


async def test_retries_are_bounded(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.add_run("r1")
    fake_mosaic.fail_next(10, status=503)
    with pytest.raises(MosaicUnavailableError) as caught:
        await client.cancel_run("r1")
    assert (caught.value.attempts, caught.value.status) == (4, 503)
    assert sum(fake_time.waits) <= 60.0
    assert fake_mosaic.runs["r1"].status == "running"


async def test_a_start_is_retried_only_when_it_cannot_have_started_a_run(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    fake_mosaic.add_agent(AGENT)
    fake_mosaic.fail_next(1, status=429, retry_after=2)
    fake_mosaic.fail_next(1, status=502)
    fake_mosaic.fail_next(1, status=500)

    with pytest.raises(MosaicUnavailableError) as caught:
        await client.start_run(AGENT, video_urls=VIDEOS)

    assert [c.status for c in fake_mosaic.calls_for("POST " + START)] == [429, 502, 500]
    assert caught.value.status == 500
    assert "may have taken effect: check in Mosaic" in str(caught.value)
    assert fake_time.waits == [2.0, 1.5]


async def test_a_start_that_times_out_is_not_sent_again(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    client = make_client(fake_mosaic, session, fake_time, timeout=0.1)
    fake_mosaic.add_agent(AGENT)
    fake_mosaic.slow_next(5)
    with pytest.raises(MosaicUnavailableError, match=r"no answer within 0\.1s.*may have taken"):
        await client.start_run(AGENT, video_urls=VIDEOS)
    assert (client.api_calls, fake_time.waits) == (1, [])
    await fake_mosaic.wait_for(lambda: fake_mosaic.holding == 1)
    fake_mosaic.release()


async def test_a_resume_that_times_out_is_retried(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    client = make_client(fake_mosaic, session, fake_time, timeout=0.1)
    fake_mosaic.add_run("r1", status="failed")
    fake_mosaic.slow_next(1)
    await client.resume_run("r1")
    assert (client.api_calls, fake_time.waits) == (2, [0.75])
    fake_mosaic.release()


async def test_an_unreachable_mosaic_is_retried_even_for_a_start(
    fake_mosaic: FakeMosaic, client: MosaicClient, fake_time: FakeTime
) -> None:
    await fake_mosaic.go_down(refuse=True)
    with pytest.raises(MosaicUnavailableError, match=r"cannot reach Mosaic") as caught:
        await client.start_run(AGENT, video_urls=VIDEOS)
    assert caught.value.attempts == 4
    assert "may have taken effect" not in str(caught.value)
