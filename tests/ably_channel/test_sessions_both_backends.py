"""The agent-session scenarios on both backends: the in-memory broker, and AblyChannel with
the agent and the Python client on two real SDK connections through the offline broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from langgraph_interrupt import AgentSession, ChannelMessage, ClientSession
from langgraph_interrupt.testing import Inbox, ScriptedStream, text_chunks
from tests.ably_channel.conftest import Backend
from tests.helpers import TOKENS, start_streaming

SESSION = "ai:scenarios"


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[ClientSession]:
    session = ClientSession(await backend.open(SESSION, "user-abc"))
    await session.connect()
    yield session
    await session.close()


@pytest.fixture
async def agent(backend: Backend) -> AsyncIterator[AgentSession]:
    session = AgentSession(await backend.open(SESSION, "agent"), trigger_timeout=5.0)
    await session.connect()
    yield session
    await session.close()


def transport(message: ChannelMessage) -> dict[str, str]:
    extras: Any = message.extras or {}
    return dict(extras.get("ai", {}).get("transport", {}))


def lifecycle(client: ClientSession, run_id: str) -> list[tuple[str, ...]]:
    """The run's named (non-output) messages as the client received them, in order."""
    out: list[tuple[str, ...]] = []
    for m in client.received:
        t = transport(m)
        if t.get("run-id") != run_id or m.name in (None, "ai-output", "ai-input", "ai-cancel"):
            continue
        reason = t.get("run-reason") or t.get("step-reason")
        out.append((m.name, reason) if reason else (m.name,))  # type: ignore[arg-type]
    return out


async def test_an_answer_streams_to_the_client_and_into_history(
        backend: Backend, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    async with agent.create_run(handle.invocation) as run:
        result = await run.pipe(text_chunks(["Hello", " there", "!"]))
    assert result.reason == "complete"
    info = await handle.wait_ended(timeout=5)
    assert info.status == "complete"  # delivered after every output, in order
    assert client.messages[-1]["parts"][-1]["text"] == "Hello there!"
    assert lifecycle(client, run.run_id) == [
        ("ai-run-start",), ("ai-step-start",), ("ai-step-end", "complete"),
        ("ai-run-end", "complete")]
    late = ClientSession(await backend.open(SESSION, "late-joiner"))
    await late.connect()  # folds history up to its attach point
    assert late.messages == client.messages
    await late.close()


async def test_cancel_by_run_id_stops_the_source_and_ends_the_run_cancelled(
        client: ClientSession, agent: AgentSession) -> None:
    run, stream, task = await start_streaming(client, agent)
    await client.cancel(run.run_id)
    result = await task
    assert result.reason == "cancelled"
    assert result.cancel_reason is not None and result.cancel_reason.requester == "user-abc"
    assert stream.finalised.is_set(), "the source (the LLM stream) was closed"
    info = await client.wait_run_ended(run.run_id, timeout=5)
    assert info.status == "cancelled"
    assert client.messages[-1]["parts"][-1]["text"] == "w0 w1 w2 "
    assert lifecycle(client, run.run_id)[-2:] == [("ai-step-end", "cancelled"),
                                                  ("ai-run-end", "cancelled")]


async def test_cancel_by_input_id_before_the_run_exists_is_honoured(
        client: ClientSession, agent: AgentSession) -> None:
    seen = Inbox()
    agent.channel.subscribe(seen)
    handle = await client.send("never mind")
    await handle.cancel()  # before the invocation reaches the agent
    await seen.wait_for(lambda m: m.name == "ai-cancel")  # the agent buffered it
    run = agent.create_run(handle.invocation)
    async with run:
        result = await run.pipe(ScriptedStream(TOKENS))
    assert result.reason == "cancelled"
    assert (await handle.wait_ended(timeout=5)).status == "cancelled"
    assert lifecycle(client, run.run_id) == [("ai-run-start",), ("ai-run-end", "cancelled")]


async def test_cancelling_one_of_several_concurrent_runs_leaves_the_others_streaming(
        client: ClientSession, agent: AgentSession) -> None:
    started = [await start_streaming(client, agent) for _ in range(3)]
    victim = started[1][0]
    await client.cancel(victim.run_id)
    assert (await started[1][2]).reason == "cancelled"
    for run, stream, task in (started[0], started[2]):
        assert not run.cancelled
        stream.release()
        assert (await task).reason == "complete"
    await client.wait_for(lambda c: len(c.runs) == 3 and all(r.ended for r in c.runs),
                          timeout=5)
    assert {r.run_id: r.status for r in client.runs} == {
        started[0][0].run_id: "complete", victim.run_id: "cancelled",
        started[2][0].run_id: "complete"}


async def test_suspend_then_a_continuation_resumes_the_same_run(
        client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("where am I?")
    run = agent.create_run(handle.invocation)
    await run.start()
    result = await run.pipe([
        {"type": "start"},
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "where", "input": {}},
        {"type": "finish", "finishReason": "tool-calls"}])
    assert result.suspend_requested
    await run.suspend()
    await client.wait_for(lambda c: c.run(run.run_id) and c.run(run.run_id).status == "suspended",
                          timeout=5)
    target = client.decoder.entries()[-1].codec_message_id
    resume = await client.send_tool_result(run_id=run.run_id, codec_message_id=target,
                                           tool_call_id="c1", output={"city": "Paris"})
    async with agent.create_run(resume.invocation) as resumed:
        assert resumed.run_id == run.run_id and resumed.trigger is not None
        assert resumed.trigger.is_continuation
        await resumed.pipe(text_chunks(["Paris."]))
    assert (await client.wait_run_ended(run.run_id, timeout=5)).status == "complete"
    names = [name for name, *_ in lifecycle(client, run.run_id)]
    assert names.count("ai-run-suspend") == 1 and names.count("ai-run-resume") == 1
    assert names[-1] == "ai-run-end"
    tool = client.messages[1]["parts"][-1]
    assert tool["state"] == "output-available" and tool["output"] == {"city": "Paris"}
