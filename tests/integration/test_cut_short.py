"""What a cancel leaves of each tool call, said truthfully, in both cancel modes.

* A tool that saw the signal and returned has produced its own, cut-short answer: it is kept
  (on the wire as the tool's output, in the checkpoint as its result, marked
  ``CUT_SHORT_MARK``) whether the cancel is ``immediate`` or ``drain``.
* A call that never started is never said to have been stopped "before it completed".
* ``CancellableToolNode(max_concurrency=...)`` makes "pending calls skipped" apply to the
  graph the docs show (``ToolNode`` after ``tools_condition`` starts every call at once).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langgraph_interrupt import AgentSession, ClientSession
from langgraph_interrupt._abort import AbortController, CancelReason
from langgraph_interrupt.integration import (
    bind_abort_signal,
    get_abort_signal,
    is_cancelled_tool_message,
    repair_thread,
    run_graph,
    to_langchain,
)
from langgraph_interrupt.integration._toolnode import (
    CUT_SHORT_MARK,
    CancellableToolNode,
    CompletedCalls,
)
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors

CALLS = AIMessage("On it.", tool_calls=[
    {"name": "crawl", "args": {"pages": 100_000}, "id": "c1"},
    {"name": "send_report", "args": {"to": "me@example.com"}, "id": "c2"}])


def graph_of(node: Any, model: Any, *, checkpointer: Any = None) -> Any:
    """The graph the docs show: a model node, a tool node after ``tools_condition``, a loop."""
    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def tools_only(node: Any) -> Any:
    """START -> tools -> END: the tool node alone, fed a state the test writes."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", node)
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    return builder.compile()


def tool_parts(client: ClientSession) -> dict[str, dict[str, Any]]:
    return {p["toolCallId"]: p for p in client.messages[-1]["parts"]
            if p["type"].startswith("tool-")}


async def thread_of(graph: Any, handle: Any) -> list[Any]:
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    return (await graph.aget_state(cfg)).values["messages"]


def answers(messages: list[Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}


# -- a tool that saw the signal and returned keeps its answer ---------------------------------
@pytest.mark.parametrize("mode", ["immediate", "drain"])
async def test_a_sync_tool_that_sees_the_signal_keeps_its_cut_short_answer_in_both_modes(
        mode: str, client: ClientSession, agent: AgentSession) -> None:
    started = threading.Event()
    sent: list[str] = []

    @tool
    def crawl(pages: int) -> str:
        """Crawl pages (sync: on a worker thread, where no asyncio cancel reaches it)."""
        signal = get_abort_signal()
        started.set()
        for page in range(pages):
            if signal.aborted:
                return f"stopped after {page} pages"
            time.sleep(0.002)  # one page of simulated work
        return "all pages"

    @tool
    def send_report(to: str) -> str:
        """Email the report."""
        sent.append(to)
        return f"sent to {to}"

    model = StrictFakeChatModel([CALLS, "You stopped me.", "Fresh answer."])
    graph = graph_of(CancellableToolNode([crawl, send_report], completed_calls=CompletedCalls()),
                     model)
    handle = await client.send("crawl")
    serving = asyncio.create_task(run_graph(graph, agent.create_run(handle.invocation),
                                            cancel_mode=mode))
    assert await asyncio.to_thread(started.wait, 10)
    await handle.cancel(reason="user_clicked_stop")
    outcome = await serving
    assert outcome.reason == "cancelled"
    assert (await handle.wait_ended()).status == "cancelled"

    part = tool_parts(client)["c1"]
    assert part["state"] == "output-available", part  # the client shows the tool's answer
    assert part["output"].startswith("stopped after ")
    kept = answers(await thread_of(graph, handle))["c1"]
    assert kept.text == part["output"], "the thread keeps what the client was shown"
    assert kept.status == "success" and not is_cancelled_tool_message(kept)
    assert kept.response_metadata[CUT_SHORT_MARK] == "user_clicked_stop"
    if mode == "immediate":
        assert outcome.repair is not None and "c1" in outcome.repair.completed_calls
    assert find_history_errors(await thread_of(graph, handle)) == []
    again = await client.send("what now?")
    assert (await run_graph(graph, agent.create_run(again.invocation))).reason == "complete"


async def test_a_call_returning_before_the_cancel_is_not_marked_cut_short() -> None:
    @tool
    def quick(x: int) -> str:
        """Answer at once."""
        return f"got {x}"

    graph = tools_only(CancellableToolNode([quick], completed_calls=CompletedCalls()))
    call = AIMessage("", tool_calls=[{"name": "quick", "args": {"x": 1}, "id": "q1"}])
    with bind_abort_signal(AbortController().signal):
        result = await graph.ainvoke({"messages": [HumanMessage("go"), call]})
    message = result["messages"][-1]
    assert message.text == "got 1" and CUT_SHORT_MARK not in message.response_metadata


async def test_a_sync_tool_still_running_after_the_grace_is_answered_cancelled(
        client: ClientSession, agent: AgentSession) -> None:
    """The repair waits for a thread only ``late_result_grace`` seconds: a tool that ignores
    the signal does not hold the run's end for long, and is answered as stopped."""
    started = threading.Event()
    release = threading.Event()
    remembered = CompletedCalls()

    @tool
    def crawl(pages: int) -> str:
        """Crawl, ignoring the signal."""
        started.set()
        assert release.wait(10)
        return "all pages"

    @tool
    def send_report(to: str) -> str:
        """Email the report."""
        return "sent"

    node = CancellableToolNode([crawl, send_report], completed_calls=remembered,
                               late_result_grace=0.05)
    graph = graph_of(node, StrictFakeChatModel([CALLS, "Fresh answer."]))
    handle = await client.send("crawl")
    serving = asyncio.create_task(run_graph(graph, agent.create_run(handle.invocation)))
    try:
        assert await asyncio.to_thread(started.wait, 10)
        await handle.cancel()
        outcome = await serving  # ends while the thread still runs
        assert not release.is_set()
        stopped = answers(await thread_of(graph, handle))["c1"]
        assert stopped.text == "Cancelled before it completed: cancelled by client (user-abc)."
        assert is_cancelled_tool_message(stopped)
        assert outcome.repair is not None and "c1" in outcome.repair.cancelled_calls
        assert tool_parts(client)["c1"]["state"] == "output-error"
    finally:
        release.set()
    assert find_history_errors(await thread_of(graph, handle)) == []


# -- calls that never started ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["immediate", "drain"])
async def test_with_max_concurrency_a_call_waiting_for_its_slot_never_starts(
        mode: str, client: ClientSession, agent: AgentSession) -> None:
    """``ToolNode`` after ``tools_condition`` starts every call at once; with
    ``max_concurrency=1`` the second waits, and a cancel means it never runs."""
    started = asyncio.Event()
    sent: list[str] = []

    @tool
    async def crawl(pages: int) -> str:
        """Crawl until stopped."""
        started.set()
        if mode == "drain":
            await get_abort_signal().wait()
            return "stopped after 1 page"
        await asyncio.Event().wait()  # ignores the signal: only a hard cancel ends it
        return "never"

    @tool
    def send_report(to: str) -> str:
        """Email the report (a side effect)."""
        sent.append(to)
        return f"sent to {to}"

    node = CancellableToolNode([crawl, send_report], completed_calls=CompletedCalls(),
                               max_concurrency=1)
    graph = graph_of(node, StrictFakeChatModel([CALLS, "Fresh answer."]))
    handle = await client.send("crawl")
    serving = asyncio.create_task(run_graph(graph, agent.create_run(handle.invocation),
                                            cancel_mode=mode))
    await asyncio.wait_for(started.wait(), 10)
    await handle.cancel()
    assert (await serving).reason == "cancelled"

    assert sent == [], "the call waiting for its slot must never run"
    thread = answers(await thread_of(graph, handle))
    reason = "cancelled by client (user-abc)"
    assert thread["c2"].text.startswith(f"Cancelled before it started: {reason}")
    assert is_cancelled_tool_message(thread["c2"])
    parts = tool_parts(client)
    assert parts["c2"]["state"] == "output-error"
    assert parts["c2"]["errorText"] == thread["c2"].text, "the client is told what the thread says"
    if mode == "drain":  # the step finished: the tool node itself answered both calls
        assert thread["c1"].text == "stopped after 1 page"
        assert thread["c1"].response_metadata[CUT_SHORT_MARK] == "client_request"
    else:  # the running call was stopped mid-way
        assert thread["c1"].text == f"Cancelled before it completed: {reason}."
    assert find_history_errors(await thread_of(graph, handle)) == []


async def test_without_max_concurrency_every_call_of_the_step_starts_at_once() -> None:
    """What the docs say of the default: under ``ainvoke`` there is no pending call to skip."""
    running: list[str] = []
    both = asyncio.Event()

    @tool
    async def work(name: str) -> str:
        """Work until every call of the step runs."""
        running.append(name)
        if len(running) == 2:
            both.set()
        await both.wait()  # deadlocks (and times out) if the calls ran one at a time
        return name

    calls = AIMessage("", tool_calls=[{"name": "work", "args": {"name": n}, "id": n}
                                      for n in ("a", "b")])
    graph = tools_only(CancellableToolNode([work], completed_calls=CompletedCalls()))
    await asyncio.wait_for(graph.ainvoke({"messages": [HumanMessage("go"), calls]}), 10)
    assert sorted(running) == ["a", "b"]
    with pytest.raises(ValueError, match="max_concurrency"):
        CancellableToolNode([work], max_concurrency=0)


async def test_under_invoke_max_concurrency_also_gates_the_worker_threads() -> None:
    controller = AbortController()
    started = threading.Event()
    ran: list[str] = []

    @tool
    def step(name: str) -> str:
        """A sync step that runs until the signal."""
        ran.append(name)
        started.set()
        _poll(get_abort_signal())
        return f"{name} stopped"

    calls = AIMessage("", tool_calls=[{"name": "step", "args": {"name": n}, "id": n}
                                      for n in ("a", "b", "c")])
    graph = tools_only(CancellableToolNode([step], completed_calls=CompletedCalls(),
                                           max_concurrency=1))

    def cancel_once_started() -> None:
        assert started.wait(10)
        controller.abort(CancelReason("client", "stop pressed"))

    canceller = threading.Thread(target=cancel_once_started)
    canceller.start()
    config: RunnableConfig = {"max_concurrency": 3}  # three workers: only the gate holds b, c
    with bind_abort_signal(controller.signal):
        result = await asyncio.to_thread(graph.invoke,
                                         {"messages": [HumanMessage("go"), calls]}, config)
    canceller.join()
    assert len(ran) == 1
    out = answers(result["messages"])
    skipped = sorted(set("abc") - set(ran))
    assert all(out[n].text.startswith("Cancelled before it started") for n in skipped)


def _poll(signal: Any) -> None:
    deadline = time.monotonic() + 10
    while not signal.aborted:
        assert time.monotonic() < deadline, "the signal never fired"
        time.sleep(0.001)


async def test_a_repair_that_does_not_know_whether_a_call_started_does_not_say_so() -> None:
    """A dangling call nothing recorded (a plain ToolNode, or a step that never began): the
    answer claims neither that it ran nor that it did not."""
    graph = graph_of(ToolNode([]), StrictFakeChatModel(["unused"]))
    cfg: RunnableConfig = {"configurable": {"thread_id": "t-unknown"}}
    call = AIMessage("", tool_calls=[{"name": "send_report", "args": {}, "id": "c9"}])
    await graph.aupdate_state(cfg, {"messages": [HumanMessage("go"), call]}, as_node="agent")
    report = await repair_thread(graph, cfg, reason="cancelled by client (u)")
    assert report.cancelled_calls == ["c9"]
    answer = answers((await graph.aget_state(cfg)).values["messages"])["c9"]
    assert is_cancelled_tool_message(answer) and answer.status == "error"
    assert answer.text == ("Cancelled with no result: cancelled by client (u). It may not "
                           "have started, or stopped part-way.")


def test_a_tool_part_left_without_a_result_on_the_channel_is_not_said_to_have_run() -> None:
    ui = [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "go"}]},
          {"id": "a1", "role": "assistant", "parts": [
              {"type": "tool-send_report", "toolCallId": "c1", "state": "input-available",
               "input": {"to": "me"}}]}]
    result = to_langchain(ui)[-1]
    assert isinstance(result, ToolMessage) and is_cancelled_tool_message(result)
    assert "before it completed" not in result.text
    assert result.text == "Cancelled with no result: it may not have started, or stopped " \
                          "part-way."


# -- a plain ToolNode: what the client was shown is what the thread keeps -------------------
async def test_with_a_plain_tool_node_a_result_shown_before_the_cancel_is_kept(
        client: ClientSession, agent: AgentSession) -> None:
    """Immediate mode cancels ``ToolNode`` mid-step; a sibling call that had already answered
    (the client shows its output) keeps that answer in the thread, not "cancelled"."""
    @tool
    async def crawl(pages: int) -> str:
        """Crawl until cancelled."""
        await asyncio.Event().wait()
        return "never"

    @tool
    async def send_report(to: str) -> str:
        """Email the report."""
        return f"sent to {to}"

    graph = graph_of(ToolNode([crawl, send_report]),
                     StrictFakeChatModel([CALLS, "Fresh answer."]))
    handle = await client.send("crawl")
    serving = asyncio.create_task(run_graph(graph, agent.create_run(handle.invocation)))
    await client.wait_for(lambda c: bool(c.messages) and any(
        p.get("toolCallId") == "c2" and p.get("state") == "output-available"
        for p in c.messages[-1]["parts"]))
    await handle.cancel()
    outcome = await serving
    thread = answers(await thread_of(graph, handle))
    assert thread["c2"].text == "sent to me@example.com" and thread["c2"].status == "success"
    assert is_cancelled_tool_message(thread["c1"])
    assert outcome.repair is not None
    assert (outcome.repair.completed_calls, outcome.repair.cancelled_calls) == (["c2"], ["c1"])
    assert find_history_errors(await thread_of(graph, handle)) == []
