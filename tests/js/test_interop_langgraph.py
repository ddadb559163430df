"""The official JS client drives a LangGraph agent through the endpoint (``run_graph``).

The graph (``graph_agent.py``: a strict scripted model, ``CancellableToolNode``, a
checkpointer) is passed to ``create_agent_app`` as is. One endpoint per cancel mode serves
the module; one Node process per endpoint runs the scenarios of ``scenarios_langgraph.mjs``.
Each test asserts what ``@ably/ai-transport`` 0.8's view shows (tool parts, run statuses,
text) and what really happened on the agent (tool side effects, the checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from langgraph_interrupt.testing import find_history_errors

from .graph_agent import EFFECTS, GREETING, VALUES_SHOWN, build_graph, one_task_at_a_time
from .harness import InteropServer, report_of, run_scenarios

SCENARIOS = ["graph-text", "graph-tool-call", "graph-tool-values", "graph-stop-while-tools",
             "graph-hitl", "graph-chat-hitl"]
#: What the client answers interrupt() with (scenarios_langgraph.mjs's ANSWER).
ANSWER = {"time": "8pm", "seats": 2}

# LangGraph 1.2's AsyncBackgroundExecutor wraps each task in gated(semaphore, coro) when
# max_concurrency is set; a task cancelled while it waits for the semaphore never awaits its
# coroutine, and Python reports "coroutine 'arun_with_retry' was never awaited" when it is
# collected. An immediate Stop with a pending tool call does exactly that (harmless: the call
# is answered "cancelled"). Only that report is ignored here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <coroutine object arun_with_retry"
    ":pytest.PytestUnraisableExceptionWarning")


@dataclass
class Endpoint:
    server: InteropServer
    graph: Any
    reports: dict[str, dict[str, Any]]

    def report(self, name: str) -> dict[str, Any]:
        return report_of(self.reports, name)

    def thread(self, name: str) -> str:
        return f"{self.server.prefix}-{name}"

    def checkpoint(self, name: str) -> Any:
        """The graph's state for scenario ``name``'s thread (read on the server's loop)."""
        config = {"configurable": {"thread_id": self.thread(name)}}
        return self.server.call(lambda: self.graph.aget_state(config))


@pytest.fixture(scope="module")
def endpoints() -> Iterator[dict[str, Endpoint]]:
    """One endpoint per cancel mode; their Node runs go concurrently (a hang in one is
    reported once, within the test timeout)."""
    plan = {"immediate": SCENARIOS, "drain": ["graph-stop-while-tools"]}
    graphs = {mode: build_graph() for mode in plan}
    servers: dict[str, InteropServer] = {}
    try:
        for mode in plan:
            servers[mode] = InteropServer(graphs[mode], graph_config=one_task_at_a_time,
                                          cancel_mode=mode).start()
        with ThreadPoolExecutor(len(plan)) as pool:
            runs = {mode: pool.submit(run_scenarios, servers[mode], "scenarios_langgraph.mjs",
                                      names) for mode, names in plan.items()}
            reports = {mode: run.result() for mode, run in runs.items()}
        yield {mode: Endpoint(servers[mode], graphs[mode], reports[mode]) for mode in plan}
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def graph(endpoints) -> Endpoint:
    return endpoints["immediate"]


def run_status(report: dict[str, Any], run_id: str) -> str:
    return next(r["status"] for r in report["view"]["runs"] if r["runId"] == run_id)


def test_graph_streams_a_text_answer(graph) -> None:
    report = graph.report("graph-text")

    assert report["http"]["body"]["runId"] == report["runId"]
    assert report["text"] == GREETING
    assert run_status(report, report["runId"]) == "complete"
    assert report["errors"] == []


def test_graph_tool_call_streams_its_input_then_its_output(graph) -> None:
    report = graph.report("graph-tool-call")

    states = [seen["state"] for seen in report["states"]]
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == [
        "input-streaming", "input-available", "output-available"]
    [tool] = report["tools"]
    assert (tool["type"], tool["toolCallId"], tool["input"]) == (
        "tool-get_weather", "call_weather", {"city": "Paris"})
    # The tool's dict is an object in the client's view (as the JS agent sends it), although
    # LangChain gave the model its JSON text.
    assert tool["output"] == {"city": "Paris", "forecast": "sunny", "celsius": 21}
    assert report["text"] == "It is sunny and 21°C in Paris."
    assert report["view"]["messages"][1]["parts"] == ["step-start", "tool-get_weather",
                                                      "step-start", "text"]
    assert run_status(report, report["runId"]) == "complete"


def test_every_kind_of_tool_result_reaches_the_client_as_the_tool_returned_it(graph) -> None:
    report = graph.report("graph-tool-values")

    expected = {f"call_{name}": {"state": "output-available", "output": value}
                for name, value in VALUES_SHOWN.items()}
    assert report["outputs"] == expected
    assert report["lateJoiner"] == expected  # the same from the channel's history
    assert report["text"] == f"Got {len(expected)} values."
    assert report["errors"] == []


# How the pending call's part reads: "immediate" stops the graph at once and the checkpoint
# repair answers the call; "drain" lets the step finish, and the tool node skips the call.
SKIPPED = {"immediate": "Cancelled before it started.",
           "drain": "Cancelled before it started: cancelled by client (user-1)"}


@pytest.mark.parametrize("mode", ["immediate", "drain"])
def test_stop_while_tools_run_then_the_next_turn_is_valid(endpoints, mode) -> None:
    endpoint = endpoints[mode]
    report = endpoint.report("graph-stop-while-tools")
    thread = endpoint.thread("graph-stop-while-tools")

    # At Stop: the crawl is running, the report is pending (one task at a time).
    assert [(t["type"], t["state"]) for t in report["atStop"]] == [
        ("tool-crawl_site", "input-available"), ("tool-send_report", "input-available")]
    crawl, send = report["afterStop"]
    assert (crawl["state"], crawl["output"]) == (
        "output-available",
        "Stopped after 1 page of https://docs.example.com/0: the user pressed Stop.")
    assert send["state"] == "output-error"
    assert send["errorText"].startswith(SKIPPED[mode])
    assert run_status(report, report["runId"]) == "cancelled"
    # What really happened: the running tool saw the cancel, the pending one never ran.
    assert EFFECTS.crawl_saw_cancel.get(thread) is True
    assert EFFECTS.reports_sent.get(thread) is None
    # The next turn on the same thread: the strict model accepted the repaired history.
    assert report["next"] == {"runId": report["next"]["runId"], "status": "complete",
                              "text": "I stopped when you asked. Not done: send_report."}
    state = endpoint.checkpoint("graph-stop-while-tools")
    assert find_history_errors(state.values["messages"]) == []


def test_an_interrupt_suspends_the_run_and_the_clients_answer_resumes_it(graph) -> None:
    report = graph.report("graph-hitl")
    run_id = report["runId"]

    question = report["question"]
    assert (question["type"], question["state"], question["input"]) == (
        "tool-ask_user", "input-available", {"question": "What time?"})
    assert report["continuationRunId"] == run_id  # resumed, not a new run
    # The part keeps exactly the object the client sent, live and from history.
    [tool] = report["tools"]
    assert (tool["state"], tool["output"]) == ("output-available", ANSWER)
    [seen_later] = report["lateJoinerTools"]
    assert (seen_later["state"], seen_later["output"]) == ("output-available", ANSWER)
    assert report["text"] == "Booked a table for 8pm."
    assert [(r["runId"], r["status"]) for r in report["view"]["runs"]] == [(run_id, "complete")]
    state = graph.checkpoint("graph-hitl")
    assert state.interrupts == () and state.next == ()
    assert find_history_errors(state.values["messages"]) == []


def test_use_chat_answers_an_interrupt_and_the_graph_resumes(graph) -> None:
    report = graph.report("graph-chat-hitl")

    assert report["question"] == {"state": "input-available",
                                  "input": {"question": "What time?"}}
    assert report["chat"]["status"] == "ready"
    assert report["chat"]["messages"][-1]["text"] == "Booked a table for 8pm."
    # useChat's part (it shows it in the question's message and again in the continuation's)
    # and the session view keep exactly the object addToolOutput sent.
    assert report["chatTools"]
    assert all(t == {"state": "output-available", "output": ANSWER} for t in report["chatTools"])
    assert [(t["state"], t["output"]) for t in report["tools"]] == [
        ("output-available", ANSWER)]
    assert [(p["status"], p["body"]["historyLength"]) for p in report["posts"]] == [
        (200, 0), (200, 2)]  # the question, then useChat's automatic continuation
    assert [r["status"] for r in report["view"]["runs"]] == ["complete"]
    assert report["errors"] == []
    state = graph.checkpoint("graph-chat-hitl")
    assert state.interrupts == () and find_history_errors(state.values["messages"]) == []
