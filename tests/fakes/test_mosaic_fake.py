"""FakeMosaic driven through plain aiohttp requests."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.fakes.fixtures import clear_proxy_env
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic, StartAnswer, iso

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 1, 10, 14, 30, tzinfo=UTC)
AGENT = "123e4567-e89b-12d3-a456-789012345678"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


Answer = tuple[int, Any, CIMultiDictProxy[str]]


async def get(
    session: aiohttp.ClientSession,
    mosaic: FakeMosaic,
    path: str,
    params: dict[str, str] | None = None,
    *,
    key: str | None = DEFAULT_KEY,
) -> Answer:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with session.get(f"{mosaic.url}{path}", params=params, headers=headers) as response:
        return response.status, await response.json(), response.headers


def seed_runs(mosaic: FakeMosaic, n: int, *, agent_id: str = AGENT) -> list[str]:
    """``n`` runs one minute apart from T0; returns their ids newest first."""
    mosaic.add_agent(agent_id, "Shorts cutter")
    ids = [
        mosaic.add_run(
            f"run-{i:03d}", agent_id=agent_id, created_at=T0 + timedelta(minutes=i)
        ).run_id
        for i in range(n)
    ]
    return ids[::-1]


async def list_all(
    session: aiohttp.ClientSession, mosaic: FakeMosaic, params: dict[str, str]
) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        status, body, _ = await get(session, mosaic, "/agent_runs", query)
        assert status == 200, body
        seen += [run["run_id"] for run in body["runs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize(
    ("key", "status", "error"),
    [
        (None, 401, "missing API key"),
        ("xoxb-not-mosaic", 401, "malformed API key"),
        ("mk_", 401, "malformed API key"),
        ("mk_unknown_key", 401, "invalid API key"),
        ("mk_forbidden", 403, "this API key has no access"),
    ],
)
async def test_keys_are_checked(
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    key: str | None,
    status: int,
    error: str,
) -> None:
    clear_proxy_env(monkeypatch)
    async with FakeMosaic(forbidden_keys=["mk_forbidden"]) as mosaic:
        mosaic.add_run("r1")
        for path in ("/whoami", "/agent_run/r1", "/agent_runs"):
            answer = await get(session, mosaic, path, key=key)
            assert (answer[0], answer[1]["error"].split(":")[0]) == (status, error)
        assert all(c.headers.get("Authorization") in (None, "<redacted>") for c in mosaic.calls)
        assert DEFAULT_KEY not in repr(mosaic.calls)


async def test_bearer_scheme_is_required(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Token {DEFAULT_KEY}"}
    async with session.get(f"{fake_mosaic.url}/whoami", headers=headers) as response:
        assert (response.status, (await response.json())["error"][:17]) == (
            401,
            "malformed API key",
        )


async def test_whoami(session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    async with FakeMosaic(clock=lambda: T0) as mosaic:
        status, body, _ = await get(session, mosaic, "/whoami")
    assert status == 200
    assert set(body) == {
        "organization_id",
        "organization_name",
        "organization_slug",
        "created_at",
        "last_used_at",
    }
    assert body["last_used_at"] == "2025-01-10T14:30:00Z"


async def test_agent_and_unknown_agent(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.add_agent(AGENT, "Shorts cutter", description="cuts", created_at=T0)
    status, body, _ = await get(session, fake_mosaic, f"/agent/{AGENT}")
    assert status == 200
    assert set(body) == {"agent", "agent_nodes", "connections"}
    assert body["agent"]["id"] == AGENT
    assert (body["agent"]["name"], body["agent"]["description"]) == ("Shorts cutter", "cuts")
    assert body["agent"]["created_at"] == "2025-01-10T14:30:00Z"
    assert (await get(session, fake_mosaic, "/agent/nope"))[:2] == (
        404,
        {"error": "agent not found"},
    )
    fake_mosaic.remove_agent(AGENT)
    assert (await get(session, fake_mosaic, f"/agent/{AGENT}"))[0] == 404


async def test_run_has_the_documented_fields_only(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.add_run(
        "r1", agent_id=AGENT, created_at=T0, status="failed", status_message="boom",
        needs_credits=True, errors=[{"node": "n1"}],
    )  # fmt: skip
    status, body, _ = await get(session, fake_mosaic, "/agent_run/r1")
    assert status == 200
    assert set(body) == {
        "agent_id", "started_at", "status", "status_message", "needs_credits", "errors",
        "node_status_counts", "inputs", "outputs",
    }  # fmt: skip
    assert (body["agent_id"], body["status"], body["status_message"]) == (AGENT, "failed", "boom")
    assert (body["needs_credits"], body["errors"]) == (True, [{"node": "n1"}])
    assert body["started_at"] == "2025-01-10T14:30:00Z"
    assert (await get(session, fake_mosaic, "/agent_run/nope"))[:2] == (
        404,
        {"error": "run not found"},
    )


async def test_listing_shape_order_and_default_limit(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    newest_first = seed_runs(fake_mosaic, 30)
    status, body, _ = await get(session, fake_mosaic, "/agent_runs")
    assert status == 200
    assert [r["run_id"] for r in body["runs"]] == newest_first[:25]
    assert body["next_cursor"] is not None
    assert set(body["runs"][0]) == {
        "run_id", "agent_id", "status", "status_message", "started_at", "updated_at",
        "node_status_counts", "inputs", "outputs", "triggered_by",
    }  # fmt: skip
    assert "needs_credits" not in body["runs"][0]


async def test_paging_visits_every_run_once(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    newest_first = seed_runs(fake_mosaic, 23)
    assert await list_all(session, fake_mosaic, {"limit": "5"}) == newest_first
    _, body, _ = await get(session, fake_mosaic, "/agent_runs", {"limit": "100"})
    assert (len(body["runs"]), body["next_cursor"]) == (23, None)


async def test_runs_added_while_paging_neither_repeat_nor_shift(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    newest_first = seed_runs(fake_mosaic, 6)
    _, first, _ = await get(session, fake_mosaic, "/agent_runs", {"limit": "3"})
    fake_mosaic.add_run("newer", agent_id=AGENT, created_at=T0 + timedelta(hours=1))
    query = {"limit": "3", "cursor": first["next_cursor"]}
    _, second, _ = await get(session, fake_mosaic, "/agent_runs", query)
    pages = [r["run_id"] for r in first["runs"] + second["runs"]]
    assert pages == newest_first


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 100"),
        ({"limit": "101"}, "limit must be a whole number from 1 to 100"),
        ({"limit": "ten"}, "limit must be a whole number from 1 to 100"),
        ({"limit": "-1"}, "limit must be a whole number from 1 to 100"),
        ({"cursor": "not-a-cursor"}, "invalid cursor"),
        ({"cursor": "eyJ2IjogMn0"}, "invalid cursor"),
        ({"status": "running,done"}, "unknown status 'done'"),
        ({"from": "yesterday"}, "from is not an ISO 8601 time"),
        ({"to": "2025-13-01T00:00:00Z"}, "to is not an ISO 8601 time"),
        ({"from": "2025-01-10T14:30:00"}, "from needs a timezone"),
    ],
)
async def test_bad_listing_queries_are_400(
    fake_mosaic: FakeMosaic,
    session: aiohttp.ClientSession,
    params: dict[str, str],
    error: str,
) -> None:
    status, body, _ = await get(session, fake_mosaic, "/agent_runs", params)
    assert status == 400
    assert body["error"].startswith(error)


async def test_listing_filters(fake_mosaic: FakeMosaic, session: aiohttp.ClientSession) -> None:
    other = "agent-other"
    fake_mosaic.add_run(
        "old", agent_id=AGENT, created_at=T0 - timedelta(days=1), status="completed"
    )
    fake_mosaic.add_run("a", agent_id=AGENT, created_at=T0, status="running")
    fake_mosaic.add_run("b", agent_id=other, created_at=T0 + timedelta(minutes=1), status="failed")
    fake_mosaic.add_run(
        "c", agent_id=AGENT, created_at=T0 + timedelta(minutes=2), status="cancelled"
    )

    async def ids(**params: str) -> list[str]:
        status, body, _ = await get(session, fake_mosaic, "/agent_runs", params)
        assert status == 200, body
        return [r["run_id"] for r in body["runs"]]

    assert await ids() == ["c", "b", "a", "old"]
    assert await ids(status="running,failed") == ["b", "a"]
    assert await ids(status="completed") == ["old"]
    assert await ids(**{"from": iso(T0)}) == ["c", "b", "a"]
    assert await ids(**{"from": "2025-01-10T15:30:00+01:00"}) == ["c", "b", "a"]
    assert await ids(**{"to": iso(T0 + timedelta(minutes=1))}) == ["b", "a", "old"]
    assert await ids(agent_id=AGENT) == ["c", "a", "old"]
    assert await ids(agent_id=AGENT, status="running,cancelled", **{"from": iso(T0)}) == ["c", "a"]


async def test_runs_of_one_agent(fake_mosaic: FakeMosaic, session: aiohttp.ClientSession) -> None:
    seed_runs(fake_mosaic, 3)
    fake_mosaic.add_run("elsewhere", agent_id="agent-other", created_at=T0)
    status, body, _ = await get(session, fake_mosaic, f"/agent/{AGENT}/runs", {"limit": "2"})
    assert status == 200
    assert [r["run_id"] for r in body["runs"]] == ["run-002", "run-001"]
    query = {"cursor": body["next_cursor"], "agent_id": "agent-other"}
    _, rest, _ = await get(session, fake_mosaic, f"/agent/{AGENT}/runs", query)
    assert ([r["run_id"] for r in rest["runs"]], rest["next_cursor"]) == (["run-000"], None)
    assert (await get(session, fake_mosaic, "/agent/nope/runs"))[0] == 404


async def test_update_run_moves_updated_at_by_the_clock(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proxy_env(monkeypatch)
    now = [T0]
    async with FakeMosaic(clock=lambda: now[0]) as mosaic:
        record = mosaic.add_run("r1")
        assert (record.created_at, record.updated_at) == (T0, T0)
        now[0] = T0 + timedelta(minutes=7)
        mosaic.update_run("r1", status="completed", node_status_counts={"completed": 4})
        _, body, _ = await get(session, mosaic, "/agent_runs")
        [summary] = body["runs"]
        assert (summary["status"], summary["updated_at"]) == ("completed", "2025-01-10T14:37:00Z")
        assert summary["started_at"] == "2025-01-10T14:30:00Z"
        mosaic.update_run("r1", updated_at=T0 + timedelta(hours=1))
        assert mosaic.runs["r1"].updated_at == T0 + timedelta(hours=1)
        with pytest.raises(TypeError):
            mosaic.update_run("r1", colour="blue")
        with pytest.raises(ValueError, match="timezone-aware"):
            mosaic.add_run("r2", created_at=datetime(2025, 1, 1))


async def test_calls_are_recorded_with_route_path_and_query(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.add_run("r1", agent_id=AGENT)
    await get(session, fake_mosaic, "/agent_run/r1")
    await get(session, fake_mosaic, "/agent_runs", {"limit": "10", "status": "running"})
    await get(session, fake_mosaic, "/agent/x/y/z")
    assert [(c.method, c.path, c.body, c.status) for c in fake_mosaic.calls] == [
        ("GET /agent_run/{run_id}", "/agent_run/r1", {}, 200),
        ("GET /agent_runs", "/agent_runs", {"limit": "10", "status": "running"}, 200),
        ("GET /agent/x/y/z", "/agent/x/y/z", {}, 404),
    ]
    assert len(fake_mosaic.calls_for("GET /agent_runs")) == 1


async def test_other_methods_are_405(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {DEFAULT_KEY}"}
    async with session.post(f"{fake_mosaic.url}/agent_runs", headers=headers) as response:
        assert response.status == 405
        assert "not allowed" in (await response.json())["error"]
    assert fake_mosaic.calls[0].method == "POST /agent_runs"


async def test_rate_limit_with_and_without_retry_after(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.fail_next(1, retry_after=7)
    fake_mosaic.fail_next(1, retry_after="Fri, 10 Jan 2025 14:31:00 GMT")
    fake_mosaic.fail_next(1)
    first, second, third, fourth = [await get(session, fake_mosaic, "/whoami") for _ in range(4)]
    assert (first[0], first[1], first[2]["Retry-After"]) == (
        429,
        {"error": "too many requests"},
        "7",
    )
    assert (second[0], second[2]["Retry-After"]) == (429, "Fri, 10 Jan 2025 14:31:00 GMT")
    assert third[0] == 429 and "Retry-After" not in third[2]
    assert fourth[0] == 200
    assert [c.status for c in fake_mosaic.calls] == [429, 429, 429, 200]


async def test_faults_come_before_the_key_check(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.fail_next(status=503)
    assert (await get(session, fake_mosaic, "/whoami", key=None))[:2] == (
        503,
        {"error": "service unavailable"},
    )


async def test_faults_for_a_route_or_a_path(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.add_run("r1")
    fake_mosaic.add_run("r2")
    fake_mosaic.fail_next(2, status=500, path="/agent_runs", error="database on fire")
    fake_mosaic.fail_next(1, status=502, path="/agent_run/r2")
    fake_mosaic.fail_next(1, status=504, path="/agent_run/{run_id}")
    assert (await get(session, fake_mosaic, "/agent_run/r1"))[0] == 504
    assert (await get(session, fake_mosaic, "/agent_run/r1"))[0] == 200
    assert (await get(session, fake_mosaic, "/agent_run/r2"))[0] == 502
    assert (await get(session, fake_mosaic, "/agent_runs"))[:2] == (
        500,
        {"error": "database on fire"},
    )
    assert (await get(session, fake_mosaic, "/whoami"))[0] == 200
    assert (await get(session, fake_mosaic, "/agent_runs"))[0] == 500
    assert (await get(session, fake_mosaic, "/agent_runs"))[0] == 200
    assert fake_mosaic.faults == []
    with pytest.raises(ValueError):
        fake_mosaic.fail_next(0)


async def test_slow_answer_is_held_until_released(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.slow_next(path="/whoami")
    pending = asyncio.create_task(get(session, fake_mosaic, "/whoami"))
    await fake_mosaic.wait_for(lambda: fake_mosaic.holding == 1)
    assert (await get(session, fake_mosaic, "/agent_runs"))[0] == 200
    assert not pending.done()
    fake_mosaic.release()
    assert (await pending)[0] == 200
    assert fake_mosaic.holding == 0
    assert [c.method for c in fake_mosaic.calls] == ["GET /agent_runs", "GET /whoami"]


async def test_slow_answer_with_a_delay(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.slow_next(delay=0.01)
    assert (await get(session, fake_mosaic, "/whoami"))[0] == 200
    assert fake_mosaic.holding == 0


async def test_stopping_releases_held_answers(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proxy_env(monkeypatch)
    async with FakeMosaic() as mosaic:
        mosaic.slow_next(3)
        pending = asyncio.create_task(get(session, mosaic, "/whoami"))
        await mosaic.wait_for(lambda: mosaic.holding == 1)
    assert (await pending)[0] == 200


async def test_runs_by_hand(
    monkeypatch: pytest.MonkeyPatch, session: aiohttp.ClientSession
) -> None:
    clear_proxy_env(monkeypatch)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.mosaic",
        "--port",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            first = (await proc.stdout.readline()).decode()
            assert first.startswith("fake mosaic listening on http://127.0.0.1:")
            url = first.split()[-1]
            headers = {"Authorization": f"Bearer {DEFAULT_KEY}"}
            async with session.get(f"{url}/agent_runs", headers=headers) as response:
                assert response.status == 200
                assert len((await response.json())["runs"]) == 3
            while "/agent_runs" not in (line := (await proc.stdout.readline()).decode()):
                assert line, "the fake exited"
        assert "-> 200" in line and DEFAULT_KEY not in line
    finally:
        proc.terminate()
        await proc.wait()


async def test_an_encoded_slash_stays_inside_the_id(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.add_agent("a/runs", "Slashed")
    status, body, _ = await get(session, fake_mosaic, "/agent/a%2Fruns")
    assert (status, body["agent"]["name"]) == (200, "Slashed")
    assert fake_mosaic.calls[-1].method == "GET /agent/{agent_id}"
    assert (await get(session, fake_mosaic, "/agent/a/runs"))[0] == 404


async def post(
    session: aiohttp.ClientSession,
    mosaic: FakeMosaic,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    key: str | None = DEFAULT_KEY,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with session.post(f"{mosaic.url}{path}", json=body, headers=headers) as response:
        raw = await response.read()
        return response.status, (json.loads(raw) if raw else None)


async def test_resume_and_cancel_change_the_run(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.add_run("r1", status="failed", status_message="Render node failed")

    assert await post(session, fake_mosaic, "/agent_run/r1/resume") == (200, {})
    assert (fake_mosaic.runs["r1"].status, fake_mosaic.runs["r1"].status_message) == (
        "running",
        None,
    )
    assert await post(session, fake_mosaic, "/agent_run/r1/cancel") == (200, {})
    assert fake_mosaic.runs["r1"].status == "cancelled"
    assert [(c.method, c.path, c.status) for c in fake_mosaic.calls] == [
        ("POST /agent_run/{run_id}/resume", "/agent_run/r1/resume", 200),
        ("POST /agent_run/{run_id}/cancel", "/agent_run/r1/cancel", 200),
    ]


@pytest.mark.parametrize(
    ("action", "status", "error"),
    [
        ("resume", "running", "run is running: only failed runs can be resumed"),
        ("resume", "completed", "run is completed: only failed runs can be resumed"),
        ("cancel", "failed", "run is failed: only running runs can be cancelled"),
    ],
)
async def test_acting_on_a_run_in_the_wrong_state_is_409(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, action: str, status: str, error: str
) -> None:
    fake_mosaic.add_run("r1", status=status)
    assert await post(session, fake_mosaic, f"/agent_run/r1/{action}") == (409, {"error": error})
    assert fake_mosaic.runs["r1"].status == status


async def test_acting_on_unknown_runs_and_agents_is_404(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    assert await post(session, fake_mosaic, "/agent_run/nope/resume") == (
        404,
        {"error": "run not found"},
    )
    assert await post(session, fake_mosaic, "/agent_run/nope/cancel") == (
        404,
        {"error": "run not found"},
    )
    assert await post(session, fake_mosaic, "/agent/nope/run", {"video_urls": ["u"]}) == (
        404,
        {"error": "agent not found"},
    )


async def test_actions_check_the_key_and_the_method(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proxy_env(monkeypatch)
    async with FakeMosaic(forbidden_keys=["mk_forbidden"]) as mosaic:
        mosaic.add_run("r1", agent_id=AGENT, status="failed")
        body = {"video_urls": ["https://youtu.be/x"]}
        for key, status in ((None, 401), ("mk_unknown_key", 401), ("mk_forbidden", 403)):
            assert (await post(session, mosaic, "/agent_run/r1/resume", key=key))[0] == status
            assert (await post(session, mosaic, f"/agent/{AGENT}/run", body, key=key))[0] == status
        assert mosaic.runs["r1"].status == "failed"
        assert len(mosaic.runs) == 1
        assert (await get(session, mosaic, "/agent_run/r1/resume"))[0] == 405
        assert DEFAULT_KEY not in repr(mosaic.calls)


@pytest.mark.parametrize("answer", ["run_id", "id", "empty", "no_body"])
async def test_a_start_adds_a_running_run_and_names_it_as_told(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, answer: StartAnswer
) -> None:
    fake_mosaic.add_agent(AGENT)
    fake_mosaic.start_answer = answer
    body = {
        "video_urls": ["https://youtu.be/a", "https://youtu.be/b"],
        "callback_url": "https://h/x",
    }

    status, answered = await post(session, fake_mosaic, f"/agent/{AGENT}/run", body)

    assert status == 200
    (started,) = fake_mosaic.runs.values()
    assert (started.agent_id, started.status) == (AGENT, "running")
    assert [item["video_url"] for item in started.inputs] == body["video_urls"]
    if answer in ("run_id", "id"):
        assert answered == {answer: started.run_id}
    else:
        assert answered == ({} if answer == "empty" else None)
    (call,) = fake_mosaic.calls_for("POST /agent/{agent_id}/run")
    assert call.body == body


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"video_urls": ["u"], "node_render_ids": ["n"]},
        {"video_urls": []},
        {"video_urls": "https://youtu.be/a"},
        {"node_render_ids": [1]},
        {"video_urls": ["u"], "callback_url": "ftp://h"},
        {"video_urls": ["u"], "priority": "high"},
    ],
)
async def test_bad_start_bodies_are_400(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    fake_mosaic.add_agent(AGENT)
    status, answered = await post(session, fake_mosaic, f"/agent/{AGENT}/run", body)
    assert status == 400 and answered["error"]
    assert fake_mosaic.runs == {}


async def test_resume_and_cancel_take_no_fields(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.add_run("r1", status="failed")
    status, _ = await post(session, fake_mosaic, "/agent_run/r1/resume", {"force": True})
    assert status == 400
    assert fake_mosaic.runs["r1"].status == "failed"


async def test_faults_apply_to_actions_too(
    fake_mosaic: FakeMosaic, session: aiohttp.ClientSession
) -> None:
    fake_mosaic.add_run("r1", status="failed")
    fake_mosaic.fail_next(1, status=429, retry_after=3, path="/agent_run/{run_id}/resume")
    fake_mosaic.fail_next(1, status=500, path="/agent_run/r1/resume")

    assert await post(session, fake_mosaic, "/agent_run/r1/resume") == (
        429,
        {"error": "too many requests"},
    )
    assert (await post(session, fake_mosaic, "/agent_run/r1/resume"))[0] == 500
    assert fake_mosaic.runs["r1"].status == "failed"
    assert (await post(session, fake_mosaic, "/agent_run/r1/resume"))[0] == 200
    assert [c.status for c in fake_mosaic.calls_for("POST /agent_run/{run_id}/resume")] == [
        429,
        500,
        200,
    ]
