"""Regressions from the review of the multitask and steering work (each failed before its
fix): a POST naming a steer, closing with an admitted run, a refused continuation, an input
cancelled before admission, a hostile steer id, run deadlines, a cancel while waiting for a
LangGraph thread."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from langgraph_interrupt import (
    AbortController,
    AgentSession,
    ClientSession,
    InMemoryBroker,
    InvalidArgumentError,
    InvalidInvocationError,
    OutboundMessage,
)
from langgraph_interrupt._errors import RunRejectedError
from langgraph_interrupt._wire import make_extras
from langgraph_interrupt.testing import ScriptedStream
from tests.conftest import SESSION
from tests.helpers import TOKENS, describe, run_records, start_streaming


async def _agent(broker: InMemoryBroker, **options: Any) -> AgentSession:
    session = AgentSession(broker.channel(SESSION, client_id="agent"), trigger_timeout=1.0,
                           **options)
    await session.connect()
    return session


async def test_an_invocation_naming_a_steer_is_refused_and_leaves_the_run_alone(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, _, task = await start_streaming(client, agent)
    steer = await client.steer(run.run_id, "and shorter")
    await client.wait_for(lambda c: any(m.name == "ai-input" and (m.extras or {})["ai"][
        "transport"].get("codec-message-id") == steer.codec_message_id for m in c.received))
    from langgraph_interrupt import Invocation

    rogue = agent.create_run(Invocation(inputEventId=steer.event_id, sessionName=SESSION))
    assert rogue.run_id != run.run_id
    with pytest.raises(InvalidInvocationError, match="is a steer into run"):
        await rogue.start()
    await client.cancel(run.run_id)  # the real run is still reachable
    assert (await task).reason == "cancelled"


async def test_closing_ends_a_run_waiting_for_the_run_it_interrupted_on_the_wire(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="interrupt")
    gate = asyncio.Event()

    async def slow_goodbye(run: Any, reason: Any) -> None:
        await gate.wait()

    _, _, first_task = await start_streaming(client, agent, on_cancelled=slow_goodbye)
    handle = await client.send("something else")
    second = agent.create_run(handle.invocation)
    await second.admit()  # the POST is answered with second.run_id
    starting = asyncio.create_task(second.start())
    closing = asyncio.create_task(agent.close())
    await asyncio.sleep(0)
    gate.set()
    await closing
    await asyncio.gather(first_task, starting, return_exceptions=True)
    info = await client.wait_run_ended(second.run_id, timeout=2)
    assert (info.status, info.cancel_reason) == ("cancelled", "shutdown")


async def test_a_refused_continuation_leaves_the_suspended_run_suspended(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="reject")
    handle = await client.send("where am I?")
    run = agent.create_run(handle.invocation)
    await run.start()
    await run.pipe([{"type": "start"}, {"type": "tool-input-available", "toolCallId": "c1",
                                        "toolName": "where", "input": {}},
                    {"type": "finish", "finishReason": "tool-calls"}])
    await run.suspend()
    _, stream, busy = await start_streaming(client, agent)
    target = client.decoder.entries()[1].codec_message_id
    answer = await client.send_tool_result(run_id=run.run_id, codec_message_id=target,
                                           tool_call_id="c1", output={"city": "Paris"})
    with pytest.raises(RunRejectedError):
        await agent.create_run(answer.invocation).admit()
    assert [describe(r) for r in run_records(broker, run.run_id)
            if r.name and r.name.startswith("ai-run")] == [("ai-run-start",),
                                                            ("ai-run-suspend",)]
    stream.release()
    await busy
    resumed = agent.create_run(answer.invocation)  # the same answer, once the agent is free
    async with resumed:
        await resumed.pipe(ScriptedStream(["Paris."]))
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "complete"


async def test_an_input_cancelled_before_admission_interrupts_nothing(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="interrupt")
    first, stream, first_task = await start_streaming(client, agent)
    handle = await client.send("never mind")
    await handle.cancel()
    await client.wait_for(lambda c: sum(m.name == "ai-cancel" for m in c.received) == 1)
    second = agent.create_run(handle.invocation)
    await second.locate()  # the buffered cancel applies
    assert second.cancelled
    await second.admit()
    assert not first.cancelled
    stream.release()
    assert (await first_task).reason == "complete"


async def test_a_steer_with_a_huge_id_is_not_a_steer(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, stream, task = await start_streaming(client, agent)
    huge = "s" * 20_000
    await client.channel.publish([OutboundMessage("ai-input", "hi", make_extras(
        {"role": "user", "codec-message-id": huge, "run-id": run.run_id, "event-id": "e-huge",
         "stream": "false", "discrete": "true"},
        {"kind": "user-message", "messageId": "m", "partType": "text"}))])
    await client.wait_for(lambda c: sum(m.name == "ai-input" for m in c.received) == 2)
    await asyncio.sleep(0)
    assert run._steering.unanswered() == ()
    stream.release()
    await task


def test_a_run_timeout_must_be_positive(broker: InMemoryBroker) -> None:
    from langgraph_interrupt import Invocation

    session = AgentSession(broker.channel(SESSION, client_id="agent"), run_timeout=30)
    invocation = Invocation(inputEventId="e", sessionName=SESSION)
    for bad in (0, -1):
        with pytest.raises(InvalidArgumentError, match="timeout must be positive"):
            session.create_run(invocation, timeout=bad)


async def test_a_run_cancelled_while_waiting_for_its_thread_stops_waiting() -> None:
    from langgraph_interrupt.integration._thread_turn import thread_turn

    class Graph:
        checkpointer = object.__new__(type("Saver", (), {}))

    graph, cfg = Graph(), {"configurable": {"thread_id": "t"}}
    first_in, first_out = asyncio.Event(), asyncio.Event()
    second_in, second_out = asyncio.Event(), asyncio.Event()

    async def holder(entered: asyncio.Event, leave: asyncio.Event) -> None:
        async with thread_turn(graph, cfg, AbortController().signal):
            entered.set()
            await leave.wait()

    first = asyncio.create_task(holder(first_in, first_out))
    await first_in.wait()
    second = asyncio.create_task(holder(second_in, second_out))  # waits its turn
    waiting = AbortController()
    got: list[bool] = []

    async def third() -> None:
        async with thread_turn(graph, cfg, waiting.signal) as ours:
            got.append(ours)

    first_out.set()  # the thread is handed to the second run ...
    late = asyncio.create_task(third())  # ... and the third arrives in that very turn
    await second_in.wait()
    waiting.abort()
    await asyncio.wait_for(late, 1)  # it stops waiting at once, not when the second leaves
    assert got == [False]
    second_out.set()
    await asyncio.gather(first, second)


class SlowAcks:
    """The agent's channel over a slow link: applied at once, acknowledged 50 ms later."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def publish(self, messages: Any) -> Any:
        serials = await self._inner.publish(messages)
        await asyncio.sleep(0.05)
        return serials

    async def append(self, serial: str, data: str, extras: Any) -> None:
        await self._inner.append(serial, data, extras)
        await asyncio.sleep(0.05)


async def test_an_interrupted_runs_end_is_on_the_wire_before_the_new_runs_start(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """Even when its last append waits for its stream's acknowledgement."""
    agent = AgentSession(SlowAcks(broker.channel(SESSION, client_id="agent")),
                         trigger_timeout=1.0, multitask="interrupt")
    await agent.connect()
    handle = await client.send("long story")
    first = agent.create_run(handle.invocation)
    stream = ScriptedStream(TOKENS, hold_at=1)  # its stream's create is still in flight

    async def drive() -> Any:
        async with first:
            return await first.pipe(stream)

    first_task = asyncio.create_task(drive())
    await stream.holding.wait()
    again = await client.send("a haiku instead")
    second = agent.create_run(again.invocation)
    await second.admit()
    async with second:
        await second.pipe(ScriptedStream(TOKENS[:2]))
    await first_task
    lifecycle = [(r.name, r.extras["ai"]["transport"]["run-id"]) for r in broker.records or []
                 if r.name in ("ai-run-start", "ai-run-end")]
    assert lifecycle == [("ai-run-start", first.run_id), ("ai-run-end", first.run_id),
                         ("ai-run-start", second.run_id), ("ai-run-end", second.run_id)]
    await agent.close()
