"""Multitask strategies: what the agent does when a new input arrives while it answers.

Each strategy end to end on the in-memory broker: what every client sees (run statuses,
reasons, errors), and the publish order on the wire. The LangGraph side (checkpoints under
``interrupt`` and ``rollback``) is in ``tests/integration/test_multitask_graph.py``; the
official JS client's view in ``tests/js``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    ClientSession,
    InMemoryBroker,
    InvalidArgumentError,
    PipeResult,
    Run,
)
from langgraph_interrupt._errors import RunRejectedError
from langgraph_interrupt.testing import ScriptedStream
from tests.conftest import SESSION
from tests.helpers import TOKENS, describe, run_records, start_streaming, transport


async def _agent(broker: InMemoryBroker, **options: Any) -> AgentSession:
    session = AgentSession(broker.channel(SESSION, client_id="agent"), trigger_timeout=1.0,
                           **options)
    await session.connect()
    return session


async def _second(client: ClientSession, agent: AgentSession, text: str = "and another thing",
                  **run_options: Any) -> tuple[Run, asyncio.Task[PipeResult]]:
    """A second input, its run started (admitted at once) in a task that pipes TOKENS."""
    handle = await client.send(text)
    run = agent.create_run(handle.invocation, **run_options)
    await run.admit()

    async def drive() -> PipeResult:
        async with run:
            return await run.pipe(ScriptedStream(TOKENS[:3]))

    return run, asyncio.create_task(drive())


def _names(broker: InMemoryBroker) -> list[tuple[str | None, str | None]]:
    return [(r.name, transport(r).get("run-id")) for r in broker.records or []
            if r.name in ("ai-run-start", "ai-run-end")]


async def test_concurrent_is_the_default_and_runs_alongside(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    first, stream, first_task = await start_streaming(client, agent)
    _, second_task = await _second(client, agent)
    assert (await second_task).reason == "complete"
    assert not first.cancelled, "the first run was not touched"
    stream.release()
    assert (await first_task).reason == "complete"


async def test_interrupt_cancels_the_active_run_with_a_reason_then_starts(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="interrupt")
    other = ClientSession(broker.channel(SESSION, client_id="other-device"))
    await other.connect()
    cancelling = asyncio.Event()
    may_end = asyncio.Event()

    async def slow_goodbye(run: Run, reason: object) -> None:  # a slow repair, say
        cancelling.set()
        await may_end.wait()

    first, _, first_task = await start_streaming(client, agent, on_cancelled=slow_goodbye)
    second, second_task = await _second(client, agent)
    await cancelling.wait()
    await asyncio.sleep(0)  # one loop turn: the only way to see that nothing happens
    assert second.state == "created", "the new run waits for the interrupted one to end"
    may_end.set()
    first_result = await first_task
    assert first_result.reason == "cancelled"
    reason = first_result.cancel_reason
    assert reason is not None and (reason.source, reason.name, reason.requester) == (
        "input", "new_input", "user-abc")
    assert (await second_task).reason == "complete"
    names = _names(broker)
    assert names.index(("ai-run-end", first.run_id)) < names.index(
        ("ai-run-start", second.run_id)), "the new run starts after the old one ended"
    assert [describe(r) for r in run_records(broker, first.run_id)][-1] == (
        "ai-run-end", "cancelled")
    for session in (client, other):
        info = await session.wait_run_ended(first.run_id, timeout=2)
        assert (info.status, info.cancel_reason) == ("cancelled", "new_input")
        assert (await session.wait_run_ended(second.run_id, timeout=2)).status == "complete"
    assert client.messages[-1]["parts"][-1]["text"] == "".join(TOKENS[:3])
    await other.close()
    await agent.close()


async def test_rollback_interrupts_and_marks_the_run_for_rollback(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="rollback")
    first, _, first_task = await start_streaming(client, agent)
    assert not first.rollback
    _, second_task = await _second(client, agent)
    assert (await first_task).reason == "cancelled"
    assert first.rollback, "run_graph reads it to discard the run's writes"
    assert (await second_task).reason == "complete"
    await agent.close()


async def test_enqueue_waits_for_the_active_run_then_starts(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="enqueue")
    first, stream, first_task = await start_streaming(client, agent)
    second, second_task = await _second(client, agent)
    await client.wait_for(lambda c: any(m.name == "ai-input" for m in list(c.received)[-1:]))
    assert ("ai-run-start", second.run_id) not in _names(broker), "queued: not started"
    assert agent._gate.queued == [second]
    stream.release()
    assert (await first_task).reason == "complete"
    assert (await second_task).reason == "complete"
    names = _names(broker)
    assert names.index(("ai-run-end", first.run_id)) < names.index(
        ("ai-run-start", second.run_id))
    await agent.close()


async def test_a_queued_run_cancelled_by_its_client_ends_on_the_wire_without_running(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="enqueue")
    first, stream, first_task = await start_streaming(client, agent)
    handle = await client.send("actually, never mind")
    second = agent.create_run(handle.invocation)
    await second.admit()
    starting = asyncio.create_task(second.start())
    await handle.cancel(reason="user_clicked_stop")
    with pytest.raises(Exception) as raised:
        await starting
    assert type(raised.value).__name__ == "OperationCancelledError"
    assert [describe(r) for r in run_records(broker, second.run_id)] == [
        ("ai-run-start",), ("ai-run-end", "cancelled")]
    info = await client.wait_run_ended(second.run_id, timeout=2)
    assert (info.status, info.cancel_reason) == ("cancelled", "user_clicked_stop")
    assert agent._gate.queued == [] and not first.cancelled
    stream.release()
    assert (await first_task).reason == "complete"
    await agent.close()


async def test_reject_refuses_the_input_and_ends_it_on_the_wire_with_a_reason(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="reject")
    _first, stream, first_task = await start_streaming(client, agent)
    handle = await client.send("are you there?")
    second = agent.create_run(handle.invocation)
    with pytest.raises(RunRejectedError) as raised:
        await second.start()
    assert raised.value.code == 40900 and raised.value.status_code == 409
    assert "1 run(s) already active" in raised.value.message
    assert [describe(r) for r in run_records(broker, second.run_id)] == [
        ("ai-run-start",), ("ai-run-end", "error")]
    info = await client.wait_run_ended(second.run_id, timeout=2)
    assert (info.status, info.error_code) == ("error", 40900)
    assert info.error_message == raised.value.message
    stream.release()
    assert (await first_task).reason == "complete", "the active run is not touched"
    await agent.close()


async def test_a_full_queue_is_a_rejection_and_a_flood_stays_bounded(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="enqueue", max_queued_runs=3)
    _, stream, first_task = await start_streaming(client, agent)
    queued: list[Run] = []
    refusals: list[str] = []
    for index in range(40):
        handle = await client.send(f"message {index}")
        run = agent.create_run(handle.invocation)
        try:
            await run.admit()
            queued.append(run)
        except RunRejectedError as exc:
            refusals.append(exc.message)
    assert (len(queued), len(refusals)) == (3, 37)
    assert all("queue is full (3 waiting)" in message for message in refusals)
    assert len(agent._gate.queued) == 3 and len(agent.runs) == 4
    stream.release()
    await first_task
    for run in queued:  # each in turn, in order
        async with run:
            await run.pipe(ScriptedStream(TOKENS[:1]))
    await agent.close()


async def test_max_active_runs_with_concurrent_refuses_past_the_limit(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, max_active_runs=2)
    _, stream, first_task = await start_streaming(client, agent)
    _, stream2, second_task = await start_streaming(client, agent)
    handle = await client.send("a third")
    with pytest.raises(RunRejectedError):
        await agent.create_run(handle.invocation).start()
    stream.release()
    stream2.release()
    await asyncio.gather(first_task, second_task)
    await agent.close()


async def test_interrupt_with_a_limit_cancels_only_the_oldest(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="interrupt", max_active_runs=2)
    _oldest, _, oldest_task = await start_streaming(client, agent)
    younger, stream, younger_task = await start_streaming(client, agent)
    _, third_task = await _second(client, agent)
    assert (await oldest_task).reason == "cancelled"
    assert (await third_task).reason == "complete"
    assert not younger.cancelled
    stream.release()
    assert (await younger_task).reason == "complete"
    await agent.close()


async def test_per_input_overrides_only_those_the_agent_allows(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="enqueue", multitask_overrides=["interrupt"])
    handle = await client.send("hello")
    with pytest.raises(InvalidArgumentError, match="does not allow the multitask strategy "
                                                   "'reject' per input"):
        agent.create_run(handle.invocation, multitask="reject")
    with pytest.raises(InvalidArgumentError, match="unknown multitask strategy 'yolo'"):
        agent.create_run(handle.invocation, multitask="yolo")
    with pytest.raises(InvalidArgumentError, match="unknown multitask strategy int"):
        agent.create_run(handle.invocation, multitask=7)  # type: ignore[arg-type]
    first, _, first_task = await start_streaming(client, agent)
    _, second_task = await _second(client, agent, multitask="interrupt")
    assert (await first_task).reason == "cancelled"
    assert (await second_task).reason == "complete"
    assert first.multitask == "enqueue"
    await agent.close()


async def test_a_suspended_run_is_not_active(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="reject")
    handle = await client.send("ask me something")
    waiting = agent.create_run(handle.invocation)
    await waiting.start()
    await waiting.suspend()
    _, task = await _second(client, agent)
    assert (await task).reason == "complete"
    await agent.close()


def test_strategy_arguments_are_checked() -> None:
    broker = InMemoryBroker()
    with pytest.raises(InvalidArgumentError, match="unknown multitask strategy 'fifo'"):
        AgentSession(broker.channel(SESSION), multitask="fifo")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        AgentSession(broker.channel(SESSION), max_active_runs=0)
    with pytest.raises(InvalidArgumentError, match="unknown multitask strategy"):
        AgentSession(broker.channel(SESSION), multitask_overrides=["later"])


async def test_closing_the_session_ends_queued_runs_cancelled_on_the_wire(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, multitask="enqueue")
    first, _, first_task = await start_streaming(client, agent)
    queued, queued_task = await _second(client, agent)
    await agent.close()
    assert (await first_task).reason == "cancelled"
    with pytest.raises(Exception) as raised:
        await queued_task
    assert type(raised.value).__name__ == "OperationCancelledError"
    for run in (first, queued):
        info = await client.wait_run_ended(run.run_id, timeout=2)
        assert (info.status, info.cancel_reason) == ("cancelled", "shutdown")
    assert [describe(r) for r in run_records(broker, queued.run_id)] == [
        ("ai-run-start",), ("ai-run-end", "cancelled")]
