"""Conditional interruption with a real graph: the facts ``on_cancel`` gets (node, whether
the model is generating) and a "drain" answer, under ``run_graph`` and the drop-in handler."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_interrupt import AgentSession, CancelRequest, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import RunCallbackHandler, run_graph
from langgraph_interrupt.testing import FakeStreamingChatModel, StrictFakeChatModel
from tests.conftest import SESSION
from tests.integration.test_runner import chat_graph

CFG = {"configurable": {"thread_id": SESSION}}
LOOKUP = AIMessage(content="", tool_calls=[{"name": "lookup", "args": {"q": "x"},
                                            "id": "call_1"}])


def _lookup_tool(started: asyncio.Event, release: asyncio.Event) -> Any:
    @tool
    async def lookup(q: str) -> str:
        """Look something up, slowly."""
        started.set()
        await release.wait()
        return "found it"

    return lookup


async def _agent(broker: InMemoryBroker, hook: Any) -> AgentSession:
    session = AgentSession(broker.channel(SESSION, client_id="agent"), on_cancel=hook)
    await session.connect()
    return session


async def test_a_cancel_during_a_tool_sees_the_tools_node_and_no_generation(
        broker: InMemoryBroker, client: ClientSession) -> None:
    facts: list[tuple[str | None, bool, int]] = []

    def hook(request: CancelRequest) -> str:
        facts.append((request.node, request.generating, request.tokens))
        return "drain"  # a tool with side effects is let finish

    agent = await _agent(broker, hook)
    started, release = asyncio.Event(), asyncio.Event()
    model = StrictFakeChatModel(["Let me look.", LOOKUP, "It was found."])
    graph = chat_graph(model, [_lookup_tool(started, release)], checkpointer=InMemorySaver())
    hello = await client.send("hi")
    await run_graph(graph, agent.create_run(hello.invocation))
    handle = await client.send("look it up")
    run = agent.create_run(handle.invocation)
    task = asyncio.create_task(run_graph(graph, run))
    await started.wait()
    await handle.cancel()
    await run.signal.wait()
    release.set()  # the drained step (the tool) finishes
    outcome = await task
    assert facts == [("tools", False, 0)]
    assert (outcome.reason, outcome.drained) == ("cancelled", True)
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert [m.content for m in messages if m.type == "tool"] == ["found it"], \
        "the drained tool's real result is kept"
    again = await client.send("and now?")
    assert (await run_graph(graph, agent.create_run(again.invocation))).reason == "complete"
    await agent.close()


async def test_a_cancel_while_the_model_streams_sees_the_model_node_generating(
        broker: InMemoryBroker, client: ClientSession) -> None:
    facts: list[tuple[str | None, bool]] = []
    agent = await _agent(broker, lambda request: facts.append(
        (request.node, request.generating)) or True)
    model = FakeStreamingChatModel([" ".join(["word"] * 200)], token_delay=0.02)
    graph = chat_graph(model, checkpointer=InMemorySaver())
    handle = await client.send("talk")
    run = agent.create_run(handle.invocation)
    task = asyncio.create_task(run_graph(graph, run))
    await client.wait_for(lambda c: run.progress.tokens >= 2)
    await handle.cancel()
    outcome = await task
    assert outcome.reason == "cancelled"
    assert facts == [("agent", True)]
    await agent.close()


async def test_the_drop_in_handler_drains_to_the_end_of_the_step(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """Drained while the model streams: its whole answer is kept, the tool it asked for
    (the next step) never runs."""
    agent = await _agent(broker, lambda request: "drain")
    started, release = asyncio.Event(), asyncio.Event()
    text = "word " * 40
    model = FakeStreamingChatModel([AIMessage(content=text, tool_calls=LOOKUP.tool_calls)],
                                   token_delay=0.01)
    graph = chat_graph(model, [_lookup_tool(started, release)], checkpointer=InMemorySaver())
    handle = await client.send("look it up")
    async with agent.create_run(handle.invocation) as run:
        graph_call = asyncio.create_task(graph.ainvoke(
            {"messages": [("user", "look it up")]},
            {**CFG, "callbacks": [RunCallbackHandler(run)]}))
        await client.wait_for(lambda c: run.progress.tokens >= 2)
        await handle.cancel()
        try:
            await graph_call
            stopped_by = None
        except Exception as exc:
            stopped_by = type(exc).__name__
    assert stopped_by == "RunCancelledError"
    assert model.outcomes == ["complete"], "the model call was let finish"
    assert not started.is_set(), "the next step (the tool) never ran"
    ended = await handle.wait_ended(timeout=2)
    assert ended.status == "cancelled"
    texts = [p["text"] for m in client.messages for p in m["parts"] if p["type"] == "text"]
    assert texts[-1] == text.rstrip() or texts[-1] == text
    await agent.close()


async def test_the_drop_in_handler_lets_a_drained_step_start_its_model_call(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """A drain answered before the step's model call starts: that call still runs (the step
    finishes); only the next step stops."""
    from langchain_core.runnables import RunnableLambda
    from langgraph.graph import START, MessagesState, StateGraph

    agent = await _agent(broker, lambda request: "drain")
    cancelled, entered = asyncio.Event(), asyncio.Event()
    model = FakeStreamingChatModel(["The answer."])

    async def think_then_answer(state: MessagesState) -> dict[str, Any]:
        entered.set()
        await cancelled.wait()  # the cancel lands inside this step, before the model call
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(think_then_answer))
    builder.add_edge(START, "agent")
    graph = builder.compile(checkpointer=InMemorySaver())
    handle = await client.send("hi")
    async with agent.create_run(handle.invocation) as run:
        call = asyncio.create_task(graph.ainvoke(
            {"messages": [("user", "hi")]}, {**CFG, "callbacks": [RunCallbackHandler(run)]}))
        await entered.wait()
        await handle.cancel()
        await run.signal.wait()
        cancelled.set()
        await call
    assert model.outcomes == ["complete"], "the drained step's model call ran"
