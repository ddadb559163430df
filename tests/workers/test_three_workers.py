"""Three agent worker processes (A, B, C) on the offline broker and Postgres, one control
channel: a cancel reaches the run on A while B and C serve others; forged presence and a
forged ``ai-run-end`` end nothing, nor can a user keep a dead worker's run active by taking
the id of its end first; A killed with SIGKILL mid-tool: its run ends ``error``
50300 for the client within the presence leave timeout plus a bound, and B answers the
next input on that thread from a repaired history."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ably import AblyRealtime  # type: ignore[import-untyped]
from ably.util.exceptions import AblyException  # type: ignore[import-untyped]
from langchain_core.messages import AIMessage

from langgraph_interrupt._wire import (
    EVENT_RUN_END,
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_RUN_CLIENT_ID,
    H_RUN_ID,
    H_RUN_REASON,
    OutboundMessage,
    make_extras,
)
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.integration import is_cancelled_tool_message
from langgraph_interrupt.testing import find_history_errors
from langgraph_interrupt.testing._postgres import PostgresCluster

from .conftest import (
    LEAVE_TIMEOUT_MS,
    USER_CAPABILITY,
    Connect,
    committed,
    last_text,
    start_slow_job,
    ticks,
    wait_committed,
)
from .processes import BrokerProcess, Deployment

pytestmark = pytest.mark.timeout(45)

#: Seconds, past the broker's presence leave timeout, within which the client must see a
#: killed worker's run end: a survivor's history read and its three publishes, on a loaded
#: machine (they take tens of milliseconds when it is idle).
ORPHAN_BOUND = 2.0

#: Seconds, past the broker's presence leave timeout, within which the client must see a
#: killed worker's run end: a survivor's history read and its three publishes, on a loaded
#: machine (they take tens of milliseconds when it is idle).
ORPHAN_BOUND = 2.0


@pytest.fixture(scope="module")
def deployment(broker: BrokerProcess, postgres: PostgresCluster,
               logs: Path) -> Iterator[Deployment]:
    workers = Deployment(broker, postgres, logs, control="ai-workers")
    try:
        workers.start("a", "b", "c")
        yield workers
    finally:
        workers.stop()


async def test_a_run_on_a_is_cancelled_while_b_and_c_serve_other_runs(
        deployment: Deployment, connect: Connect, session_name: str) -> None:
    a, b, c = deployment.ensure("a", "b", "c")
    on_a, on_b, on_c = [await connect(f"{session_name}-{w.name}") for w in (a, b, c)]
    slow = await on_a.send("slow job please")
    held_b, held_c = await on_b.send("hold the batch"), await on_c.send("hold the batch")
    for worker, handle in ((a, slow), (b, held_b), (c, held_c)):
        assert (await worker.post(handle.invocation.to_json())).status_code == 200
    await on_a.wait_for(lambda s: ticks(s) >= 1, timeout=10)  # the tool runs on A
    for client in (on_b, on_c):
        await client.wait_for(lambda s: any(p["type"] == "data-held" for m in s.messages
                                            for p in m["parts"]), timeout=10)

    await slow.cancel()
    ended = await slow.wait_ended(timeout=10)
    assert (ended.status, ended.cancel_reason) == ("cancelled", "client_request")
    run_b, run_c = held_b.run, held_c.run
    assert run_b is not None and run_c is not None
    assert (run_b.status, run_c.status) == ("active", "active")

    await b.release(on_b.channel.name)
    await c.release(on_c.channel.name)
    done_b, done_c = await held_b.wait_ended(timeout=10), await held_c.wait_ended(timeout=10)
    assert (done_b.status, done_c.status) == ("complete", "complete")
    assert (last_text(on_b), last_text(on_c)) == ("Released on worker b.",
                                                   "Released on worker c.")
    for worker in (a, b, c):  # nothing left running anywhere; nobody lost a worker
        state = await worker.state()
        assert (state["open_runs"], state["orphans_ended"]) == ([], 0), state
        assert len(state["present"]) == 2, state


async def test_a_forged_presence_leave_and_a_forged_run_end_do_not_end_a_live_run(
        deployment: Deployment, connect: Connect, session_name: str,
        broker: BrokerProcess) -> None:
    a, b, c = deployment.ensure("a", "b", "c")
    client = await connect(session_name)
    handle = await start_slow_job(a, client)
    run_id = handle.run_id
    assert run_id is not None

    # A browser's token (no capability on the control channel) cannot even enter there.
    mallory = AblyRealtime(**broker.client_options("user-mallory", capability=USER_CAPABILITY))
    forger = AblyRealtime(**broker.client_options("user-forger", capability={
        **USER_CAPABILITY, deployment.control: ["presence", "subscribe"]}))
    try:
        with pytest.raises(AblyException) as refused:
            await mallory.channels.get(deployment.control).presence.enter(
                {"worker": a.worker_id})
        assert refused.value.code == 40160
        # A token that does allow it (misconfigured): the user enters as worker A, leaves.
        control = forger.channels.get(deployment.control)
        await control.attach()
        await control.presence.enter({"worker": a.worker_id})
        await control.presence.leave({"worker": a.worker_id})
        for worker in (b, c):  # each has heard the forged leave, and ends nothing
            state = await worker.state(seen="user-forger:leave")
            assert a.worker_id in state["present"], state
            assert state["runs_by_worker"].get(a.worker_id) == 1, state
            assert (state["tasks"], state["orphans_ended"]) == (0, 0), state

        # A forged end of the run, as a dead worker's survivor would publish it.
        forged = AblyChannel(forger, session_name)
        await forged.publish([OutboundMessage(EVENT_RUN_END, None, make_extras({
            H_RUN_ID: run_id, H_RUN_CLIENT_ID: "user-1", H_RUN_REASON: "error",
            H_ERROR_CODE: "50300", H_ERROR_MESSAGE: "the agent worker serving this run "
            "stopped"}))])
    finally:
        await mallory.close()
        await forger.close()
    seen = ticks(client)
    await client.wait_for(lambda s: ticks(s) >= seen + 3, timeout=10)  # A streams on
    run = client.run(run_id)
    assert run is not None and run.status == "active", run
    late = await connect(session_name, "user-2")  # a device that joins now, from history
    late_run = late.run(run_id)
    assert late_run is not None and late_run.status == "active", late_run

    await handle.cancel()
    ended = await handle.wait_ended(timeout=10)
    assert (ended.status, ended.cancel_reason, ended.error_code) == (
        "cancelled", "client_request", None)
    await late.wait_run_ended(run_id, timeout=10)
    assert late.run(run_id).status == "cancelled"  # type: ignore[union-attr]
    for worker in (b, c):
        assert (await worker.state())["orphans_ended"] == 0


async def test_a_user_cannot_keep_a_dead_workers_run_active_by_taking_its_end_id(
        deployment: Deployment, connect: Connect, session_name: str,
        broker: BrokerProcess) -> None:
    """A participant of the session publishes a message under the id the survivor's
    ai-run-end once had (``orphan:<run id>:end``), before A dies: the service would drop the
    real end as an idempotent duplicate, and the run would stay active for every client.
    The ids also derive from the dead worker's id now, which users never see. Kills A
    (started again by the next test that needs it)."""
    a, b, c = deployment.ensure("a", "b", "c")
    client = await connect(session_name)
    handle = await start_slow_job(a, client)
    run_id = handle.run_id
    assert run_id is not None
    squatter = AblyRealtime(**broker.client_options("user-squatter", capability=USER_CAPABILITY))
    try:  # an ordinary message, on a channel the user may publish on, with that id
        await AblyChannel(squatter, session_name).publish(
            [OutboundMessage("chat-note", "hi", None, f"orphan:{run_id}:end")])
    finally:
        await squatter.close()

    before = [(await worker.state())["orphans_ended"] for worker in (b, c)]
    a.kill()
    states = [await worker.state(gone=a.worker_id) for worker in (b, c)]
    assert sorted(s["orphans_ended"] - n for s, n in zip(states, before, strict=True)) == [
        0, 1], states  # a survivor did end it, as far as it knows
    try:
        ended = await handle.wait_ended(timeout=ORPHAN_BOUND)
    except TimeoutError:
        pytest.fail("the run stayed active: the survivor's ai-run-end was dropped")
    assert (ended.status, ended.error_code) == ("error", 50300)


async def test_a_worker_killed_mid_tool_has_its_run_ended_error_and_the_thread_repaired(
        deployment: Deployment, connect: Connect, session_name: str,
        postgres: PostgresCluster) -> None:
    """Last in the module: it kills A (a later test would start it again)."""
    a, b, c = deployment.ensure("a", "b", "c")
    client = await connect(session_name)
    handle = await start_slow_job(a, client)  # mid-tool
    # A's checkpoint of the model's step (its tool call) is written while the tool runs
    # (LangGraph's "async" durability): the repair of an open call needs it committed.
    await wait_committed(postgres, session_name,
                         lambda ms: any(isinstance(m, AIMessage) and m.tool_calls for m in ms))

    before = [(await worker.state())["orphans_ended"] for worker in (b, c)]
    killed_at = time.monotonic()
    a.kill()
    ended = await handle.wait_ended(timeout=LEAVE_TIMEOUT_MS / 1000 + ORPHAN_BOUND + 5)
    assert ended.ended_at is not None
    waited = ended.ended_at - killed_at
    assert (ended.status, ended.error_code) == ("error", 50300), ended
    assert ended.error_message is not None and "worker" in ended.error_message
    assert LEAVE_TIMEOUT_MS / 1000 * 0.9 <= waited <= LEAVE_TIMEOUT_MS / 1000 + ORPHAN_BOUND, (
        f"the run ended {waited:.2f} s after the kill")
    # One survivor ended it, the first in line; the other had nothing to do at once.
    states = [await worker.state(gone=a.worker_id) for worker in (b, c)]
    assert sorted(s["first_in_line"] for s in states) == [False, True], states
    ended_by = [s["orphans_ended"] - n for s, n in zip(states, before, strict=True)]
    assert [n for s, n in zip(states, ended_by, strict=True) if s["first_in_line"]] == [1]
    assert sorted(ended_by) == [0, 1], states

    again = await client.send("what happened?")
    assert (await b.post(again.invocation.to_json())).status_code == 200
    done = await again.wait_ended(timeout=10)
    assert done.status == "complete", done
    assert last_text(client) == "Before this: slow_job cancelled (worker b)."
    messages = await committed(postgres, session_name)
    assert find_history_errors(messages) == []
    [answer] = [m for m in messages if m.type == "tool"]
    assert is_cancelled_tool_message(answer)
    assert [m.type for m in messages] == ["human", "ai", "tool", "human", "ai"]
