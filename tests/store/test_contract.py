"""The ``Store`` contract, run against every backend in ``conftest.FACTORIES``."""

from __future__ import annotations

import asyncio

import pytest

from relay.store import ChannelStatus, Job, JobSpec, Store, StoreError
from relay.store.base import AgentName
from tests.store.conftest import StoreFactory, new_event, specs

T0 = 1000.0
LEASE = 30.0


async def claim_ids(store: Store, now: float, limit: int = 100) -> list[str]:
    return [job.event_id for job in await store.claim(now=now, lease=LEASE, limit=limit)]


async def claim_one(store: Store, now: float, event_id: str) -> Job:
    """Claim ``event_id``'s job, giving back any other job claimed on the way."""
    jobs = await store.claim(now=now, lease=LEASE, limit=100)
    found = [job for job in jobs if job.event_id == event_id]
    assert len(found) == 1, [job.event_id for job in jobs]
    for job in jobs:
        if job is not found[0]:
            await store.release(job.id)
    return found[0]


async def counts(store: Store) -> dict[tuple[str, str], int]:
    return {(row.channel, row.state): row.count for row in await store.status()}


# --- accept -------------------------------------------------------------------------------------


async def test_accept_creates_one_job_per_spec_with_the_event(store: Store) -> None:
    event = new_event("e1", at=T0)
    jobs = [JobSpec("slack", "failed", template="short", mode="card"), JobSpec("tg", "failed")]

    result = await store.accept(event, jobs)

    assert result.event_id == "e1"
    assert not result.duplicate
    claimed = sorted(await store.claim(now=T0, lease=LEASE, limit=10), key=lambda j: j.channel)
    assert [(j.channel, j.route, j.template, j.mode) for j in claimed] == [
        ("slack", "failed", "short", "card"),
        ("tg", "failed", None, "post"),
    ]
    for job in claimed:
        assert job.event_id == "e1"
        assert job.run_id == "run-1"
        assert job.body == event.body
        assert job.state == "inflight"
        assert job.attempts == 0
        assert job.created_at == T0
        assert job.age_from == T0
        assert job.run_started_at is None  # a progress event: the run's start was not seen
        assert job.next_attempt_at == T0
        assert job.last_error is None
    assert claimed[0].id != claimed[1].id


async def test_all_jobs_exist_as_soon_as_accept_returns(store: Store) -> None:
    await store.accept(new_event("e1"), specs("a", "b", "c"))

    assert await counts(store) == {("a", "pending"): 1, ("b", "pending"): 1, ("c", "pending"): 1}


async def test_an_event_without_jobs_is_stored_and_deduplicated(store: Store) -> None:
    await store.accept(new_event("e1", dedup_key="k"), [])

    again = await store.accept(new_event("e2", dedup_key="k"), [])

    assert (again.event_id, again.duplicate) == ("e1", True)
    assert await store.status() == []


async def test_duplicate_answers_the_original_and_writes_nothing(store: Store) -> None:
    await store.accept(new_event("e1", dedup_key="same"), specs("slack"))

    result = await store.accept(new_event("e2", dedup_key="same", at=T0 + 5), specs("slack", "tg"))

    assert (result.event_id, result.duplicate) == ("e1", True)
    assert await counts(store) == {("slack", "pending"): 1}
    assert await claim_ids(store, T0 + 10) == ["e1"]


async def test_events_without_dedup_key_are_never_duplicates(store: Store) -> None:
    first = await store.accept(new_event("t1", dedup_key=None, run_id="r1"), specs("c"))
    second = await store.accept(new_event("t2", dedup_key=None, run_id="r2"), specs("c"))

    assert not first.duplicate
    assert not second.duplicate
    assert sorted(await claim_ids(store, T0)) == ["t1", "t2"]


async def test_concurrent_events_with_one_key_accept_exactly_one(store: Store) -> None:
    events = [new_event(f"e{i}", dedup_key="same") for i in range(20)]

    results = await asyncio.gather(*(store.accept(e, specs("c")) for e in events))

    originals = [r for r in results if not r.duplicate]
    assert len(originals) == 1
    assert {r.event_id for r in results} == {originals[0].event_id}
    assert await counts(store) == {("c", "pending"): 1}


async def test_run_started_at_is_when_the_runs_start_was_accepted(store: Store) -> None:
    """Elapsed time counts from the run's RUN_STARTED; a run whose start the relay never saw has
    none (a message then shows nothing rather than a wrong "0s")."""
    await store.accept(new_event("e0", run_id="r", at=T0 - 10, flag="RUN_PROGRESS"), specs("a"))
    await store.accept(new_event("e1", run_id="r", at=T0, flag="RUN_STARTED"), specs("a"))
    await store.accept(new_event("e2", run_id="r", at=T0 + 50), specs("b"))
    await store.accept(new_event("e3", run_id="other", at=T0 + 60), specs("c"))

    jobs = {job.event_id: job for job in await store.claim(now=T0 + 100, lease=LEASE, limit=10)}

    assert jobs["e2"].run_started_at == T0
    assert jobs["e2"].created_at == T0 + 50
    assert jobs["e3"].run_started_at is None


# --- claim and ordering ------------------------------------------------------------------------


async def test_claim_takes_due_jobs_oldest_first_up_to_the_limit(store: Store) -> None:
    for i, at in enumerate([T0 + 3, T0 + 1, T0 + 2, T0 + 15]):
        await store.accept(new_event(f"e{i}", run_id=f"r{i}", at=at), specs("c"))

    assert await claim_ids(store, T0 + 10, limit=2) == ["e1", "e2"]
    assert await claim_ids(store, T0 + 10, limit=10) == ["e0"]
    assert await claim_ids(store, T0 + 10, limit=10) == []
    assert await claim_ids(store, T0 + 15, limit=10) == ["e3"]


async def test_one_run_reaches_a_channel_in_acceptance_order(store: Store) -> None:
    for i in range(3):
        await store.accept(new_event(f"e{i}", run_id="r", at=T0 + i), specs("slack"))
    await store.accept(new_event("x", run_id="other", at=T0 + 5), specs("slack"))

    first = await store.claim(now=T0 + 10, lease=LEASE, limit=10)
    assert sorted(job.event_id for job in first) == ["e0", "x"]
    e0 = next(job for job in first if job.event_id == "e0")

    await store.mark_retry(e0.id, next_attempt_at=T0 + 20, error="503", now=T0)
    assert await claim_ids(store, T0 + 11) == []
    retried = await claim_one(store, T0 + 20, "e0")
    assert retried.id == e0.id
    assert retried.attempts == 1

    await store.mark_dead(retried.id, error="gave up", now=T0 + 21)
    e1 = await claim_one(store, T0 + 21, "e1")
    assert await claim_ids(store, T0 + 21) == []

    await store.mark_sent(e1.id, now=T0 + 22)
    assert await claim_ids(store, T0 + 22) == ["e2"]


async def test_one_runs_channels_do_not_wait_for_each_other(store: Store) -> None:
    await store.accept(new_event("e0", run_id="r"), specs("slack", "tg"))
    await store.accept(new_event("e1", run_id="r"), specs("slack", "tg"))

    first = await store.claim(now=T0, lease=LEASE, limit=10)
    assert sorted((j.event_id, j.channel) for j in first) == [("e0", "slack"), ("e0", "tg")]
    slack = next(job for job in first if job.channel == "slack")

    await store.mark_sent(slack.id, now=T0)

    nxt = await store.claim(now=T0, lease=LEASE, limit=10)
    assert [(j.event_id, j.channel) for j in nxt] == [("e1", "slack")]


async def test_an_expired_lease_gives_the_job_back(store: Store) -> None:
    await store.accept(new_event("e1"), specs("c"))
    job = await claim_one(store, T0, "e1")

    assert await claim_ids(store, T0 + LEASE - 1) == []
    again = await claim_one(store, T0 + LEASE + 1, "e1")

    assert again.id == job.id
    assert again.attempts == 0


async def test_release_makes_the_job_due_again_untouched(store: Store) -> None:
    await store.accept(new_event("e0", run_id="r"), specs("c"))
    await store.accept(new_event("e1", run_id="r"), specs("c"))
    job = await claim_one(store, T0, "e0")

    await store.release(job.id)

    again = await claim_one(store, T0 + 1, "e0")
    assert again.id == job.id
    assert again.attempts == 0


async def test_rate_limited_retries_do_not_count_attempts(store: Store) -> None:
    await store.accept(new_event("e1"), specs("c"))
    job = await claim_one(store, T0, "e1")

    await store.mark_retry(job.id, next_attempt_at=T0 + 1, error="429", now=T0, count_attempt=False)
    job = await claim_one(store, T0 + 1, "e1")
    assert (job.attempts, job.last_error, job.next_attempt_at) == (0, "429", T0 + 1)

    await store.mark_retry(job.id, next_attempt_at=T0 + 2, error="timeout", now=T0 + 1)
    job = await claim_one(store, T0 + 2, "e1")
    assert (job.attempts, job.last_error) == (1, "timeout")

    await store.mark_retry(
        job.id, next_attempt_at=T0 + 3, error="500", now=T0 + 2, count_attempt=True
    )
    job = await claim_one(store, T0 + 3, "e1")
    assert job.attempts == 2


async def test_a_late_mark_does_not_revive_a_finished_job(store: Store) -> None:
    await store.accept(new_event("e1"), specs("c"))
    job = await claim_one(store, T0, "e1")
    await store.mark_sent(job.id, now=T0)

    await store.mark_retry(job.id, next_attempt_at=T0, error="stale worker", now=T0)
    await store.release(job.id)
    await store.mark_dead(job.id, error="stale worker", now=T0)

    assert await counts(store) == {("c", "sent"): 1}
    assert await claim_ids(store, T0 + 100) == []


async def test_unknown_job_ids_are_ignored(store: Store) -> None:
    huge = "9" * 23  # past SQLite's 64-bit integers
    for job_id in ["999999", "not-a-job", huge, "-" + huge, str(2**63), "", "١٢"]:
        await store.mark_sent(job_id, now=T0)
        await store.mark_retry(job_id, next_attempt_at=T0, error="x", now=T0)
        await store.mark_dead(job_id, error="x", now=T0)
        await store.release(job_id)
        assert await store.replay(job_id, now=T0) == 0
    assert await store.status() == []


async def test_next_due_at_follows_the_claimable_jobs(store: Store) -> None:
    assert await store.next_due_at() is None
    await store.accept(new_event("e0", run_id="r", at=T0), specs("c"))
    await store.accept(new_event("e1", run_id="r", at=T0 + 1), specs("c"))
    assert await store.next_due_at() == T0

    job = await claim_one(store, T0, "e0")
    assert await store.next_due_at() == T0 + LEASE

    await store.mark_retry(job.id, next_attempt_at=T0 + 60, error="503", now=T0)
    assert await store.next_due_at() == T0 + 60

    job = await claim_one(store, T0 + 60, "e0")
    await store.mark_sent(job.id, now=T0 + 61)
    assert await store.next_due_at() == T0 + 1

    job = await claim_one(store, T0 + 61, "e1")
    await store.mark_sent(job.id, now=T0 + 62)
    assert await store.next_due_at() is None


# --- dead letters and replay -------------------------------------------------------------------


async def kill(store: Store, event_id: str, now: float, error: str = "bad request") -> Job:
    job = await claim_one(store, now, event_id)
    await store.mark_retry(job.id, next_attempt_at=now, error="first try", now=now)
    job = await claim_one(store, now, event_id)
    await store.mark_dead(job.id, error=error, now=now)
    return job


async def test_dead_letters_are_listed_with_their_error(store: Store) -> None:
    await store.accept(new_event("e1", run_id="r1"), specs("c"))
    await store.accept(new_event("e2", run_id="r2"), specs("c"))
    job = await kill(store, "e1", T0, "channel_not_found")

    dead = await store.dead_letters()

    assert [(d.id, d.event_id, d.state, d.attempts, d.last_error) for d in dead] == [
        (job.id, "e1", "dead", 2, "channel_not_found")  # the retried try and the last one
    ]
    assert dead[0].body == new_event("e1", run_id="r1").body
    assert await store.dead_letters(limit=0) == []


async def test_attempts_count_every_try_that_ended_including_the_last(store: Store) -> None:
    """One number for every view: a dead letter after one refusal made 1 attempt; one after a
    counted retry and a 429 wait made 2."""
    await store.accept(new_event("e1", run_id="r1"), specs("c"))
    await store.accept(new_event("e2", run_id="r2"), specs("c"))
    refused = await claim_one(store, T0, "e1")
    await store.mark_dead(refused.id, error="invalid_auth", now=T0)
    job = await claim_one(store, T0, "e2")
    await store.mark_retry(job.id, next_attempt_at=T0, error="timeout", now=T0)
    job = await claim_one(store, T0, "e2")
    await store.mark_retry(job.id, next_attempt_at=T0, error="429", now=T0, count_attempt=False)
    job = await claim_one(store, T0, "e2")
    await store.mark_dead(job.id, error="gave up", now=T0)

    dead = {d.event_id: d.attempts for d in await store.dead_letters()}
    assert dead == {"e1": 1, "e2": 2}


async def test_replay_one_resets_attempts_and_age(store: Store) -> None:
    await store.accept(new_event("e1", at=T0), specs("c"))
    job = await kill(store, "e1", T0 + 5)

    assert await store.replay(job.id, now=T0 + 500) == 1

    assert await store.dead_letters() == []
    again = await claim_one(store, T0 + 500, "e1")
    assert again.id == job.id
    assert (again.attempts, again.created_at, again.age_from) == (0, T0, T0 + 500)
    assert again.next_attempt_at == T0 + 500
    assert await store.replay(job.id, now=T0 + 501) == 0


async def test_replay_takes_a_job_id_only_as_written(store: Store) -> None:
    """An id is matched as the store wrote it: ``01``, `` 1`` or ``1_0`` are other ids."""
    await store.accept(new_event("e1", at=T0), specs("c"))
    job = await kill(store, "e1", T0 + 5)

    for near in [
        "0" + job.id,
        " " + job.id,
        job.id + " ",
        "+" + job.id,
        job.id[:1] + "_" + job.id[1:],
    ]:
        assert await store.replay(near, now=T0 + 500) == 0, near
    assert await store.replay(job.id, now=T0 + 500) == 1


async def test_replay_all(store: Store) -> None:
    for i in range(3):
        await store.accept(new_event(f"e{i}", run_id=f"r{i}"), specs("c"))
        await kill(store, f"e{i}", T0)

    assert await store.replay(None, now=T0 + 10) == 3

    assert sorted(await claim_ids(store, T0 + 10)) == ["e0", "e1", "e2"]
    assert await store.replay(None, now=T0 + 11) == 0


async def test_a_replayed_job_is_again_the_oldest_of_its_run(store: Store) -> None:
    for i in range(3):
        await store.accept(new_event(f"e{i}", run_id="r", at=T0 + i), specs("c"))
    dead = await kill(store, "e0", T0 + 10)
    e1 = await claim_one(store, T0 + 10, "e1")

    await store.replay(dead.id, now=T0 + 11)

    replayed = await store.claim(now=T0 + 11, lease=LEASE, limit=10)
    assert [job.event_id for job in replayed] == ["e0"]
    await store.mark_sent(replayed[0].id, now=T0 + 12)
    assert await claim_ids(store, T0 + 12) == []
    await store.mark_sent(e1.id, now=T0 + 13)
    assert await claim_ids(store, T0 + 13) == ["e2"]


# --- status, prune, refs -----------------------------------------------------------------------


async def test_status_counts_per_channel_and_state(store: Store) -> None:
    await store.accept(new_event("e1", run_id="r1", at=T0 + 1), specs("slack", "tg"))
    await store.accept(new_event("e2", run_id="r2", at=T0 + 2), specs("slack"))
    await store.accept(new_event("e3", run_id="r3", at=T0 + 3), specs("slack"))
    assert await store.claim(now=T0 + 3, lease=LEASE, limit=0) == []
    claimed = await store.claim(now=T0 + 3, lease=LEASE, limit=10)
    by_key = {(j.event_id, j.channel): j for j in claimed}
    await store.mark_sent(by_key["e1", "slack"].id, now=T0 + 4)
    await store.mark_dead(by_key["e2", "slack"].id, error="x", now=T0 + 4)
    await store.release(by_key["e1", "tg"].id)

    rows = sorted(await store.status(), key=lambda s: (s.channel, s.state))

    assert rows == [
        ChannelStatus("slack", "dead", 1, T0 + 2),
        ChannelStatus("slack", "inflight", 1, T0 + 3),
        ChannelStatus("slack", "sent", 1, T0 + 1),
        ChannelStatus("tg", "pending", 1, T0 + 1),
    ]


async def test_prune_deletes_old_delivered_events_only(store: Store) -> None:
    old, new = T0, T0 + 1000
    await store.accept(new_event("sent-old", run_id="r1", at=old), specs("c"))
    await store.accept(new_event("no-jobs-old", run_id="r2", at=old), [])
    await store.accept(new_event("dead-old", run_id="r3", at=old), specs("c"))
    await store.accept(new_event("pending-old", run_id="r4", at=old), specs("c"))
    await store.accept(new_event("mixed-old", run_id="r5", at=old), specs("a", "b"))
    await store.accept(new_event("sent-new", run_id="r6", at=new), specs("c"))
    claimed = {(j.event_id, j.channel): j for j in await store.claim(now=new, lease=1, limit=99)}
    for key in [("sent-old", "c"), ("sent-new", "c"), ("mixed-old", "a")]:
        await store.mark_sent(claimed[key].id, now=new)
    await store.mark_dead(claimed["dead-old", "c"].id, error="x", now=new)
    await store.mark_dead(claimed["mixed-old", "b"].id, error="y", now=new)
    await store.release(claimed["pending-old", "c"].id)

    assert await store.prune(older_than=old + 1) == 2

    assert await counts(store) == {
        ("c", "dead"): 1,
        ("c", "pending"): 1,
        ("c", "sent"): 1,
        ("b", "dead"): 1,
    }
    assert sorted(j.event_id for j in await store.dead_letters()) == ["dead-old", "mixed-old"]
    for gone in ["sent-old", "no-jobs-old"]:
        again = new_event(gone, at=new, dedup_key=f"key-{gone}")
        assert not (await store.accept(again, [])).duplicate
    for kept in ["dead-old", "pending-old", "mixed-old", "sent-new"]:
        again = new_event("again", at=new, dedup_key=f"key-{kept}")
        assert (await store.accept(again, [])).duplicate
    assert await store.prune(older_than=old + 1) == 0


async def test_a_replayed_dead_letter_survives_prune_with_its_event(store: Store) -> None:
    await store.accept(new_event("e1", at=T0), specs("c"))
    job = await kill(store, "e1", T0)
    await store.prune(older_than=T0 + 10)

    await store.replay(job.id, now=T0 + 20)

    again = await claim_one(store, T0 + 20, "e1")
    assert again.body == new_event("e1").body


async def test_refs_upsert(store: Store) -> None:
    assert await store.get_ref("r1", "slack") is None

    await store.put_ref("r1", "slack", "C1", "1700000000.000100")
    await store.put_ref("r1", "tg", "-100", "42")
    assert await store.get_ref("r1", "slack") == ("C1", "1700000000.000100")

    await store.put_ref("r1", "slack", "C1", "1700000000.000200")
    assert await store.get_ref("r1", "slack") == ("C1", "1700000000.000200")
    assert await store.get_ref("r1", "tg") == ("-100", "42")
    assert await store.get_ref("r2", "slack") is None


# --- concurrency and durability ----------------------------------------------------------------


async def test_concurrent_accepts_all_land(store: Store) -> None:
    events = [new_event(f"e{i}", run_id=f"r{i % 50}", at=T0 + i) for i in range(500)]

    results = await asyncio.gather(*(store.accept(e, specs("c")) for e in events))

    assert [r.event_id for r in results] == [e.event_id for e in events]
    assert not any(r.duplicate for r in results)
    assert await counts(store) == {("c", "pending"): 500}
    heads = await store.claim(now=T0 + 1000, lease=LEASE, limit=1000)
    assert sorted(j.event_id for j in heads) == sorted(f"e{i}" for i in range(50))


async def test_everything_survives_close_and_reopen(store: Store, make_store: StoreFactory) -> None:
    await store.accept(new_event("e1", run_id="r1"), specs("c"))
    await store.accept(new_event("e2", run_id="r2"), specs("c"))
    await store.accept(new_event("e3", run_id="r3"), specs("c"))
    dead = await kill(store, "e1", T0)
    sent = await claim_one(store, T0, "e2")
    await store.mark_sent(sent.id, now=T0)
    await store.put_ref("r2", "c", "C1", "ts1")
    await store.close()

    reopened = make_store()
    await reopened.open()
    try:
        assert (await reopened.accept(new_event("x", dedup_key="key-e2"), [])).event_id == "e2"
        assert [j.id for j in await reopened.dead_letters()] == [dead.id]
        assert await reopened.get_ref("r2", "c") == ("C1", "ts1")
        assert await claim_ids(reopened, T0) == ["e3"]
    finally:
        await reopened.close()


async def test_a_closed_store_refuses_work(store: Store) -> None:
    await store.ping()
    await store.close()

    with pytest.raises(StoreError):
        await store.ping()
    with pytest.raises(StoreError):
        await store.accept(new_event("e1"), specs("c"))


# --- reconciliation and the stale-run watch -----------------------------------------------------


async def test_known_dedup_keys_are_those_of_accepted_events(store: Store) -> None:
    await store.accept(new_event("e1", dedup_key="k1"), specs("slack"))
    await store.accept(new_event("e2", dedup_key=None), specs("slack"))

    assert await store.known_dedup_keys(["k1", "k2", "k1"]) == {"k1"}
    assert await store.known_dedup_keys([]) == set()
    assert await store.known_dedup_keys([f"k{i}" for i in range(1200)]) == {"k1"}


async def test_quiet_runs_are_unfinished_runs_by_their_last_event(store: Store) -> None:
    await store.accept(new_event("a1", run_id="quiet", at=T0), specs("slack"))
    await store.accept(new_event("a2", run_id="quiet", at=T0 + 10), [])
    await store.accept(new_event("b1", run_id="quieter", at=T0 + 5), [])
    await store.accept(new_event("c1", run_id="busy", at=T0), [])
    await store.accept(new_event("c2", run_id="busy", at=T0 + 100), [])
    await store.accept(new_event("d1", run_id="done", at=T0), [])
    await store.accept(new_event("d2", run_id="done", at=T0 + 1, flag="RUN_FINISHED"), [])
    failed = new_event("f1", run_id="failed", at=T0, status="failed")
    await store.accept(failed, [])

    quiet = await store.quiet_runs(before=T0 + 50)

    assert [(run.run_id, run.last_event_at) for run in quiet] == [
        ("quieter", T0 + 5),
        ("quiet", T0 + 10),
    ]
    assert quiet[1].agent_id == "agent-1"
    assert quiet[1].last_body == new_event("a2", run_id="quiet").body
    assert [run.run_id for run in await store.quiet_runs(before=T0 + 50, limit=1)] == ["quieter"]
    assert await store.quiet_runs(before=T0 + 5) == []


async def test_a_late_event_after_the_end_does_not_make_a_run_quiet(store: Store) -> None:
    await store.accept(new_event("e1", at=T0, flag="RUN_FINISHED", status="completed"), [])
    await store.accept(new_event("e2", at=T0 + 1), [])

    assert await store.quiet_runs(before=T0 + 50) == []


async def test_a_pruned_run_is_no_longer_quiet(store: Store) -> None:
    await store.accept(new_event("e1", at=T0), [])
    assert await store.prune(older_than=T0 + 1) == 1

    assert await store.quiet_runs(before=T0 + 50) == []


async def test_a_lease_is_taken_by_the_first_caller(store: Store) -> None:
    assert await store.take_lease("reconcile", ttl=60.0)


# --- agents' names in Mosaic --------------------------------------------------------------------


async def test_agent_names_are_cached_replaced_and_kept_across_a_reopen(
    store: Store, make_store: StoreFactory
) -> None:
    assert await store.agent_names() == {}
    await store.put_agent_name("agent-1", AgentName("Shorts cutter", T0))
    await store.put_agent_name("agent-2", AgentName(None, T0 + 1))
    await store.put_agent_name("agent-1", AgentName("Shorts cutter v2", T0 + 2))
    expected = {
        "agent-1": AgentName("Shorts cutter v2", T0 + 2),
        "agent-2": AgentName(None, T0 + 1),
    }
    assert await store.agent_names() == expected
    await store.close()
    reopened = make_store()
    await reopened.open()
    try:
        assert await reopened.agent_names() == expected
    finally:
        await reopened.close()
    await store.open()


async def test_a_test_event_never_makes_a_quiet_run(store: Store) -> None:
    await store.accept(new_event("t1", run_id="test-run", at=T0, flag="TEST", dedup_key=None), [])

    assert await store.quiet_runs(before=T0 + 50) == []
