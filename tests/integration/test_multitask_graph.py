"""Multitask strategies with a real LangGraph graph: the thread after an interruption.

A run is in the middle of two parallel slow tool calls when a new input arrives. Under
``interrupt`` the old run's thread is repaired (every call answered, the partial answer
kept) before the new run reads it; under ``rollback`` the thread is as before the old
run, its input included. Either way the next model call sees a valid history (the strict
fake model raises on anything a provider would refuse).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_interrupt import AgentSession, CancelReason, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import run_graph, unanswered_tool_calls
from langgraph_interrupt.testing import StrictFakeChatModel
from tests.conftest import SESSION
from tests.integration.test_runner import chat_graph

CFG = {"configurable": {"thread_id": SESSION}}
SEARCHES = AIMessage(content="Looking.", tool_calls=[
    {"name": "slow_search", "args": {"q": "a"}, "id": "call_a"},
    {"name": "slow_search", "args": {"q": "b"}, "id": "call_b"}])


def _graph(model: Any, started: threading.Event) -> Any:
    @tool
    async def slow_search(q: str) -> str:
        """Search slowly."""
        started.set()
        await asyncio.Event().wait()  # until cancelled
        return "never"

    return chat_graph(model, [slow_search], checkpointer=InMemorySaver())


def _summary(values: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in values.get("messages", [])]


@pytest.mark.parametrize("earlier_turn", [True, False], ids=["after-a-turn", "first-turn"])
@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_new_input_interrupts_a_run_mid_tool_and_the_thread_stays_valid(
        broker: InMemoryBroker, client: ClientSession, strategy: str,
        earlier_turn: bool) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), multitask=strategy)
    await agent.connect()
    started = threading.Event()
    script = ["Hello there.", SEARCHES, "A poem instead."] if earlier_turn else [
        SEARCHES, "A poem instead."]
    model = StrictFakeChatModel(script)
    graph = _graph(model, started)
    if earlier_turn:
        hello = await client.send("hi")
        assert (await run_graph(graph, agent.create_run(hello.invocation))).reason == "complete"
    before = await graph.aget_state(CFG)

    first = await client.send("search a and b")
    first_task = asyncio.create_task(run_graph(graph, agent.create_run(first.invocation)))
    await asyncio.to_thread(started.wait, 5)
    second = await client.send("no, write a poem")
    second_run = agent.create_run(second.invocation)
    await second_run.admit()  # the endpoint's order: admitted, then the agent runs it
    second_outcome = await run_graph(graph, second_run)
    first_outcome = await first_task

    assert first_outcome.reason == "cancelled"
    assert first_outcome.cancel_reason is not None
    assert first_outcome.cancel_reason.name == "new_input"
    assert first_outcome.rolled_back is (strategy == "rollback")
    timeline = first_outcome.interruption
    assert timeline is not None and timeline.reason == "new_input"
    assert timeline.published_at is not None and timeline.total is not None
    assert second_outcome.reason == "complete"
    ended = await first.wait_ended(timeout=5)
    assert (ended.status, ended.cancel_reason) == ("cancelled", "new_input")
    parts = [p for m in client.messages for p in m["parts"] if p["type"] == "tool-slow_search"]
    assert [p["state"] for p in parts] == ["output-error", "output-error"], \
        "on the channel the interrupted run's tools are marked cancelled either way"

    prompt = _summary({"messages": model.calls[-1]})  # what the new run's model saw
    earlier = _summary(before.values)
    if strategy == "rollback":
        assert prompt == [*earlier, ("human", "no, write a poem")]
    else:
        assert prompt[:len(earlier) + 2] == [*earlier, ("human", "search a and b"),
                                             ("ai", "Looking.")]
        assert [kind for kind, _ in prompt[len(earlier) + 2:]] == ["tool", "tool", "human"]
    after = (await graph.aget_state(CFG)).values
    assert unanswered_tool_calls(after["messages"]) == {}
    assert _summary(after)[-2:] == [("human", "no, write a poem"), ("ai", "A poem instead.")]
    await agent.close()


async def test_rollback_right_after_the_run_began_leaves_the_thread_as_it_was(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """Cancelled as it began: the thread is as before."""
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), multitask="rollback")
    await agent.connect()
    model = StrictFakeChatModel(["Hello there.", "Second."])
    graph = _graph(model, threading.Event())
    hello = await client.send("hi")
    await run_graph(graph, agent.create_run(hello.invocation))
    before = await graph.aget_state(CFG)
    first = await client.send("something")
    first_run = agent.create_run(first.invocation)
    await first_run.start()
    first_run.cancel(CancelReason("input", rollback=True))
    outcome = await run_graph(graph, first_run)
    assert (outcome.reason, outcome.rolled_back) == ("cancelled", False), \
        "cancelled before it had the thread: the graph never ran, nothing to undo"
    after = await graph.aget_state(CFG)
    assert (after.values, after.next) == (before.values, before.next)
    await agent.close()


async def test_concurrent_runs_of_one_thread_take_turns_and_both_turns_are_kept(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """``concurrent`` (the default): the second run starts on the wire at once, waits for
    the thread, and then sees the first run's finished turn; nothing is overwritten."""
    agent = AgentSession(broker.channel(SESSION, client_id="agent"))
    await agent.connect()
    started, release = threading.Event(), asyncio.Event()

    @tool
    async def slow_job(q: str) -> str:
        """A job that takes a while."""
        started.set()
        await release.wait()
        return "job finished"

    model = StrictFakeChatModel([
        AIMessage(content="Starting.", tool_calls=[{"name": "slow_job", "args": {"q": "x"},
                                                    "id": "call_job"}]),
        "The job is over.",
        lambda messages: f"You asked {sum(m.type == 'human' for m in messages)} things."])
    graph = chat_graph(model, [slow_job], checkpointer=InMemorySaver())
    first = await client.send("start the job")
    first_task = asyncio.create_task(run_graph(graph, agent.create_run(first.invocation)))
    await asyncio.to_thread(started.wait, 5)
    second = await client.send("meanwhile, a question")
    second_run = agent.create_run(second.invocation)
    second_task = asyncio.create_task(run_graph(graph, second_run))
    await second.wait_started(timeout=2)  # on the wire at once ...
    assert len(model.calls) == 2 - 1, "... but its graph waits for the thread"
    release.set()
    assert (await first_task).reason == "complete"
    assert (await second_task).reason == "complete"
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert _summary({"messages": messages}) == [
        ("human", "start the job"), ("ai", "Starting."), ("tool", "job finished"),
        ("ai", "The job is over."), ("human", "meanwhile, a question"),
        ("ai", "You asked 2 things.")]
    await agent.close()


async def test_a_run_cancelled_while_it_waits_for_its_thread_ends_without_running(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"))
    await agent.connect()
    started = threading.Event()
    model = StrictFakeChatModel([SEARCHES, "after"])
    graph = _graph(model, started)
    first = await client.send("search")
    first_run = agent.create_run(first.invocation)
    first_task = asyncio.create_task(run_graph(graph, first_run))
    await asyncio.to_thread(started.wait, 5)
    second = await client.send("hello?")
    second_task = asyncio.create_task(run_graph(graph, agent.create_run(second.invocation)))
    await second.wait_started(timeout=2)
    await second.cancel(reason="user_clicked_stop")
    outcome = await second_task
    assert outcome.reason == "cancelled" and outcome.repair is None
    assert len(model.calls) == 1, "the waiting run never called the model"
    first_run.cancel()
    assert (await first_task).reason == "cancelled"
    assert unanswered_tool_calls((await graph.aget_state(CFG)).values["messages"]) == {}
    await agent.close()
