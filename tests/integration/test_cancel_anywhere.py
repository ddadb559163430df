"""Property: wherever a cancel lands, in either mode, the thread is left valid.

Hypothesis picks the point (token k of the LLM stream, tool i of a parallel tool step, a
plain node, inside a shielded node) and the mode; every example checks the five promises of the
issue: the run ended ``cancelled``; nothing of it was published after ``ai-run-end``; the
checkpoint has no unanswered tool call; what the user saw is saved; the strict fake model
accepts the next turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import (
    cancellable,
    get_abort_signal,
    run_graph,
    unanswered_tool_calls,
)
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors
from tests.helpers import describe, run_records

TOOLS = 3
WORDS = " ".join(f"w{i}" for i in range(40))
CALLS = AIMessage(content=WORDS, tool_calls=[
    {"name": "work", "args": {"i": i}, "id": f"call_{i}"} for i in range(TOOLS)])

points = st.one_of(
    st.tuples(st.just("token"), st.integers(min_value=1, max_value=35)),
    st.tuples(st.just("tool"), st.integers(min_value=0, max_value=TOOLS - 1)),
    st.tuples(st.just("node"), st.just(0)),
    st.tuples(st.just("shielded"), st.just(0)),
)


async def scenario(point: tuple[str, int], mode: str) -> None:
    broker = InMemoryBroker(record=True)
    client = ClientSession(broker.channel("ai:prop", client_id="user"))
    agent = AgentSession(broker.channel("ai:prop", client_id="agent"), trigger_timeout=1.0)
    await client.connect()
    await agent.connect()
    reached = asyncio.Event()
    first_turn_over = asyncio.Event()
    kind, where = point

    @tool
    async def work(i: int) -> str:
        """Work until released or cancelled (it polls the run's signal)."""
        if first_turn_over.is_set():
            return f"tool {i} done"
        if kind == "tool" and i == where:
            reached.set()
        await get_abort_signal().wait()
        return f"tool {i} stopped early"

    release = asyncio.Event()
    shielded_done: list[bool] = []

    async def prep(state: MessagesState) -> dict[str, Any]:
        if kind == "node" and not reached.is_set():  # only the first turn is cancelled
            reached.set()
            await get_abort_signal().wait()
        return {}

    @cancellable(shielded=True)
    async def critical(state: MessagesState) -> dict[str, Any]:
        if kind == "shielded" and not reached.is_set():
            reached.set()
            await release.wait()  # the cancel lands here and must not interrupt the body
            shielded_done.append(True)
        return {}

    model = StrictFakeChatModel([CALLS, "All done.", "Fresh answer."], token_delay=0.001)

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("prep", prep)
    builder.add_node("critical", critical)
    builder.add_node("agent", call_model)
    builder.add_node("tools", ToolNode([work]))
    builder.add_edge(START, "prep")
    builder.add_edge("prep", "critical")
    builder.add_edge("critical", "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile(checkpointer=InMemorySaver())

    if kind == "token":
        def on_message(message: Any) -> None:
            text = "".join(p.get("text", "") for m in client.messages[-1:]
                           for p in m["parts"] if p["type"] == "text")
            if len(text.split()) >= where:
                reached.set()
        client.on_message(on_message)

    handle = await client.send("go")
    run = agent.create_run(handle.invocation)
    task = asyncio.create_task(run_graph(graph, run, cancel_mode=mode, drain_grace=0.5))
    await asyncio.wait_for(reached.wait(), 5)
    await handle.cancel()
    if kind == "shielded":
        await asyncio.wait_for(run.signal.wait(), 5)
        release.set()  # only now may the shielded body finish
    outcome = await asyncio.wait_for(task, 5)
    if kind == "shielded":
        assert shielded_done == [True], "the shielded body ran to its end"
    first_turn_over.set()

    assert outcome.reason == "cancelled", outcome
    ops = [describe(r) for r in run_records(broker, run.run_id)]
    assert ops[-1] == ("ai-run-end", "cancelled"), ops
    cfg = {"configurable": {"thread_id": "ai:prop"}}
    messages = (await graph.aget_state(cfg)).values["messages"]
    assert unanswered_tool_calls(messages) == {}
    assert find_history_errors(messages) == [], find_history_errors(messages)
    seen = "".join(p.get("text", "") for m in client.messages if m["role"] == "assistant"
                   for p in m["parts"] if p["type"] == "text")
    saved = "".join(str(m.content) for m in messages if m.type == "ai")
    assert saved == seen, (saved, seen)

    again = await client.send("and now?")
    after = await asyncio.wait_for(run_graph(graph, agent.create_run(again.invocation)), 5)
    assert after.reason == "complete", after
    await agent.close()
    await client.close()


@pytest.mark.timeout(120)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(point=points, mode=st.sampled_from(["immediate", "drain"]))
def test_a_cancel_anywhere_leaves_a_valid_thread(point: tuple[str, int], mode: str) -> None:
    asyncio.run(scenario(point, mode))
