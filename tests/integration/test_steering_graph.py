"""Steering a running LangGraph graph: the steer reaches the next model call as a human
message at a clean step boundary, the thread stays valid, the client reads ``consumed``."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import run_graph, unanswered_tool_calls
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors
from tests.conftest import SESSION
from tests.integration.test_runner import chat_graph

CFG = {"configurable": {"thread_id": SESSION}}
SEARCHES = AIMessage(content="Searching.", tool_calls=[
    {"name": "search", "args": {"q": "restaurants"}, "id": "call_a"},
    {"name": "search", "args": {"q": "menus"}, "id": "call_b"}])


def answer(messages: list[BaseMessage]) -> str:
    """The model's reply names every human message it was given, in order."""
    humans = [m.text for m in messages if isinstance(m, HumanMessage)]
    tools = sum(m.type == "tool" for m in messages)
    return f"Heard: {' | '.join(humans)}; {tools} results."


def slow_search(started: threading.Event, release: asyncio.Event) -> Any:
    @tool
    async def search(q: str) -> str:
        """Search, slowly."""
        started.set()
        await release.wait()
        return f"found {q}"

    return search


async def steer_during_tools(client: ClientSession, agent: AgentSession, graph: Any,
                             started: threading.Event) -> tuple[Any, Any, Any, Any]:
    """Ask for dinner, run the graph, and steer ("vegan options please") while its tools
    run; returns (send handle, run, the run_graph task, the steer handle) once the agent
    has the steer."""
    handle = await client.send("find a place for dinner")
    hinted = asyncio.Event()
    run = agent.create_run(handle.invocation, on_steer=lambda run, steer: hinted.set())
    task = asyncio.create_task(run_graph(graph, run))
    await asyncio.to_thread(started.wait, 5)
    steer = await client.steer(run.run_id, "vegan options please")
    await hinted.wait()
    return handle, run, task, steer


def summary(messages: list[BaseMessage]) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in messages]


async def test_a_steer_during_parallel_tools_reaches_the_next_model_call(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    started, release = threading.Event(), asyncio.Event()
    model = StrictFakeChatModel([SEARCHES, answer])
    graph = chat_graph(model, [slow_search(started, release)], checkpointer=InMemorySaver())
    _, _, task, steer = await steer_during_tools(client, agent, graph, started)
    release.set()
    outcome = await task
    assert outcome.reason == "complete", outcome.error
    assert len(model.calls) == 2, "no extra round: the steer joined the call after the tools"
    assert summary(model.calls[1])[-3:] == [
        ("tool", "found restaurants"), ("tool", "found menus"),
        ("human", "vegan options please")], "after both tool results, never between"
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert find_history_errors(messages) == [] and unanswered_tool_calls(messages) == {}
    assert [m.text for m in messages].count("vegan options please") == 1
    assert messages[-1].text == "Heard: find a place for dinner | vegan options please; " \
                                "2 results."
    result = await steer.outcome(timeout=2)
    assert (result.consumed, result.run_end_reason) == (True, "complete")
    answered = [m for m in client.messages if m["role"] == "assistant"][-1]
    assert answered["parts"][-1]["text"].startswith("Heard: find a place")


async def test_a_steer_while_the_last_answer_streams_goes_round_once_more(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    gate = asyncio.Event()
    streaming = threading.Event()

    def first(messages: list[BaseMessage]) -> str:
        streaming.set()
        return "A long answer " * 5

    model = StrictFakeChatModel([first, answer], token_delay=0.01)
    graph = chat_graph(model, checkpointer=InMemorySaver())
    handle = await client.send("tell me about Lisbon")
    hinted = asyncio.Event()
    run = agent.create_run(handle.invocation, on_steer=lambda run, steer: hinted.set())
    task = asyncio.create_task(run_graph(graph, run))
    await client.wait_for(lambda c: run.progress.tokens >= 2)
    steer = await client.steer(run.run_id, "in one sentence")
    gate.set()
    outcome = await task
    assert outcome.reason == "complete" and len(model.calls) == 2
    assert summary(model.calls[1])[-1] == ("human", "in one sentence")
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]
    assert find_history_errors(messages) == []
    assert (await steer.outcome(timeout=2)).consumed


async def test_a_steer_the_cancel_overtakes_is_not_consumed_and_the_thread_is_valid(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    started, release = threading.Event(), asyncio.Event()
    model = StrictFakeChatModel([SEARCHES, "after the cancel"])
    graph = chat_graph(model, [slow_search(started, release)], checkpointer=InMemorySaver())
    handle, _, task, steer = await steer_during_tools(client, agent, graph, started)
    await handle.cancel()
    assert (await task).reason == "cancelled"
    result = await steer.outcome(timeout=2)
    assert (result.consumed, result.run_end_reason) == (False, "cancelled")
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert unanswered_tool_calls(messages) == {}
    again = await client.send("so?")
    assert (await run_graph(graph, agent.create_run(again.invocation))).reason == "complete"


async def test_without_a_checkpointer_a_steer_is_taken_in_by_one_more_round(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    started, release = threading.Event(), asyncio.Event()
    model = StrictFakeChatModel([SEARCHES, "Done searching.", answer])
    graph = chat_graph(model, [slow_search(started, release)])
    _, _, task, steer = await steer_during_tools(client, agent, graph, started)
    release.set()
    assert (await task).reason == "complete"
    assert len(model.calls) == 3
    assert summary(model.calls[2])[-1] == ("human", "vegan options please")
    assert (await steer.outcome(timeout=2)).consumed


@pytest.mark.skipif(importlib.util.find_spec("langchain") is None,
                    reason="create_agent comes with the optional langchain package")
async def test_create_agent_takes_a_steer_in_after_its_tools(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    from langchain.agents import create_agent

    started, release = threading.Event(), asyncio.Event()
    model = StrictFakeChatModel([SEARCHES, answer])
    graph = create_agent(model, [slow_search(started, release)],
                         checkpointer=InMemorySaver())
    _, _, task, steer = await steer_during_tools(client, agent, graph, started)
    release.set()
    assert (await task).reason == "complete"
    assert summary(model.calls[1])[-1] == ("human", "vegan options please")
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert find_history_errors(messages) == []
    assert [m.text for m in messages].count("vegan options please") == 1
    assert (await steer.outcome(timeout=2)).consumed


async def test_a_steer_while_the_model_asks_for_tools_waits_for_their_results(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """Never between an AI message and its tool results: the steer joins after them."""
    started, release = threading.Event(), asyncio.Event()
    release.set()  # the tools answer at once
    asking = AIMessage(content="Let me search for that " * 10, tool_calls=SEARCHES.tool_calls)
    model = StrictFakeChatModel([asking, answer], token_delay=0.01)
    graph = chat_graph(model, [slow_search(started, release)], checkpointer=InMemorySaver())
    handle = await client.send("find a place for dinner")
    run = agent.create_run(handle.invocation)
    task = asyncio.create_task(run_graph(graph, run))
    await client.wait_for(lambda c: run.progress.tokens >= 2)  # the model is streaming
    steer = await client.steer(run.run_id, "vegan options please")
    outcome = await task
    assert outcome.reason == "complete", outcome.error
    assert len(model.calls) == 2
    assert [kind for kind, _ in summary(model.calls[1])] == [
        "human", "ai", "tool", "tool", "human"]
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert find_history_errors(messages) == []
    assert (await steer.outcome(timeout=2)).consumed


async def test_a_malformed_steer_is_skipped_and_the_run_unharmed(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    from langgraph_interrupt import OutboundMessage
    from langgraph_interrupt._wire import make_extras

    started, release = threading.Event(), asyncio.Event()
    model = StrictFakeChatModel([SEARCHES, answer])
    graph = chat_graph(model, [slow_search(started, release)], checkpointer=InMemorySaver())
    handle = await client.send("find a place for dinner")
    hinted = asyncio.Event()
    run = agent.create_run(handle.invocation, on_steer=lambda run, steer: hinted.set())
    task = asyncio.create_task(run_graph(graph, run))
    await asyncio.to_thread(started.wait, 5)
    for data, part in (({"not": "text"}, "text"), ("x" * 10, "no-such-part"), (None, "file")):
        await client.channel.publish([OutboundMessage("ai-input", data, make_extras(
            {"role": "user", "codec-message-id": f"bad-{part}", "run-id": run.run_id,
             "event-id": f"e-{part}", "stream": "false", "discrete": "true"},
            {"kind": "user-message", "messageId": f"m-{part}", "partType": part}))])
    await hinted.wait()
    release.set()
    outcome = await task
    assert outcome.reason == "complete", outcome.error
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert find_history_errors(messages) == [] and unanswered_tool_calls(messages) == {}
    assert [m.text for m in model.calls[-1] if m.type == "human"] == [
        "find a place for dinner"], "unreadable steers never reach the model"


# -- graphs driven by the app (the drop-in handler) ---------------------------------------------
async def steer_a_drop_in_run(client: ClientSession, agent: AgentSession, graph: Any,
                              started: threading.Event, release: asyncio.Event) -> Any:
    """The app runs ``graph`` itself with the drop-in handler; a steer comes while the tools
    run. Returns the client's steer handle once the graph has finished."""
    from langgraph_interrupt.integration import RunCallbackHandler

    handle = await client.send("find a place for dinner")
    hinted = asyncio.Event()
    async with agent.create_run(handle.invocation,
                                on_steer=lambda run, steer: hinted.set()) as run:
        config: Any = {**CFG, "callbacks": [RunCallbackHandler(run)]}
        call = asyncio.create_task(graph.ainvoke(
            {"messages": [HumanMessage("find a place for dinner")]}, config))
        await asyncio.to_thread(started.wait, 5)
        steer = await client.steer(run.run_id, "vegan options please")
        await hinted.wait()
        release.set()
        await call
    return steer


async def test_a_model_node_takes_steers_in_with_take_steers(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    from langgraph_interrupt.integration import take_steers

    started, release = threading.Event(), asyncio.Event()
    search = slow_search(started, release)
    model = StrictFakeChatModel([SEARCHES, answer]).bind_tools([search])

    async def agent_node(state: MessagesState) -> dict[str, Any]:
        steers = await take_steers()
        reply = await model.ainvoke([*state["messages"], *steers])
        return {"messages": [*steers, reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent_node)
    builder.add_node("tools", ToolNode([search]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile(checkpointer=InMemorySaver())
    steer = await steer_a_drop_in_run(client, agent, graph, started, release)
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "tool", "tool", "human", "ai"]
    assert messages[-2].text == "vegan options please" and find_history_errors(messages) == []
    assert messages[-1].text.startswith("Heard: find a place for dinner | vegan options")
    assert (await steer.outcome(timeout=2)).consumed
    assert await take_steers() == [], "outside a run: nothing"


@pytest.mark.skipif(importlib.util.find_spec("langchain") is None,
                    reason="create_agent comes with the optional langchain package")
async def test_create_agent_with_the_steering_middleware_takes_steers_in(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    from langchain.agents import create_agent

    from langgraph_interrupt.integration import steering_middleware

    started, release = threading.Event(), asyncio.Event()
    model = StrictFakeChatModel([SEARCHES, answer])
    graph = create_agent(model, [slow_search(started, release)],
                         middleware=[steering_middleware()], checkpointer=InMemorySaver())
    steer = await steer_a_drop_in_run(client, agent, graph, started, release)
    assert summary(model.calls[1])[-1] == ("human", "vegan options please")
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert find_history_errors(messages) == []
    assert [m.text for m in messages].count("vegan options please") == 1
    assert (await steer.outcome(timeout=2)).consumed


async def test_a_failure_taking_a_steer_in_mid_run_ends_the_run_error(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from langgraph_interrupt._errors import HistoryFetchFailedError
    from langgraph_interrupt.integration import _steer_input

    started, release = threading.Event(), asyncio.Event()
    graph = chat_graph(StrictFakeChatModel([SEARCHES, answer]),
                       [slow_search(started, release)], checkpointer=InMemorySaver())
    handle = await client.send("find a place for dinner")
    hinted = asyncio.Event()
    run = agent.create_run(handle.invocation, on_steer=lambda run, steer: hinted.set())
    task = asyncio.create_task(run_graph(graph, run))
    await asyncio.to_thread(started.wait, 5)

    async def broken(channel: Any) -> Any:
        raise HistoryFetchFailedError("unable to read history; broker down")

    monkeypatch.setattr(_steer_input, "load_conversation", broken)
    await client.steer(run.run_id, "vegan options please")
    await hinted.wait()
    release.set()
    outcome = await task  # an outcome, never raised
    assert outcome.reason == "error" and outcome.error is not None
    info = await handle.wait_ended(timeout=2)
    assert (info.status, info.error_code) == ("error", 104011)
