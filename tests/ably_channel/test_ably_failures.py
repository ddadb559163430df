"""Named failure tests of the Ably backend, each driven by the offline broker's fault injection.

The agent runs on AblyChannel and the Python client on a second real SDK connection. Tests
wait on events (channel messages, held streams), never on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from ably.types.connectionstate import ConnectionState

from langgraph_interrupt import AgentSession, ChannelMessage, ClientSession, PipeResult, Run
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.channels._ably import MUTABLE_MESSAGES_RULE
from langgraph_interrupt.testing import Inbox, ScriptedStream, text_chunks
from langgraph_interrupt.testing.ably_broker import AblyBroker
from tests.ably_broker.helpers import StateWatcher
from tests.ably_channel.conftest import OpenAbly

SESSION = "ai:faults"


@dataclass
class Pair:
    """An agent and a client, each on its own real SDK connection, and what the client saw."""

    agent: AgentSession
    agent_channel: AblyChannel
    client: ClientSession
    seen: Inbox


@pytest.fixture
async def pair(open_ably: OpenAbly) -> AsyncIterator[Pair]:
    agent_channel = await open_ably(SESSION, "agent", retry_attempts=2, retry_initial=0.01)
    client_channel = await open_ably(SESSION, "user-abc")
    seen = Inbox()
    client_channel.subscribe(seen)
    client = ClientSession(client_channel)
    agent = AgentSession(agent_channel, trigger_timeout=5.0)
    await client.connect()
    await agent.connect()
    yield Pair(agent, agent_channel, client, seen)
    await agent.close()
    await client.close()


def run_of(message: ChannelMessage) -> str | None:
    extras: Any = message.extras or {}
    return extras.get("ai", {}).get("transport", {}).get("run-id")


def streamed(seen: Inbox, serial: str) -> list[ChannelMessage]:
    return [m for m in seen.messages if m.serial == serial]


async def held_run(pair: Pair, tokens: list[str], hold_at: int
                   ) -> tuple[Run, ScriptedStream, asyncio.Task[PipeResult], str]:
    """Start a run streaming ``tokens`` and hold it after ``hold_at`` deltas; returns the
    text stream's serial too."""
    handle = await pair.client.send("tell me")
    run = pair.agent.create_run(handle.invocation)
    stream = ScriptedStream(tokens, hold_at=hold_at)

    async def drive() -> PipeResult:
        async with run:
            result = await run.pipe(stream)
            await run.end(result)  # an error result ends the run ``error``
            return result

    task = asyncio.create_task(drive())
    await stream.holding.wait()
    create = await pair.seen.wait_for(
        lambda m: m.name == "ai-output" and run_of(m) == run.run_id
        and (m.extras or {}).get("ai", {}).get("transport", {}).get("stream") == "true")
    return run, stream, task, create.serial


async def test_a_publish_whose_ack_was_lost_is_retried_without_a_duplicate(
        pair: Pair, ably_broker: AblyBroker) -> None:
    """The service applied the publish but NACKed it (a lost ACK): the retry carries the same
    message id, so it is acknowledged without publishing twice. Client and agent side."""
    lost = ably_broker.faults.nack_next(1, channel=SESSION, after_apply=True)
    handle = await pair.client.send("hi")  # the client's ai-input: ids assigned by AblyChannel
    assert lost.fired == 1
    lost = ably_broker.faults.nack_next(1, channel=SESSION, after_apply=True)
    async with pair.agent.create_run(handle.invocation) as run:  # its ai-run-start
        result = await run.pipe(text_chunks(["Hello", "!"]))
    assert lost.fired == 1 and result.reason == "complete"
    assert (await handle.wait_ended(timeout=5)).status == "complete"
    names = [m["name"] for m in ably_broker.history(SESSION)]
    assert names.count("ai-input") == 1 and names.count("ai-run-start") == 1
    assert [m.name for m in pair.seen.messages].count("ai-run-start") == 1
    assert pair.client.messages[-1]["parts"][-1]["text"] == "Hello!"


async def test_a_transient_append_nack_is_retried_and_needs_no_repair(
        pair: Pair, ably_broker: AblyBroker) -> None:
    run, stream, task, serial = await held_run(pair, ["Hello", " there", "!"], hold_at=1)
    nack = ably_broker.faults.nack_next(1, channel=SESSION, appends_only=True)
    stream.release()
    assert (await task).reason == "complete"
    assert nack.fired == 1
    await pair.client.wait_run_ended(run.run_id, timeout=5)
    ops = streamed(pair.seen, serial)
    # Deltas written while the refused append was retried wait for it (coalesced), so the
    # retry cannot land after a later fragment, and no repair update is needed.
    assert ops[0].action == "message.create"
    assert {m.action for m in ops[1:]} == {"message.append"}
    assert "".join(m.data for m in ops) == "Hello there!"
    assert ops[-1].extras["ai"]["transport"]["status"] == "complete"  # type: ignore[index]


async def test_appends_that_keep_failing_are_repaired_by_one_full_text_update_at_the_end(
        pair: Pair, ably_broker: AblyBroker) -> None:
    run, stream, task, serial = await held_run(pair, ["Hello", " there", "!"], hold_at=1)
    nack = ably_broker.faults.nack_next(2, channel=SESSION, appends_only=True)  # = attempts
    stream.release()
    assert (await task).reason == "complete"
    assert nack.fired == 2, "the ' there' append was tried twice, then given up"
    await pair.client.wait_run_ended(run.run_id, timeout=5)
    updates = [m for m in streamed(pair.seen, serial) if m.action == "message.update"]
    assert [(u.data, u.extras["ai"]["transport"]["status"]) for u in updates] == [  # type: ignore[index]
        ("Hello there!", "complete")]
    assert pair.client.messages[-1]["parts"][-1]["text"] == "Hello there!", "live view repaired"
    stored = next(m for m in ably_broker.history(SESSION) if m["serial"] == serial)
    assert stored["data"] == "Hello there!"


async def test_a_repair_that_fails_too_ends_the_run_error_with_104000(
        pair: Pair, ably_broker: AblyBroker) -> None:
    run, stream, task, _ = await held_run(pair, ["Hello", " there", "!"], hold_at=1)
    down = ably_broker.faults.reject_mutations(channel=SESSION, code=50000, status_code=500,
                                               message="injected: mutations are down")
    stream.release()
    result = await task
    assert result.reason == "error" and result.error is not None
    assert result.error.code == 104000
    assert down.fired >= 4, "the append and the repair update were each tried twice"
    info = await pair.client.wait_run_ended(run.run_id, timeout=5)
    assert (info.status, info.error_code) == ("error", 104000)


async def test_a_channel_without_the_mutable_messages_rule_fails_the_run_with_one_clear_error(
        pair: Pair, ably_broker: AblyBroker) -> None:
    rule = ably_broker.faults.reject_mutations(channel=SESSION)  # 93002, like the service
    handle = await pair.client.send("hi")
    async with pair.agent.create_run(handle.invocation) as run:
        result = await run.pipe(text_chunks([f"t{i} " for i in range(20)]))
        await run.end(result)
    assert result.reason == "error" and result.error is not None
    assert result.error.code == 104000
    assert MUTABLE_MESSAGES_RULE in result.error.message and SESSION in result.error.message
    # The first append fails, and nothing else is tried: no repair update (it would be
    # refused too), no retries of 93002 and no failure per delta, of which there are 20.
    assert rule.fired == 1
    info = await handle.wait_ended(timeout=5)
    assert (info.status, info.error_code) == ("error", 104000)
    assert MUTABLE_MESSAGES_RULE in (info.error_message or "")


async def test_a_connection_drop_mid_stream_loses_nothing_duplicates_nothing_and_cancels_nothing(
        pair: Pair, ably_broker: AblyBroker) -> None:
    tokens = [f"w{i} " for i in range(12)]
    run, stream, task, serial = await held_run(pair, tokens, hold_at=2)
    agent_connection = pair.agent_channel.connection_id
    watcher = StateWatcher(pair.agent_channel.client)
    await run.flush()  # the first appends are acknowledged: the next one is sent at once
    # Hold the agent's deliveries, and so the ACK of its next append queued behind them.
    hold = ably_broker.faults.delay_delivery(60_000, channel=SESSION,
                                             connection_id=agent_connection)
    stream.release()
    # The append carrying w2 (with what was coalesced behind it) is applied, its ACK held.
    await pair.seen.wait_for(lambda m: m.serial == serial and "w2 " in (m.data or ""))
    assert not task.done()
    hold.cancel()
    assert ably_broker.faults.drop_connections(agent_connection) == 1  # the ACK is lost
    result = await task
    assert result.reason == "complete" and not run.cancelled
    info = await pair.client.wait_run_ended(run.run_id, timeout=10)
    assert info.status == "complete"
    fragments = [m for m in streamed(pair.seen, serial) if m.action == "message.append"]
    assert len({m.version_serial for m in fragments}) == len(fragments), "no duplicate"
    assert fragments[-1].extras["ai"]["transport"]["status"] == "complete"  # type: ignore[index]
    assert "".join(m.data for m in fragments) == "".join(tokens)
    stored = next(m for m in ably_broker.history(SESSION) if m["serial"] == serial)
    assert stored["data"] == "".join(tokens), "history equals what was streamed"
    assert pair.client.messages[-1]["parts"][-1]["text"] == "".join(tokens)
    assert any(c.current == ConnectionState.DISCONNECTED for c in watcher.changes)
    assert pair.agent_channel.connection_id == agent_connection, "resumed, not replaced"


async def test_a_cancel_sequence_reaches_the_client_while_the_agents_acks_are_held(
        pair: Pair, ably_broker: AblyBroker) -> None:
    """Over the real SDK: every delivery to the agent is held, and so are its ACKs (queued
    behind them); a cancel's whole terminal sequence still reaches the client, in order,
    because nothing in it waits for an acknowledgement. pipe() reports once they come."""
    run, _stream, task, serial = await held_run(pair, [f"w{i} " for i in range(8)], hold_at=2)
    await run.flush()
    agent_connection = pair.agent_channel.connection_id
    hold = ably_broker.faults.delay_delivery(60_000, channel=SESSION,
                                             connection_id=agent_connection)
    run.cancel()  # the agent's own Stop: a client's would be held on its way in too

    info = await pair.client.wait_run_ended(run.run_id, timeout=5)
    assert info.status == "cancelled" and not task.done()
    mine = [m for m in pair.seen.messages if m.serial == serial or run_of(m) == run.run_id]
    tail = [(m.name or m.action,
             (m.extras or {}).get("ai", {}).get("transport", {}).get("status")
             or (m.extras or {}).get("ai", {}).get("transport", {}).get("run-reason"))
            for m in mine][-3:]
    assert tail == [("message.append", "cancelled"), ("ai-step-end", None),
                    ("ai-run-end", "cancelled")]
    hold.cancel()
    assert ably_broker.faults.drop_connections(agent_connection) == 1  # resume: ACKs come
    assert (await task).reason == "cancelled"
    assert pair.client.messages[-1]["parts"][-1]["text"] == "w0 w1 "
