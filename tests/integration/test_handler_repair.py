"""Drop-in mode: a Stop between the model's tool-call step and the tool node leaves a call
no tool answered; ``handler.repair(graph, config)`` makes the thread valid again."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langgraph_interrupt import (
    AgentSession,
    ClientSession,
    InMemoryBroker,
    RunCallbackHandler,
    RunCancelledError,
)
from langgraph_interrupt.testing import (
    FakeStreamingChatModel,
    StrictFakeChatModel,
    find_history_errors,
)


async def test_a_stop_before_the_tools_run_is_repaired_by_the_handler() -> None:
    ran: list[str] = []

    @tool
    async def search(query: str) -> str:
        """Search."""
        ran.append(query)
        return "found"

    llm = FakeStreamingChatModel([AIMessage("Let me search.", tool_calls=[
        {"name": "search", "args": {"query": "Kyoto"}, "id": "c1"}])])
    routed, stopped = asyncio.Event(), asyncio.Event()

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await llm.bind_tools([search]).ainvoke(state["messages"])]}

    async def route(state: MessagesState) -> dict[str, Any]:
        routed.set()  # the model's tool calls are committed; the tools have not started
        await stopped.wait()
        return {}

    graph = (StateGraph(MessagesState).add_node(agent).add_node("route", route)
             .add_node("tools", ToolNode([search])).add_edge(START, "agent")
             .add_edge("agent", "route").add_conditional_edges("route", tools_condition)
             .add_edge("tools", "agent").compile(checkpointer=InMemorySaver()))
    broker = InMemoryBroker()
    config: dict[str, Any] = {"configurable": {"thread_id": "ai:chat"}}
    async with ClientSession(broker.channel("ai:chat", client_id="user-1")) as client, \
            AgentSession(broker.channel("ai:chat", client_id="agent")) as session:
        handle = await client.send("q")
        async with session.create_run(handle.invocation) as run:
            handler = RunCallbackHandler(run)
            answering = asyncio.create_task(graph.ainvoke(
                {"messages": [("user", "q")]}, {**config, "callbacks": [handler]}))
            await routed.wait()
            await handle.cancel()
            await run.signal.wait()
            stopped.set()
            try:
                await answering
            except RunCancelledError:
                pass  # drop-in: the graph stops before the tool node
            before = (await graph.aget_state(config)).values["messages"]
            assert find_history_errors(before)  # the call c1 has no answer
            report = await handler.repair(graph, config)
        assert (await handle.wait_ended(timeout=5)).status == "cancelled"

    thread = (await graph.aget_state(config)).values["messages"]
    assert report.cancelled_calls == ["c1"] and ran == []
    assert find_history_errors(thread) == []
    StrictFakeChatModel(["ok"]).invoke([*thread, ("user", "again")])  # accepted
