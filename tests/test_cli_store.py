"""`relay status` and `relay dlq list | replay ID | replay --all` against a real SQLite store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.cli import main
from relay.store import JobSpec, NewEvent, SQLiteStore
from tests.conftest import SECRET

CONFIG = f"""
auth:
  secrets: ["{SECRET}"]
store:
  url: sqlite:///{{store}}
channels:
  team-slack:
    type: slack
    webhook_url: https://hooks.slack.com/services/T000/B000/not-a-real-hook
  archive:
    type: file
routes:
  - to: [team-slack, archive]
"""

INVALID_AUTH = "Slack error 'invalid_auth' (HTTP 200)"
GAVE_UP = "gave up after 3 attempts: Slack error 'internal_error' (HTTP 500)"


@dataclass(frozen=True)
class Output:
    code: int
    out: str
    err: str


@pytest.fixture
def relay(capsys: pytest.CaptureFixture[str]) -> Callable[..., Output]:
    def run(*argv: str) -> Output:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Output(code, captured.out, captured.err)

    return run


def write_config(folder: Path, store: str = "relay.db") -> Path:
    path = folder / "relay.yaml"
    path.write_text(CONFIG.format(store=store))
    return path


def _event(n: int, run_id: str, at: float) -> NewEvent:
    body = f'{{"agent_id":"a","flag":"RUN_FINISHED","run_id":"{run_id}","status":"failed"}}'
    return NewEvent(
        f"event-{n}", f"key-{n}", body.encode(), "RUN_FINISHED", run_id, "a", "failed", at
    )


async def _populate(db: Path) -> dict[str, str]:
    """Jobs in every state; returns the ids of the dead letters (by run) and of the sent job."""
    store = SQLiteStore(db)
    await store.open()
    try:
        now = time.time()
        await store.accept(
            _event(1, "run-1", now - 120), [JobSpec("team-slack", "r"), JobSpec("archive", "r")]
        )
        await store.accept(_event(2, "run-2", now - 60), [JobSpec("team-slack", "r")])
        await store.accept(_event(3, "run-3", now - 30), [JobSpec("team-slack", "r")])
        jobs = {
            (job.run_id, job.channel): job for job in await store.claim(now=now, lease=60, limit=10)
        }
        await store.accept(_event(4, "run-4", now - 5), [JobSpec("archive", "r")])
        await store.mark_sent(jobs["run-1", "archive"].id, now=now)
        await store.mark_dead(jobs["run-1", "team-slack"].id, error=INVALID_AUTH, now=now)
        await store.mark_dead(jobs["run-2", "team-slack"].id, error=GAVE_UP, now=now)
        # run-3 on team-slack stays in flight, run-4 on archive pending.
        return {
            "run-1": jobs["run-1", "team-slack"].id,
            "run-2": jobs["run-2", "team-slack"].id,
            "sent": jobs["run-1", "archive"].id,
        }
    finally:
        await store.close()


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = write_config(tmp_path)
    ids = asyncio.run(_populate(tmp_path / "relay.db"))
    return config, ids


def status_table(text: str) -> dict[tuple[str, str], int]:
    lines = text.splitlines()
    assert lines[0].split() == ["channel", "state", "count", "oldest"]
    table = {}
    for line in lines[1:]:
        channel, state, count, *_ = line.split()
        table[channel, state] = int(count)
    return table


def test_status_counts_jobs_per_channel_and_state(
    relay: Callable[..., Output], populated: tuple[Path, dict[str, str]]
) -> None:
    config, _ = populated
    result = relay("status", "-c", str(config))
    assert result.code == 0, result.err
    assert status_table(result.out) == {
        ("archive", "pending"): 1,
        ("archive", "sent"): 1,
        ("team-slack", "dead"): 2,
        ("team-slack", "inflight"): 1,
    }
    pending = next(line for line in result.out.splitlines() if "pending" in line)
    age = pending.split()[-1]  # the oldest pending job's, accepted 5 s before
    assert age.endswith("s") and 5 <= int(age[:-1]) < 60


def test_status_of_an_empty_store(relay: Callable[..., Output], tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = SQLiteStore(tmp_path / "relay.db")
    asyncio.run(store.open())
    asyncio.run(store.close())
    result = relay("status", "-c", str(config))
    assert (result.code, result.out) == (0, "no delivery jobs\n")


def test_dlq_list_shows_id_channel_and_reason(
    relay: Callable[..., Output], populated: tuple[Path, dict[str, str]]
) -> None:
    config, dead = populated
    result = relay("dlq", "list", "-c", str(config))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 2
    for line, run, reason in zip(lines, ("run-1", "run-2"), (INVALID_AUTH, GAVE_UP), strict=True):
        assert line.split()[:2] == [dead[run], "team-slack"]
        assert f"run {run}" in line
        assert line.endswith(reason)


def test_dlq_replay_of_one_id_requeues_only_that_job(
    relay: Callable[..., Output], populated: tuple[Path, dict[str, str]]
) -> None:
    config, dead = populated
    result = relay("dlq", "replay", dead["run-1"], "-c", str(config))
    assert result.code == 0, result.err
    assert result.out.startswith("replayed 1 dead letter(s)")
    listed = relay("dlq", "list", "-c", str(config)).out.splitlines()
    assert [line.split()[0] for line in listed] == [dead["run-2"]]
    table = status_table(relay("status", "-c", str(config)).out)
    assert table["team-slack", "dead"] == 1 and table["team-slack", "pending"] == 1


def test_a_replayed_job_starts_over_with_no_attempts(
    relay: Callable[..., Output], populated: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    config, dead = populated
    before_replay = time.time()
    assert relay("dlq", "replay", dead["run-2"], "-c", str(config)).code == 0

    async def claim_replayed() -> tuple[int, float]:
        store = SQLiteStore(tmp_path / "relay.db", create=False)
        await store.open()
        try:
            jobs = await store.claim(now=time.time(), lease=60, limit=10)
        finally:
            await store.close()
        [job] = [job for job in jobs if job.id == dead["run-2"]]
        return job.attempts, job.age_from

    attempts, age_from = asyncio.run(claim_replayed())
    assert attempts == 0
    assert age_from >= before_replay  # max_age counts from the replay


def test_dlq_replay_all_requeues_every_dead_letter(
    relay: Callable[..., Output], populated: tuple[Path, dict[str, str]]
) -> None:
    config, _ = populated
    result = relay("dlq", "replay", "--all", "-c", str(config))
    assert result.code == 0, result.err
    assert result.out.startswith("replayed 2 dead letter(s)")
    assert relay("dlq", "list", "-c", str(config)).out == "no dead letters\n"
    again = relay("dlq", "replay", "--all", "-c", str(config))
    assert again.code == 0 and again.out.startswith("replayed 0 dead letter(s)")


@pytest.mark.parametrize("job_id", ["999999", "not-an-id", "9" * 22, "sent-job"])
def test_dlq_replay_of_an_unknown_id_fails_with_one_line(
    relay: Callable[..., Output], populated: tuple[Path, dict[str, str]], job_id: str
) -> None:
    config, dead = populated
    if job_id == "sent-job":  # a job that exists but is not a dead letter
        job_id = dead["sent"]
    result = relay("dlq", "replay", job_id, "-c", str(config))
    assert result.code == 1
    assert result.out == ""
    assert result.err == f"relay: no dead letter with id {job_id}\n"
    assert len(relay("dlq", "list", "-c", str(config)).out.splitlines()) == 2


def test_dlq_replay_needs_an_id_or_all(
    relay: Callable[..., Output], populated: tuple[Path, dict[str, str]]
) -> None:
    config, _ = populated
    result = relay("dlq", "replay", "-c", str(config))
    assert result.code == 1
    assert result.err.count("\n") == 1 and "--all" in result.err


@pytest.mark.parametrize(
    "argv",
    [["status"], ["dlq", "list"], ["dlq", "replay", "1"], ["dlq", "replay", "--all"]],
    ids=["status", "dlq-list", "dlq-replay-id", "dlq-replay-all"],
)
@pytest.mark.parametrize("store", ["relay.db", "data/relay.db"], ids=["file", "folder"])
def test_store_commands_refuse_a_missing_store_and_create_nothing(
    relay: Callable[..., Output], tmp_path: Path, argv: list[str], store: str
) -> None:
    config = write_config(tmp_path, store)
    before = sorted(tmp_path.rglob("*"))
    result = relay(*argv, "-c", str(config))
    assert result.code == 1
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith("relay: ") and "does not exist" in result.err
    assert store in result.err
    assert sorted(tmp_path.rglob("*")) == before


def test_commands_that_do_not_send_need_no_channel_credentials(
    relay: Callable[..., Output],
    populated: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shell without SLACK_WEBHOOK_URL can still read the queue and the dead letters."""
    config, _ = populated
    monkeypatch.delenv("SLACK_WEBHOOK_URL_NOT_SET", raising=False)
    text = config.read_text().replace(
        "https://hooks.slack.com/services/T000/B000/not-a-real-hook", "${SLACK_WEBHOOK_URL_NOT_SET}"
    )
    config.write_text(text)
    assert relay("check", "-c", str(config)).code == 1  # serving does need it
    status = relay("status", "-c", str(config))
    assert status.code == 0, status.err
    assert status_table(status.out)["team-slack", "dead"] == 2
    listed = relay("dlq", "list", "-c", str(config))
    assert listed.code == 0 and INVALID_AUTH in listed.out


def test_a_broken_store_section_is_still_reported(
    relay: Callable[..., Output], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("store:\n", "store:\n  retention: soon\n"))
    result = relay("status", "-c", str(config))
    assert result.code == 1 and "store.retention" in result.err
