"""run_graph: outcomes mapped onto the run lifecycle, and a valid thread after any cancel."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt

from langgraph_interrupt import AgentSession, ClientSession
from langgraph_interrupt.integration import (
    get_abort_signal,
    is_cancelled_tool_message,
    run_graph,
    unanswered_tool_calls,
)
from langgraph_interrupt.testing import (
    FakeStreamingChatModel,
    StrictFakeChatModel,
    find_history_errors,
)
from tests.helpers import describe, run_records


def chat_graph(model: Any, tools: list[Any] | None = None, *, checkpointer: Any = None,
               tool_node: Any = None) -> Any:
    async def agent_node(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def sync_agent_node(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(sync_agent_node, afunc=agent_node))
    builder.add_edge(START, "agent")
    if tools:
        builder.add_node("tools", tool_node or ToolNode(tools))
        builder.add_conditional_edges("agent", tools_condition)
        builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


async def serve(agent: AgentSession, graph: Any, handle: Any, **kwargs: Any) -> Any:
    return await run_graph(graph, agent.create_run(handle.invocation), **kwargs)


async def test_a_completed_graph_ends_the_run_complete_with_the_answer(
        client: ClientSession, agent: AgentSession) -> None:
    graph = chat_graph(FakeStreamingChatModel(["Hello from the graph."]),
                       checkpointer=InMemorySaver())
    handle = await client.send("hi")
    outcome = await serve(agent, graph, handle)
    assert outcome.reason == "complete"
    assert (await handle.wait_ended()).status == "complete"
    assert client.messages[-1]["parts"][-1]["text"] == "Hello from the graph."
    state = await graph.aget_state({"configurable": {"thread_id": handle.invocation.session_name}})
    assert [m.type for m in state.values["messages"]] == ["human", "ai"]
    assert state.values["messages"][0].content == "hi"


async def test_without_a_checkpointer_the_conversation_is_rebuilt_from_the_channel(
        client: ClientSession, agent: AgentSession) -> None:
    model = FakeStreamingChatModel(["First answer.", "Second answer."])
    graph = chat_graph(model)
    first = await client.send("one")
    await serve(agent, graph, first)
    second = await client.send("two")
    await serve(agent, graph, second)
    prompt = model.calls[-1]
    assert [(m.type, m.content) for m in prompt] == [
        ("human", "one"), ("ai", "First answer."), ("human", "two")]


async def test_an_exception_in_the_graph_ends_the_run_error_with_code_and_message(
        client: ClientSession, agent: AgentSession) -> None:
    def broken(messages: list[Any]) -> AIMessage:
        raise ValueError("the model is down")

    graph = chat_graph(FakeStreamingChatModel(responder=broken))
    handle = await client.send("hi")
    outcome = await serve(agent, graph, handle)
    assert outcome.reason == "error"
    info = await handle.wait_ended()
    assert info.status == "error"
    assert info.error_message and "the model is down" in info.error_message


async def test_cancel_mid_llm_saves_the_partial_text_and_the_next_turn_is_valid(
        client: ClientSession, agent: AgentSession) -> None:
    words = " ".join(f"w{i}" for i in range(300))
    model = StrictFakeChatModel([words, "A fresh answer."], token_delay=0.002)
    graph = chat_graph(model, checkpointer=InMemorySaver())
    handle = await client.send("talk")
    task = asyncio.create_task(serve(agent, graph, handle))
    await client.wait_for(lambda c: bool(c.messages) and "w5 " in str(c.messages[-1]["parts"]))
    await handle.cancel()
    outcome = await task
    assert outcome.reason == "cancelled"
    assert outcome.repair is not None and outcome.repair.partial_messages
    seen = client.messages[-1]["parts"][-1]["text"]
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    messages = (await graph.aget_state(cfg)).values["messages"]
    assert messages[-1].type == "ai"
    assert messages[-1].content == seen, "the checkpoint holds exactly what the user saw"
    assert messages[-1].response_metadata["finish_reason"] == "cancelled"
    assert find_history_errors(messages) == []
    again = await client.send("and now?")
    assert (await serve(agent, graph, again)).reason == "complete"
    assert client.messages[-1]["parts"][-1]["text"] == "A fresh answer."


SEARCHES = AIMessage(content="Looking.", tool_calls=[
    {"name": "slow_search", "args": {"q": "a"}, "id": "call_a"},
    {"name": "slow_search", "args": {"q": "b"}, "id": "call_b"}])


async def test_cancel_mid_tool_answers_every_call_and_the_next_turn_is_valid(
        client: ClientSession, agent: AgentSession) -> None:
    started = threading.Event()

    @tool
    async def slow_search(q: str) -> str:
        """Search slowly."""
        started.set()
        await asyncio.Event().wait()  # until cancelled
        return "never"

    model = StrictFakeChatModel([SEARCHES, "Answer after the cancel."])
    graph = chat_graph(model, [slow_search], checkpointer=InMemorySaver())
    handle = await client.send("search")
    task = asyncio.create_task(serve(agent, graph, handle))
    await asyncio.to_thread(started.wait, 5)
    await handle.cancel()
    outcome = await task
    assert outcome.reason == "cancelled"
    assert sorted(outcome.repair.cancelled_calls) == ["call_a", "call_b"]
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    messages = (await graph.aget_state(cfg)).values["messages"]
    assert unanswered_tool_calls(messages) == {}
    assert all(is_cancelled_tool_message(m) for m in messages if m.type == "tool")
    parts = [p for p in client.messages[-1]["parts"] if p["type"] == "tool-slow_search"]
    assert [p["state"] for p in parts] == ["output-error", "output-error"]
    assert all("ancel" in p["errorText"] for p in parts)
    ops = [describe(r) for r in run_records(agent.channel._broker, outcome_run_id(client))]
    assert ops[-1] == ("ai-run-end", "cancelled")
    again = await client.send("what happened?")
    assert (await serve(agent, graph, again)).reason == "complete"


def outcome_run_id(client: ClientSession) -> str:
    return client.runs[-1].run_id


async def test_drain_mode_finishes_the_running_step_then_stops(
        client: ClientSession, agent: AgentSession) -> None:
    release = threading.Event()
    started = threading.Event()

    @tool
    def steps(q: str) -> str:
        """A sync tool that polls the signal between steps."""
        started.set()
        signal = get_abort_signal()
        done = 0
        while done < 100 and not signal.aborted:
            release.wait(0.005)
            done += 1
        return f"stopped after {done} steps" if signal.aborted else "all done"

    model = StrictFakeChatModel([AIMessage(content="", tool_calls=[
        {"name": "steps", "args": {"q": "x"}, "id": "call_s"}]), "never reached"])
    graph = chat_graph(model, [steps], checkpointer=InMemorySaver())
    handle = await client.send("work")
    task = asyncio.create_task(serve(agent, graph, handle, cancel_mode="drain"))
    await asyncio.to_thread(started.wait, 5)
    await handle.cancel()
    outcome = await task
    assert outcome.reason == "cancelled" and outcome.drained
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    messages = (await graph.aget_state(cfg)).values["messages"]
    assert messages[-1].type == "tool" and messages[-1].content.startswith("stopped after")
    assert outcome.repair is not None and not outcome.repair.changed
    assert len(model.calls) == 1, "the drained run did not call the model again"


async def test_interrupt_in_a_tool_suspends_and_the_continuation_resumes_to_complete(
        client: ClientSession, agent: AgentSession) -> None:
    @tool
    def delete_file(path: str) -> str:
        """Delete a file after asking."""
        answer = interrupt({"question": f"Delete {path}?"})
        return f"deleted {path}" if answer == "yes" else "kept"

    model = StrictFakeChatModel([AIMessage(content="", tool_calls=[
        {"name": "delete_file", "args": {"path": "/a"}, "id": "call_d"}]), "Done."])
    graph = chat_graph(model, [delete_file], checkpointer=InMemorySaver())
    handle = await client.send("delete /a")
    outcome = await serve(agent, graph, handle)
    assert outcome.reason == "suspended" and outcome.interrupts
    run_id = client.runs[-1].run_id
    await client.wait_for(
        lambda c: c.run(run_id) is not None and c.run(run_id).status == "suspended")
    cmid = next(e.codec_message_id for e in client.decoder.entries()
                if e.message["role"] == "assistant")
    resume = await client.send_tool_result(run_id=run_id, codec_message_id=cmid,
                                           tool_call_id="call_d", output="yes")
    outcome = await serve(agent, graph, resume)
    assert outcome.reason == "complete"
    info = await client.wait_run_ended(run_id, timeout=2)
    assert info.status == "complete"
    tool_parts = [p for m in client.messages for p in m["parts"]
                  if p.get("toolCallId") == "call_d"]
    assert len(tool_parts) == 1 and tool_parts[0]["state"] == "output-available"
    assert tool_parts[0]["output"] == "yes"  # the client's result is final (as in the JS agent)
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    answers = [m for m in (await graph.aget_state(cfg)).values["messages"] if m.type == "tool"]
    assert [m.content for m in answers] == ["deleted /a"]  # what the tool returned


async def test_create_agent_cancel_keeps_a_finished_sibling_result_and_the_thread_is_valid(
        client: ClientSession, agent: AgentSession) -> None:
    """``create_agent`` runs one task per tool call (Send). A call that finished before the
    cancel exists only as a pending write, which ``aupdate_state`` drops: the repair must
    write its real result again, not lose it."""
    from langchain.agents import create_agent

    crawling = asyncio.Event()

    @tool
    async def report(q: str) -> str:
        """Fast, with a side effect."""
        return "report sent"

    @tool
    async def crawl(q: str) -> str:
        """Slow."""
        crawling.set()
        await asyncio.Event().wait()
        return "never"

    calls = AIMessage(content="", tool_calls=[
        {"name": "report", "args": {"q": "x"}, "id": "call_report"},
        {"name": "crawl", "args": {"q": "y"}, "id": "call_crawl"}])
    model = StrictFakeChatModel([calls, "Next answer."])
    graph = create_agent(model, [report, crawl], checkpointer=InMemorySaver())
    handle = await client.send("go")
    task = asyncio.create_task(serve(agent, graph, handle))
    await crawling.wait()
    await client.wait_for(lambda c: any(p.get("toolCallId") == "call_report"
                                        and p.get("state") == "output-available"
                                        for m in c.messages for p in m["parts"]))
    await handle.cancel()
    outcome = await task
    assert outcome.reason == "cancelled"
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    messages = (await graph.aget_state(cfg)).values["messages"]
    assert find_history_errors(messages) == [], find_history_errors(messages)
    answers = {m.tool_call_id: m for m in messages if m.type == "tool"}
    assert answers["call_report"].content == "report sent"
    assert is_cancelled_tool_message(answers["call_crawl"])
    again = await client.send("and?")
    assert (await serve(agent, graph, again)).reason == "complete"


async def test_a_cancel_inside_a_subgraph_saves_the_partial_text_at_the_root(
        client: ClientSession, agent: AgentSession) -> None:
    """The LLM streams inside a subgraph node: its partial text is written to the root
    thread as the subgraph node's output, and the next turn is valid."""
    words = " ".join(f"s{i}" for i in range(300))
    model = StrictFakeChatModel([words, "Fresh."], token_delay=0.002)
    inner = chat_graph(model)  # no checkpointer of its own: it inherits the parent's
    builder = StateGraph(MessagesState)
    builder.add_node("assistant", inner)
    builder.add_edge(START, "assistant")
    graph = builder.compile(checkpointer=InMemorySaver())
    handle = await client.send("talk")
    task = asyncio.create_task(serve(agent, graph, handle))
    await client.wait_for(lambda c: bool(c.messages) and "s5 " in str(c.messages[-1]["parts"]))
    await handle.cancel()
    outcome = await task
    assert outcome.reason == "cancelled" and outcome.repair.partial_messages
    seen = client.messages[-1]["parts"][-1]["text"]
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    messages = (await graph.aget_state(cfg)).values["messages"]
    assert messages[-1].content == seen
    assert find_history_errors(messages) == []
    again = await client.send("and?")
    assert (await serve(agent, graph, again)).reason == "complete"


async def test_the_sqlite_checkpointer_is_repaired_after_a_cancel_mid_tool(
        client: ClientSession, agent: AgentSession) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    started = asyncio.Event()

    @tool
    def slow_search(q: str) -> str:
        """A sync tool that polls the signal."""
        started_threadsafe()
        signal = get_abort_signal()
        while not signal.aborted:
            threading.Event().wait(0.002)
        return f"stopped searching {q}"

    loop = asyncio.get_running_loop()

    def started_threadsafe() -> None:
        loop.call_soon_threadsafe(started.set)

    async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
        model = StrictFakeChatModel([SEARCHES, "Next."])
        graph = chat_graph(model, [slow_search], checkpointer=saver)
        handle = await client.send("search")
        task = asyncio.create_task(serve(agent, graph, handle))
        await started.wait()
        await handle.cancel()
        outcome = await task
        assert outcome.reason == "cancelled"
        cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
        messages = (await graph.aget_state(cfg)).values["messages"]
        assert unanswered_tool_calls(messages) == {}
        assert find_history_errors(messages) == []
        again = await client.send("next?")
        assert (await serve(agent, graph, again)).reason == "complete"


def slow_tools(started: asyncio.Event) -> list[Any]:
    """``slow_search`` (runs until cancelled, setting ``started``) and ``quick_lookup``."""

    @tool
    async def slow_search(q: str) -> str:
        """Search slowly."""
        started.set()
        await asyncio.Event().wait()  # until cancelled
        return "never"

    @tool
    async def quick_lookup(q: str) -> str:
        """Look something up at once."""
        return f"found {q}"

    return [slow_search, quick_lookup]


async def stop_in_a_subgraph(client: ClientSession, agent: AgentSession, calls: AIMessage, *,
                             depth: int, seen: str | None = None) -> tuple[Any, Any, list[Any]]:
    """An agent + tools graph ``depth`` subgraph levels below the root; the model calls
    ``calls``, Stop lands while ``slow_search`` runs (after the client saw ``seen``, if
    given). Returns the graph, the send's handle and the root thread's messages."""
    started = asyncio.Event()
    graph: Any = chat_graph(StrictFakeChatModel([calls, "Fresh."]), slow_tools(started))
    for level in range(depth):
        builder = StateGraph(MessagesState)
        builder.add_node(f"level{level}", graph)
        builder.add_edge(START, f"level{level}")
        graph = builder.compile(checkpointer=InMemorySaver() if level == depth - 1 else None)
    handle = await client.send("go")
    task = asyncio.create_task(serve(agent, graph, handle))
    await started.wait()
    if seen is not None:
        await client.wait_for(lambda c: seen in str(c.messages[-1]["parts"]))
    await handle.cancel()
    assert (await task).reason == "cancelled"
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    return graph, handle, (await graph.aget_state(cfg)).values["messages"]


@pytest.mark.parametrize("depth", [1, 2])
async def test_a_cancel_during_a_subgraphs_tools_keeps_what_the_client_saw_at_the_root(
        client: ClientSession, agent: AgentSession, depth: int) -> None:
    """The model call inside a subgraph has finished (the client saw its text and tool
    calls), its tools are running when Stop lands: that message exists only in the
    subgraph's unfinished step. The repair writes it to the root thread, then answers its
    calls, so the next turn remembers what the user was shown and is valid."""
    graph, _, messages = await stop_in_a_subgraph(client, agent, SEARCHES, depth=depth)

    assert "Looking." in str(client.messages[-1]["parts"])  # what the user was shown
    assert [m.type for m in messages] == ["human", "ai", "tool", "tool"]
    assert messages[1].content == "Looking."
    assert {m.tool_call_id for m in messages[2:]} == {"call_a", "call_b"}
    assert all(is_cancelled_tool_message(m) for m in messages[2:])
    assert find_history_errors(messages) == []
    again = await client.send("and?")
    assert (await serve(agent, graph, again)).reason == "complete"


async def test_a_result_shown_from_a_subgraphs_unfinished_tools_step_is_kept_at_the_root(
        client: ClientSession, agent: AgentSession) -> None:
    """Inside a subgraph, one tool finished (the client saw its result) while its sibling
    still ran when Stop landed: the root thread gets the model message, the real result the
    user saw, and a cancelled answer for the other call, in that order."""
    calls = AIMessage(content="Checking.", tool_calls=[
        {"name": "quick_lookup", "args": {"q": "x"}, "id": "call_quick"},
        {"name": "slow_search", "args": {"q": "y"}, "id": "call_slow"}])
    graph, _, messages = await stop_in_a_subgraph(client, agent, calls, depth=1,
                                                  seen="found x")

    assert [m.type for m in messages] == ["human", "ai", "tool", "tool"]
    answers = {m.tool_call_id: m for m in messages[2:]}
    assert answers["call_quick"].content == "found x"
    assert is_cancelled_tool_message(answers["call_slow"])
    assert find_history_errors(messages) == []
    again = await client.send("and?")
    assert (await serve(agent, graph, again)).reason == "complete"
