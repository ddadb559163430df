"""CancellableToolNode: skipped calls, tools that stop early, no re-execution on resume."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command, Send, interrupt

from langgraph_interrupt import AgentSession, ClientSession
from langgraph_interrupt._abort import AbortController, CancelReason
from langgraph_interrupt.integration import (
    CANCELLED_MARK,
    RunCallbackHandler,
    bind_abort_signal,
    get_abort_signal,
    is_cancelled_tool_message,
)
from langgraph_interrupt.integration._toolnode import (
    CUT_SHORT_MARK,
    CancellableToolNode,
    CompletedCalls,
    UnfinishedCall,
)
from langgraph_interrupt.testing import FakeStreamingChatModel, find_history_errors

STOP = CancelReason("client", "stop pressed")


def calls_of(*specs: tuple[str, str, dict[str, Any]]) -> AIMessage:
    return AIMessage(content="On it.", tool_calls=[
        {"name": name, "args": args, "id": call_id} for call_id, name, args in specs])


def agent_node(model: FakeStreamingChatModel) -> RunnableLambda[Any, Any]:
    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def agent_sync(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    return RunnableLambda(agent_sync, afunc=agent)


def dict_graph(model: FakeStreamingChatModel, node: Any, *, loop: bool = False,
               checkpointer: Any = None) -> Any:
    """agent -> tools with the whole state as the tool node's input (ToolNode's classic use)."""
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent_node(model))
    builder.add_node("tools", node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent" if loop else END)
    return builder.compile(checkpointer=checkpointer)


def send_graph(model: FakeStreamingChatModel, node: Any, checkpointer: Any = None) -> Any:
    """agent -> one tools task per call, Send("tools", [call]) as langchain's create_agent."""

    def route(state: MessagesState) -> Any:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return [Send("tools", [call]) for call in last.tool_calls]
        return END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent_node(model))
    builder.add_node("tools", node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=checkpointer)


def react_graph(model: FakeStreamingChatModel, node: Any, checkpointer: Any = None) -> Any:
    """create_react_agent(version="v2"): Send("tools", ToolCallWithContext) per call."""
    from langgraph.prebuilt import create_react_agent

    return create_react_agent(model, node, version="v2", checkpointer=checkpointer)


def tools_only(node: Any) -> Any:
    """START -> tools -> END: the tool node alone, fed a state the test writes."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", node)
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    return builder.compile()


def tool_messages(messages: list[BaseMessage]) -> dict[str, list[ToolMessage]]:
    out: dict[str, list[ToolMessage]] = {}
    for message in messages:
        if isinstance(message, ToolMessage):
            out.setdefault(message.tool_call_id, []).append(message)
    return out


def recorder(log: list[str]) -> BaseTool:
    @tool
    def write_file(name: str) -> str:
        """Write a file (a side effect)."""
        log.append(name)
        return f"wrote {name}"

    return write_file


class RecordingCalls(CompletedCalls):
    """Lets a test wait until a completed call was recorded (an event, not a sleep)."""

    def __init__(self) -> None:
        super().__init__()
        self.stored = asyncio.Event()

    def put(self, key: Hashable, value: Any) -> None:
        super().put(key, value)
        self.stored.set()


# -- pending calls and tools that stop early ------------------------------------------------
@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_a_sync_tool_polling_the_signal_stops_within_50ms_and_pending_calls_never_start(
        mode: str) -> None:
    """invoke: ToolNode's own executor map (one worker); ainvoke: one Send task per call, run
    one at a time by LangGraph, the sync tool on a worker thread of the loop's executor."""
    controller = AbortController()
    started = threading.Event()
    written: list[str] = []
    crawl_thread: list[int] = []
    signals: list[Any] = []
    returned_at: list[float] = []

    @tool
    def crawl(pages: int) -> str:
        """Crawl some pages."""
        signal = get_abort_signal()
        signals.append(signal)
        crawl_thread.append(threading.get_ident())
        started.set()
        for page in range(pages):
            if signal.aborted:
                returned_at.append(time.perf_counter())
                return f"stopped after {page} pages"
            time.sleep(0.001)  # one page of simulated work
        return f"crawled {pages} pages"

    model = FakeStreamingChatModel([calls_of(("c1", "crawl", {"pages": 100_000}),
                                             ("c2", "write_file", {"name": "a.txt"}),
                                             ("c3", "write_file", {"name": "b.txt"}))])
    node = CancellableToolNode([crawl, recorder(written)], completed_calls=CompletedCalls())
    build = dict_graph if mode == "invoke" else send_graph
    graph = build(model, node)
    aborted_at: list[float] = []

    def cancel_once_started() -> None:
        assert started.wait(10)
        aborted_at.append(time.perf_counter())
        controller.abort(STOP)

    canceller = threading.Thread(target=cancel_once_started)
    canceller.start()
    config: RunnableConfig = {"max_concurrency": 1}
    with bind_abort_signal(controller.signal) as scope:
        if mode == "invoke":
            result = await asyncio.to_thread(graph.invoke, {"messages": [HumanMessage("go")]},
                                             config)
        else:
            result = await graph.ainvoke({"messages": [HumanMessage("go")]}, config)
    canceller.join()

    assert returned_at[0] - aborted_at[0] < 0.05, returned_at[0] - aborted_at[0]
    assert written == [], "calls pending at the cancel must never start"
    assert signals == [controller.signal] and crawl_thread[0] != threading.get_ident()
    answers = tool_messages(result["messages"])
    assert answers["c1"][0].text.startswith("stopped after ")
    assert answers["c1"][0].status == "success"
    assert answers["c1"][0].response_metadata[CUT_SHORT_MARK] == "client_request"
    for call_id in ("c2", "c3"):
        (skipped,) = answers[call_id]
        assert skipped.status == "error" and skipped.name == "write_file"
        assert skipped.text == "Cancelled before it started: cancelled by client: stop pressed"
        assert skipped.additional_kwargs[CANCELLED_MARK] is True
        assert skipped.response_metadata[CANCELLED_MARK] is True
    assert set(scope.tool_results) == {"c1"}
    assert scope.tool_results["c1"].text.startswith("stopped after ")
    assert find_history_errors(result["messages"]) == []


async def test_an_async_tool_stops_on_the_signal_and_later_send_tasks_are_skipped() -> None:
    started = asyncio.Event()
    written: list[str] = []

    @tool
    async def research(topic: str) -> str:
        """Research a topic for a long time."""
        started.set()
        reason = await get_abort_signal().wait()  # stands for a long await the tool races
        return f"gave up on {topic}: {reason.source}"

    model = FakeStreamingChatModel([calls_of(("r1", "research", {"topic": "tides"}),
                                             ("w1", "write_file", {"name": "notes.md"}))])
    graph = send_graph(model, CancellableToolNode([research, recorder(written)],
                                                  completed_calls=CompletedCalls()))
    controller = AbortController()
    with bind_abort_signal(controller.signal) as scope:
        task = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("go")]},
                                                 {"max_concurrency": 1}))
        await started.wait()
        controller.abort(STOP)
        result = await task
    answers = tool_messages(result["messages"])
    assert answers["r1"][0].text == "gave up on tides: client"
    assert answers["r1"][0].response_metadata[CUT_SHORT_MARK] == "client_request"
    assert is_cancelled_tool_message(answers["w1"][0])
    assert written == []
    assert set(scope.tool_results) == {"r1"}


async def test_a_tool_raising_run_cancelled_is_answered_cancelled_and_keeps_the_others(
        ) -> None:
    started = asyncio.Event()
    written: list[str] = []

    @tool
    async def upload(path: str) -> str:
        """Upload a file in chunks."""
        signal = get_abort_signal()
        started.set()
        await signal.wait()
        signal.throw_if_aborted()  # RunCancelled, a BaseException: ToolNode would not catch it
        return "uploaded"

    model = FakeStreamingChatModel([calls_of(("u1", "upload", {"path": "/x"}),
                                             ("w1", "write_file", {"name": "log.txt"}))])
    graph = dict_graph(model, CancellableToolNode([upload, recorder(written)],
                                                  completed_calls=CompletedCalls()))
    controller = AbortController()
    with bind_abort_signal(controller.signal) as scope:
        task = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("go")]}))
        await started.wait()
        controller.abort(STOP)
        result = await task
    answers = tool_messages(result["messages"])
    (cancelled,) = answers["u1"]
    assert cancelled.text == "Cancelled before it completed: cancelled by client: stop pressed"
    assert is_cancelled_tool_message(cancelled) and cancelled.status == "error"
    assert answers["w1"][0].text == "wrote log.txt" and written == ["log.txt"]
    assert set(scope.tool_results) == {"w1"}


# -- input shapes ----------------------------------------------------------------------------
BUILDERS = {"state-dict": dict_graph, "send-list": send_graph, "react-v2": react_graph}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
@pytest.mark.parametrize("cancelled", [True, False], ids=["cancelled", "running"])
async def test_every_input_shape_skips_when_cancelled_and_records_when_running(
        build: Any, cancelled: bool) -> None:
    written: list[str] = []
    model = FakeStreamingChatModel([calls_of(("w1", "write_file", {"name": "a"}),
                                             ("w2", "write_file", {"name": "b"})), "done"])
    graph = build(model, CancellableToolNode([recorder(written)],
                                             completed_calls=CompletedCalls()))
    controller = AbortController()
    if cancelled:
        controller.abort(STOP)
    with bind_abort_signal(controller.signal) as scope:
        result = await graph.ainvoke({"messages": [HumanMessage("go")]})
    answers = tool_messages(result["messages"])
    assert sorted(answers) == ["w1", "w2"] and all(len(a) == 1 for a in answers.values())
    if cancelled:
        assert written == []
        assert all(is_cancelled_tool_message(a[0]) for a in answers.values())
        assert scope.tool_results == {}
    else:
        assert sorted(written) == ["a", "b"]
        assert {k: v.text for k, v in scope.tool_results.items()} == {
            "w1": "wrote a", "w2": "wrote b"}
    assert find_history_errors(result["messages"]) == []


# -- what the client sees --------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["ainvoke-send-async-tool", "invoke-state-sync-tool"])
async def test_the_client_sees_each_skipped_call_as_a_tool_part_cancelled_in_error(
        mode: str, client: ClientSession, agent: AgentSession) -> None:
    started = threading.Event()
    written: list[str] = []

    @tool
    async def research(topic: str) -> str:
        """Research a topic."""
        stopped = get_abort_signal().wait()
        started.set()
        await stopped
        return "partial notes"

    @tool
    def crawl(topic: str) -> str:
        """Crawl pages about a topic."""
        signal = get_abort_signal()
        started.set()
        for _ in range(10_000):
            if signal.aborted:
                return "partial notes"
            time.sleep(0.001)  # one page of simulated work
        return "all notes"

    first = "research" if mode.startswith("ainvoke") else "crawl"
    model = FakeStreamingChatModel([calls_of(("r1", first, {"topic": "tides"}),
                                             ("w1", "write_file", {"name": "a.md"}),
                                             ("w2", "write_file", {"name": "b.md"}))])
    node = CancellableToolNode([research, crawl, recorder(written)],
                               completed_calls=CompletedCalls())
    handle = await client.send("go")
    async with agent.create_run(handle.invocation) as run:
        # As run_graph does: the handler publishes but leaves stopping to the graph's code.
        handler = RunCallbackHandler(run, stop_on_cancel=False)
        config: RunnableConfig = {"callbacks": [handler], "max_concurrency": 1}
        inputs = {"messages": [HumanMessage("go")]}
        if mode.startswith("ainvoke"):
            task = asyncio.create_task(send_graph(model, node).ainvoke(inputs, config))
        else:
            task = asyncio.create_task(asyncio.to_thread(dict_graph(model, node).invoke,
                                                         inputs, config))
        assert await asyncio.to_thread(started.wait, 10)
        await handle.cancel()
        await task
    assert (await handle.wait_ended()).status == "cancelled"
    assert written == []
    parts = {p["toolCallId"]: p for p in client.messages[-1]["parts"]
             if p["type"].startswith("tool-")}
    assert parts["r1"]["state"] == "output-available"
    assert parts["r1"]["output"] == "partial notes"
    for call_id in ("w1", "w2"):
        assert parts[call_id]["type"] == "tool-write_file"
        assert parts[call_id]["state"] == "output-error"
        assert parts[call_id]["errorText"].startswith("Cancelled before it started: cancelled"), \
            parts[call_id]


# -- no re-execution -------------------------------------------------------------------------
async def test_resuming_after_a_hard_cancel_does_not_rerun_completed_calls() -> None:
    ran: list[str] = []
    search_started = asyncio.Event()
    release = asyncio.Event()

    @tool
    def charge_card(amount: int) -> str:
        """Charge the card (must never happen twice)."""
        ran.append("charge")
        return f"charged {amount}"

    @tool
    async def search(query: str) -> str:
        """Search slowly."""
        ran.append("search")
        search_started.set()
        await release.wait()
        return f"found {query}"

    remembered = RecordingCalls()
    model = FakeStreamingChatModel([calls_of(("pay", "charge_card", {"amount": 10}),
                                             ("find", "search", {"query": "flights"}))])
    graph = dict_graph(model, CancellableToolNode([charge_card, search],
                                                  completed_calls=remembered),
                       checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-resume"}}
    with bind_abort_signal(AbortController().signal) as scope:
        task = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("book")]}, config))
        await asyncio.wait_for(search_started.wait(), 10)
        # charge_card completed and was recorded (bounded: a missing record must fail, not hang)
        await asyncio.wait_for(remembered.stored.wait(), 10)
        task.cancel()  # what an immediate cancel does to the graph
        with pytest.raises(asyncio.CancelledError):
            await task
        assert scope.tool_results["pay"].text == "charged 10"
        # the search the cancel caught mid-way is left for the repair: started, not finished
        assert scope.tool_results["find"] == UnfinishedCall(started=True)
    state = await graph.aget_state(config)
    assert state.next == ("tools",), "the tool node's writes were lost with the cancel"

    release.set()
    result = await graph.ainvoke(None, config)
    assert sorted(ran) == ["charge", "search", "search"], "charge_card ran again on resume"
    answers = tool_messages(result["messages"])
    assert [m.text for m in answers["pay"]] == ["charged 10"]
    assert [m.text for m in answers["find"]] == ["found flights"]
    assert find_history_errors(result["messages"]) == []


async def test_a_sync_tool_finishing_after_a_hard_cancel_is_not_run_again_on_resume() -> None:
    """A thread cannot be stopped: the call commits its side effect after the node was
    cancelled, and must then count as completed."""
    started = threading.Event()
    release = threading.Event()
    written: list[str] = []

    @tool
    def slow_write(name: str) -> str:
        """Write slowly, ignoring the signal."""
        started.set()
        assert release.wait(10)
        written.append(name)
        return f"wrote {name}"

    remembered = RecordingCalls()
    model = FakeStreamingChatModel([calls_of(("s1", "slow_write", {"name": "a"}))])
    graph = dict_graph(model, CancellableToolNode([slow_write], completed_calls=remembered),
                       checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-late"}}
    with bind_abort_signal(AbortController().signal) as scope:
        task = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("go")]}, config))
        try:
            assert await asyncio.to_thread(started.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task  # the node stopped at once; the thread still runs
            assert written == []
        finally:
            release.set()
        await asyncio.wait_for(remembered.stored.wait(), 10)
        assert written == ["a"]
        assert scope.tool_results["s1"].text == "wrote a"
    result = await graph.ainvoke(None, config)
    assert written == ["a"], "the late sync tool ran a second time on resume"
    assert [m.text for m in tool_messages(result["messages"])["s1"]] == ["wrote a"]


async def test_resuming_a_human_in_the_loop_interrupt_does_not_rerun_the_sibling_calls(
        ) -> None:
    ran: list[str] = []

    @tool
    def charge_card(amount: int) -> str:
        """Charge the card."""
        ran.append("charge")
        return f"charged {amount}"

    @tool
    def ship(address: str) -> str:
        """Ship after a human confirms."""
        ran.append("ship")
        answer = interrupt({"confirm": address})
        return f"shipped: {answer}"

    model = FakeStreamingChatModel([calls_of(("pay", "charge_card", {"amount": 5}),
                                             ("go", "ship", {"address": "Main St"})), "done"])
    graph = dict_graph(model, CancellableToolNode([charge_card, ship],
                                                  completed_calls=CompletedCalls()),
                       loop=True, checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-hitl"}}
    first = await graph.ainvoke({"messages": [HumanMessage("order")]}, config)
    assert first["__interrupt__"][0].value == {"confirm": "Main St"}
    result = await graph.ainvoke(Command(resume="yes"), config)
    assert sorted(ran) == ["charge", "ship", "ship"], "charge_card ran again on resume"
    answers = tool_messages(result["messages"])
    assert [m.text for m in answers["pay"]] == ["charged 5"]
    assert [m.text for m in answers["go"]] == ["shipped: yes"]
    assert find_history_errors(result["messages"]) == []


def test_a_call_already_answered_in_the_state_is_not_executed_again() -> None:
    written: list[str] = []
    graph = tools_only(CancellableToolNode([recorder(written)],
                                           completed_calls=CompletedCalls()))
    answered = ToolMessage("wrote a (earlier)", tool_call_id="w1", name="write_file",
                           id="tool-msg-w1")
    result = graph.invoke({"messages": [
        HumanMessage("go"),
        calls_of(("w1", "write_file", {"name": "a"}), ("w2", "write_file", {"name": "b"})),
        answered]})
    assert written == ["b"]
    answers = tool_messages(result["messages"])
    assert [(m.id, m.text) for m in answers["w1"]] == [("tool-msg-w1", "wrote a (earlier)")]
    assert [m.text for m in answers["w2"]] == ["wrote b"]
    assert find_history_errors(result["messages"]) == []


def test_a_call_id_reused_by_a_later_turn_runs_again() -> None:
    """Some models number calls per turn (call_0 every time): the guards key on the
    AIMessage too, so the second turn's call is not mistaken for the first one's."""
    written: list[str] = []
    model = FakeStreamingChatModel([
        calls_of(("call_0", "write_file", {"name": "first"})), "ok",
        calls_of(("call_0", "write_file", {"name": "second"})), "ok"])
    graph = dict_graph(model, CancellableToolNode([recorder(written)],
                                                  completed_calls=CompletedCalls()),
                       loop=True, checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-reused"}}
    graph.invoke({"messages": [HumanMessage("one")]}, config)
    result = graph.invoke({"messages": [HumanMessage("two")]}, config)
    assert written == ["first", "second"]
    assert [m.text for m in result["messages"] if isinstance(m, ToolMessage)] == [
        "wrote first", "wrote second"]


def test_without_a_thread_id_nothing_is_remembered() -> None:
    """No checkpointer, no resume: the same AIMessage sent twice runs its calls twice (the
    state guard still applies within one invocation)."""
    written: list[str] = []
    remembered = CompletedCalls()
    graph = tools_only(CancellableToolNode([recorder(written)], completed_calls=remembered))
    request = calls_of(("w1", "write_file", {"name": "a"}))
    request.id = "ai-1"
    for _ in range(2):
        graph.invoke({"messages": [HumanMessage("go"), request]})
    assert written == ["a", "a"]
    assert len(remembered) == 0


def test_completed_calls_is_a_bounded_lru() -> None:
    calls = CompletedCalls(maxsize=2)
    first, second, third = (ToolMessage(t, tool_call_id=t) for t in ("1", "2", "3"))
    calls.put("a", first)
    calls.put("b", second)
    assert calls.get("a") is first  # now the most recent
    calls.put("c", third)
    assert calls.get("b") is None and calls.get("a") is first and calls.get("c") is third
    assert len(calls) == 2
    calls.clear()
    assert len(calls) == 0
    with pytest.raises(ValueError):
        CompletedCalls(maxsize=0)
    shared = CancellableToolNode([recorder([])]).completed_calls
    assert CancellableToolNode([recorder([])]).completed_calls is shared, \
        "graphs rebuilt per request share the process-wide record"
