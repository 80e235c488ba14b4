"""The chat actions' audit on the dashboard: the Actions page, a run's timeline, /api/actions."""

from __future__ import annotations

from relay.app import RELAY
from relay.store.base import ActionRecord
from tests.conftest import sample
from tests.ui.conftest import ADMIN_TOKEN, HOSTILE_TITLE, Client, bearer, login, post_event
from tests.ui.test_pages import assert_escaped, page

RUN = sample("run_finished_failed")["run_id"]


def record(
    result: str, user_name: str | None = "alice", at: float = 1_800_000_000.0
) -> ActionRecord:
    return ActionRecord(
        at, "resume", RUN, "slack", "U0ALLOWED", user_name, result, "", "failed", "team"
    )


async def test_the_actions_page_lists_presses_newest_first_as_text(client: Client) -> None:
    store = client.app[RELAY].store
    await store.record_action(record("refused", user_name=HOSTILE_TITLE, at=1_800_000_000.0))
    await store.record_action(record("done", at=1_800_000_060.0))
    assert (await client.get("/api/actions")).status == 401
    await login(client)
    text = await page(client, "/ui/actions")
    assert text.index('data-result="done"') < text.index('data-result="refused"')
    assert f'href="/ui/runs/{RUN}"' in text
    assert_escaped(text)
    answer = await client.get("/api/actions", headers=bearer(ADMIN_TOKEN))
    listed = (await answer.json())["actions"]
    assert [a["result"] for a in listed] == ["done", "refused"]
    assert listed[0]["user_id"] == "U0ALLOWED" and listed[0]["run_id"] == RUN


async def test_a_runs_timeline_shows_its_presses(client: Client) -> None:
    await post_event(client, sample("run_finished_failed"))
    await client.app[RELAY].store.record_action(record("done"))
    await login(client)
    text = await page(client, f"/ui/runs/{RUN}")
    section = text[text.index("<h2>Chat actions</h2>") : text.index("<h2>Live cards</h2>")]
    assert 'data-result="done"' in section and "alice" in section
    answer = await client.get(f"/api/runs/{RUN}", headers=bearer(ADMIN_TOKEN))
    assert [a["result"] for a in (await answer.json())["actions"]] == ["done"]
