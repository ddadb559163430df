"""Two agent worker processes (A, B) on the offline broker and Postgres: a human-in-the-loop
question asked on A is answered on B, which never saw the run; SIGTERM on A mid-run drains
it and ends its run ``cancelled`` (reason ``shutdown``), and B has nothing to end."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from langgraph_interrupt import ClientSession
from langgraph_interrupt.integration import is_cancelled_tool_message
from langgraph_interrupt.testing import find_history_errors
from langgraph_interrupt.testing._postgres import PostgresCluster

from .conftest import Connect, committed, last_text, start_slow_job
from .processes import BrokerProcess, Deployment

pytestmark = pytest.mark.timeout(45)


@pytest.fixture(scope="module")
def deployment(broker: BrokerProcess, postgres: PostgresCluster,
               logs: Path) -> Iterator[Deployment]:
    workers = Deployment(broker, postgres, logs, control="ai-workers-pair")
    try:
        workers.start("a", "b")
        yield workers
    finally:
        workers.stop()


async def charges(cluster: PostgresCluster, thread: str) -> list[str]:
    """The workers that executed ``charge_card`` on the thread, in order."""
    async with await psycopg.AsyncConnection.connect(cluster.conninfo) as conn:
        cursor = await conn.execute(
            "SELECT worker FROM tool_effects WHERE thread_id = %s AND tool = 'charge_card' "
            "ORDER BY id", (thread,))
        return [row[0] for row in await cursor.fetchall()]


@dataclass
class Resumed:
    client: ClientSession
    run_id: str
    charged_before: list[str]  # who charged the card before the answer
    charged_after: list[str]


async def ask_on_a_answer_on_b(deployment: Deployment, connect: Connect, session_name: str,
                               postgres: PostgresCluster) -> Resumed:
    """``order``: the model calls ``charge_card`` and ``ask`` in one step, on A; the card is
    charged, the question suspends the run. The answer is POSTed to B."""
    a, b = deployment.ensure("a", "b")
    client = await connect(session_name)
    handle = await client.send("order it")
    assert (await a.post(handle.invocation.to_json())).status_code == 200
    run_id = (await handle.wait_started(timeout=10)).run_id
    await client.wait_for(lambda s: getattr(s.run(run_id), "status", None) == "suspended",
                          timeout=10)
    charged_before = await charges(postgres, session_name)
    cmid = next(e.codec_message_id for e in client.decoder.entries()
                if e.message["role"] == "assistant")

    answer = await client.send_tool_result(run_id=run_id, codec_message_id=cmid,
                                           tool_call_id="call_ask", output="yes")
    response = await b.post(answer.invocation.to_json())
    assert response.status_code == 200, response.text
    assert response.json()["runId"] == run_id  # the same run, resumed
    info = await client.wait_run_ended(run_id, timeout=10)
    assert info.status == "complete", info
    return Resumed(client, run_id, charged_before, await charges(postgres, session_name))


async def test_an_ask_suspended_on_a_is_answered_on_b(
        deployment: Deployment, connect: Connect, session_name: str,
        postgres: PostgresCluster) -> None:
    """... and the card, charged on A before the question, is not charged again on B (the
    step's completed calls are in the checkpoint, not in A's memory)."""
    resumed = await ask_on_a_answer_on_b(deployment, connect, session_name, postgres)

    assert resumed.charged_before == ["a"]
    assert resumed.charged_after == ["a"], "charge_card ran again on B"
    assert last_text(resumed.client) == "Charged 5 and shipped: yes (worker b)."
    parts = [p for m in resumed.client.messages for p in m["parts"]
             if p.get("toolCallId") == "call_ask"]
    assert [(p["state"], p["output"]) for p in parts] == [("output-available", "yes")]
    messages = await committed(postgres, session_name)
    assert find_history_errors(messages) == []
    answers = {m.tool_call_id: m.content for m in messages if m.type == "tool"}  # type: ignore[attr-defined]
    assert answers == {"call_pay": "charged 5", "call_ask": "yes"}


async def test_sigterm_on_a_mid_run_ends_it_cancelled_shutdown_and_b_ends_nothing(
        deployment: Deployment, connect: Connect, session_name: str,
        postgres: PostgresCluster) -> None:
    """Last in the module: it stops A (a later test would start it again)."""
    a, b = deployment.ensure("a", "b")
    client = await connect(session_name)
    handle = await start_slow_job(a, client)

    a.terminate()
    ended = await handle.wait_ended(timeout=10)
    assert (ended.status, ended.cancel_reason, ended.error_code) == (
        "cancelled", "shutdown", None), ended
    assert await asyncio.to_thread(a.wait_stopped) in (0, -signal.SIGTERM)
    # B heard A leave after A said its run ended: nothing of A's to end.
    state = await b.state(gone=a.worker_id)
    assert state["first_in_line"] is True, state
    assert (state["runs_by_worker"], state["orphans_ended"]) == ({}, 0), state

    # The drained step's output is in the thread: B answers the next input from it.
    again = await client.send("what happened?")
    assert (await b.post(again.invocation.to_json())).status_code == 200
    assert (await again.wait_ended(timeout=10)).status == "complete"
    assert last_text(client).startswith("Before this: slow_job Job index stopped after "), (
        last_text(client))
    assert find_history_errors(await committed(postgres, session_name)) == []
    run = client.run(ended.run_id)
    assert run is not None and run.status == "cancelled"  # nobody ended it again (50300)


async def test_a_new_message_posted_to_b_interrupts_the_run_a_serves(
        deployment: Deployment, connect: Connect, session_name: str,
        postgres: PostgresCluster) -> None:
    """Double texting through a load balancer: the first message runs on A, the second is
    POSTed to B with ``multitaskStrategy: interrupt``. B stops A's run (reason
    ``new_input``) and starts only once its end is on the channel; the thread A left is
    repaired, and B answers from it."""
    a, b = deployment.ensure("a", "b")
    client = await connect(session_name)
    order: list[tuple[str | None, str | None]] = []
    client.channel.subscribe(lambda m: m.name in ("ai-run-start", "ai-run-end") and order.append(
        (m.name, (m.extras or {}).get("ai", {}).get("transport", {}).get("run-id"))))
    slow = await start_slow_job(a, client)
    first = slow.run_id
    worker_a = (await a.state())["worker_id"]
    deadline = asyncio.get_running_loop().time() + 10
    while not (await b.state())["runs_by_worker"].get(worker_a):  # each GET a round trip
        # B hears from A that it serves the run one control-channel message after it began.
        assert asyncio.get_running_loop().time() < deadline, "B never heard of A's run"

    second = await client.send("what happened?")
    body = {**second.invocation.to_json(), "multitaskStrategy": "interrupt"}
    response = await b.post(body)
    assert response.status_code == 200, response.text

    ended = await slow.wait_ended(timeout=10)
    assert (ended.status, ended.cancel_reason) == ("cancelled", "new_input")
    done = await second.wait_ended(timeout=10)
    assert done.status == "complete"
    # The cancel is immediate: it reaches the tool at its next await. A tool waiting on the
    # signal returns its cut-short answer first; one caught sending a tick is cancelled and
    # the repair answers its call. Either way the thread B answered from is valid, and says so.
    said = re.fullmatch(r"Before this: slow_job (Job index stopped after \d+ ticks\.|cancelled) "
                        r"\(worker b\)\.", last_text(client))
    assert said, last_text(client)
    messages = await committed(postgres, session_name)
    assert find_history_errors(messages) == []
    [answer] = [m for m in messages if m.type == "tool"]
    assert is_cancelled_tool_message(answer) == (said[1] == "cancelled"), answer
    assert order.index(("ai-run-end", first)) < order.index(("ai-run-start", done.run_id))
