"""The drop-in RunCallbackHandler: any app's output reaches the channel as UI chunks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import RunCallbackHandler, get_abort_signal
from langgraph_interrupt.testing import FakeStreamingChatModel


def chat_graph(model: Any, tools: list[Any] | None = None, checkpointer: Any = None) -> Any:
    async def agent_node(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def sync_agent_node(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(sync_agent_node, afunc=agent_node))
    builder.add_edge(START, "agent")
    if tools:
        builder.add_node("tools", ToolNode(tools))
        builder.add_conditional_edges("agent", tools_condition)
        builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


WEATHER = AIMessage(content="Let me check.", tool_calls=[
    {"name": "weather", "args": {"city": "Paris"}, "id": "call_1"}])


async def test_ainvoke_streams_text_tokens_even_without_a_messages_stream_mode(
        client: ClientSession, agent: AgentSession) -> None:
    model = FakeStreamingChatModel(["Hello there, how are you?"])
    graph = chat_graph(model)
    handle = await client.send("hi")
    async with agent.create_run(handle.invocation) as run:
        await graph.ainvoke({"messages": [HumanMessage("hi")]},
                            config={"callbacks": [RunCallbackHandler(run)]})
    info = await handle.wait_ended()
    assert info.status == "complete"
    parts = client.messages[-1]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "text"]
    assert parts[1]["text"] == "Hello there, how are you?"


async def test_tool_calls_stream_input_then_output_in_one_message(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    model = FakeStreamingChatModel([WEATHER, "It is sunny in Paris."])
    graph = chat_graph(model, [weather])
    handle = await client.send("weather?")
    async with agent.create_run(handle.invocation) as run:
        async for _ in graph.astream({"messages": [HumanMessage("weather?")]},
                                     config={"callbacks": [RunCallbackHandler(run)]},
                                     stream_mode="updates"):
            pass
    await handle.wait_ended()
    parts = client.messages[-1]["parts"]
    kinds = [p["type"] for p in parts]
    assert kinds == ["step-start", "text", "tool-weather", "step-start", "text"], kinds
    tool_part = parts[2]
    assert tool_part["toolCallId"] == "call_1"
    assert tool_part["state"] == "output-available"
    assert tool_part["input"] == {"city": "Paris"}
    assert tool_part["output"] == "sunny in Paris"
    deltas = [r for r in broker.records if r.op == "append" and r.data and
              (r.extras or {}).get("ai", {}).get("codec", {}).get("kind") == "tool-input"]
    assert len(deltas) >= 2, "tool input was streamed in pieces"


async def test_sync_stream_path_publishes_without_an_event_loop_per_callback(
        client: ClientSession, agent: AgentSession) -> None:
    model = FakeStreamingChatModel(["one two three four five six"])
    graph = chat_graph(model)
    handle = await client.send("count")
    loops: set[int] = set()
    threads: set[int] = set()

    class Spy(RunCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            try:
                loops.add(id(asyncio.get_running_loop()))
            except RuntimeError:
                pass
            threads.add(threading.get_ident())
            super().on_llm_new_token(token, **kwargs)

    async with agent.create_run(handle.invocation) as run:
        handler = Spy(run)

        def consume() -> None:
            for _ in graph.stream({"messages": [HumanMessage("count")]},
                                  config={"callbacks": [handler]}, stream_mode="values"):
                pass

        await asyncio.to_thread(consume)
    await handle.wait_ended()
    assert loops == set(), "sync hooks ran without any event loop"
    assert threading.get_ident() not in threads
    assert client.messages[-1]["parts"][-1]["text"] == "one two three four five six"


async def test_drop_in_cancel_stops_generation_at_the_next_token(
        client: ClientSession, agent: AgentSession, caplog: Any) -> None:
    words = " ".join(f"w{i}" for i in range(200))
    model = FakeStreamingChatModel([words], token_delay=0.002)
    graph = chat_graph(model)
    handle = await client.send("talk")
    seen: list[int] = []

    async def serve() -> None:
        async with agent.create_run(handle.invocation) as run:
            handler = RunCallbackHandler(run)
            await graph.ainvoke({"messages": [HumanMessage("talk")]},
                                config={"callbacks": [handler]})

    task = asyncio.create_task(serve())
    await client.wait_for(lambda c: c.messages and c.messages[-1]["role"] == "assistant"
                          and any(p.get("text", "").count("w") >= 5
                                  for p in c.messages[-1]["parts"]))
    await handle.cancel()
    await task  # RunCancelled is an outcome: `async with run` swallows it
    info = await handle.wait_ended()
    assert info.status == "cancelled"
    text = client.messages[-1]["parts"][-1]["text"]
    seen.append(len(text.split()))
    assert seen[0] < 150, f"generation went on after the cancel: {seen[0]} words"
    assert model.outcomes[-1] in ("cancelled", "closed", "error"), model.outcomes
    assert not [r for r in caplog.records if "RunCancelledError" in r.getMessage()], (
        "a Stop is an outcome: no warning is logged for it")


async def test_get_abort_signal_reaches_a_sync_tool_in_drop_in_mode(
        client: ClientSession, agent: AgentSession) -> None:
    found: list[Any] = []

    @tool
    def probe(city: str) -> str:
        """Probe."""
        found.append(get_abort_signal())
        return "ok"

    model = FakeStreamingChatModel([AIMessage(content="", tool_calls=[
        {"name": "probe", "args": {"city": "x"}, "id": "call_p"}]), "done"])
    graph = chat_graph(model, [probe])
    handle = await client.send("probe")
    async with agent.create_run(handle.invocation) as run:
        await graph.ainvoke({"messages": [HumanMessage("probe")]},
                            config={"callbacks": [RunCallbackHandler(run)]})
        assert found and found[0] is run.signal
