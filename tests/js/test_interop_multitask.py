"""Multitask strategies end to end: the official JS client sends a second input while its
first run sits in a slow tool of a LangGraph agent.

One endpoint per strategy (``create_agent_app(graph, multitask=...)``, the graph of
``graph_agent.py``: strict scripted model, ``CancellableToolNode``, a checkpointer), one
Node process per endpoint running ``scenarios_multitask.mjs``, all at once. The scenario
``second-input`` (every strategy): "hi"; "Start the long job" (``long_job`` runs until the
scenario releases it or the run is cancelled); while the job runs the same ClientSession
sends "What happened?" and POSTs it; once both runs ended, a last "What happened?". The
model answers "What happened?" with what it was given, so the texts show each run's view of
the thread. The tests check what the JS client saw (run statuses and handles, the POST's
answer, the order of run starts and ends), the ``ai-run-end`` headers on the wire, and the
LangGraph checkpoint afterwards.

How the official client (``@ably/ai-transport`` 0.8) surfaces the outcomes:

* The core ``ClientSession`` never POSTs (``view.send`` only publishes the input; the front
  end wakes the agent itself), so it never sees the 409 of ``reject``: it sees the refused
  input's run on the wire, ``ai-run-start`` then ``ai-run-end{error}``: the ``ClientRun``
  handle and the view's run end ``error`` with ``ErrorInfo(40900, 409, message)``, and the
  session emits that error on ``on('error')``.
* useChat's Vercel ChatTransport POSTs itself (``chat-*`` scenarios): a second useChat on the
  same session sends while the first streams. Refused, its chat ends ``status: 'error'``;
  the error is the session's 40900 error or, had the 409 answer arrived first, the
  transport's ``ErrorInfo(104005, 409, "unable to send; HTTP POST to <api> returned 409
  Conflict")``. The session's error also fails the *other* chat's stream (the transport
  fails every open stream on a session error): the first chat ends ``error`` with the 40900
  message although its run goes on and completes.
* An enqueued input's ``ClientRun`` reads ``status: 'active'`` with an empty ``runId`` until
  its run starts (the client has no "queued" state); the view has no run for it.
* The ChatTransport's ``prepareSendMessagesRequest`` body reaches the POST, so a per-input
  ``multitaskStrategy`` works from useChat (``chat-override``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langgraph_interrupt.integration import is_cancelled_tool_message, unanswered_tool_calls
from langgraph_interrupt.testing import find_history_errors

from .graph_agent import RELEASE_ROUTE, build_graph
from .harness import InteropServer, report_of, run_scenarios

STRATEGIES = ["concurrent", "interrupt", "rollback", "enqueue", "reject"]
JOB, ASK = "Start the long job", "What happened?"
REFUSAL = ("unable to start run; 1 run(s) already active on this session (at most 1) and its "
           "multitask strategy is reject")


@dataclass
class Endpoint:
    server: InteropServer
    graph: Any
    reports: dict[str, dict[str, Any]]

    def report(self, name: str) -> dict[str, Any]:
        return report_of(self.reports, name)

    def config(self, name: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": f"{self.server.prefix}-{name}"}}

    def checkpoint(self, name: str) -> Any:
        """The thread's head for scenario ``name`` (read on the server's loop)."""
        return self.server.call(lambda: self.graph.aget_state(self.config(name)))

    def history(self, name: str) -> list[Any]:
        """Every checkpoint of the thread, oldest first."""
        async def read() -> list[Any]:
            return [s async for s in self.graph.aget_state_history(self.config(name))]

        return list(reversed(self.server.call(read)))

    def run_ends(self, name: str) -> dict[str, dict[str, str]]:
        """Run id -> its ``ai-run-end``'s reason, cancel and error headers, as stored."""
        keys = ("run-reason", "x-cancel-reason", "x-cancel-by", "error-code", "error-message")
        return {h["run-id"]: {k: h[k] for k in keys if k in h}
                for _, h in self.server.wire(f"{self.server.prefix}-{name}", "ai-run-end")}

    def wire_order(self, name: str) -> list[tuple[str, str]]:
        """The channel's run starts and ends as the broker stored them: (``start``/``end``,
        run id), oldest first."""
        broker = self.server.broker
        assert broker is not None
        stored = self.server.call(lambda: broker.history(f"{self.server.prefix}-{name}"))
        return [(m["name"].removeprefix("ai-run-"), m["extras"]["ai"]["transport"]["run-id"])
                for m in stored if m.get("name") in ("ai-run-start", "ai-run-end")]


@pytest.fixture(scope="module")
def endpoints() -> Iterator[dict[str, Endpoint]]:
    """One endpoint per strategy; ``reject``'s also allows ``interrupt`` per input (the
    override scenario). Their Node runs go concurrently."""
    plan = {strategy: ["second-input"] for strategy in STRATEGIES}
    plan["reject"] += ["chat-reject", "chat-override"]
    graphs = {strategy: build_graph() for strategy in plan}
    servers: dict[str, InteropServer] = {}
    try:
        for strategy in plan:
            overrides = ["interrupt"] if strategy == "reject" else []
            servers[strategy] = InteropServer(graphs[strategy], routes=[RELEASE_ROUTE],
                                              multitask=strategy,
                                              multitask_overrides=overrides).start()
        with ThreadPoolExecutor(len(plan)) as pool:
            runs = {strategy: pool.submit(run_scenarios, servers[strategy],
                                          "scenarios_multitask.mjs", names, strategy=strategy)
                    for strategy, names in plan.items()}
            reports = {strategy: run.result() for strategy, run in runs.items()}
        yield {strategy: Endpoint(servers[strategy], graphs[strategy], reports[strategy])
               for strategy in plan}
    finally:
        with ThreadPoolExecutor(len(plan)) as pool:
            list(pool.map(InteropServer.stop, servers.values()))


def numbered(report: dict[str, Any], entries: Iterable[Sequence[str]]) -> list[str]:
    """Run starts and ends, (kind, run id), with each run id replaced by its place in the
    report's ``runIds`` (``second-input``: 0 "hi", 1 the job, 2 the second input, 3 the last
    "What happened?"): "start 1"."""
    turn = {run_id: str(i) for i, run_id in enumerate(report["runIds"])}
    return [f"{kind} {turn.get(run_id, run_id)}" for kind, run_id in entries]


def statuses(report: dict[str, Any]) -> list[str]:
    """The view's status of each turn's run, in turn order."""
    status = {r["runId"]: r["status"] for r in report["view"]["runs"]}
    return [status[run_id] for run_id in report["runIds"]]


# -- what the JS client sees ----------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    """What the JS client sees when its second input arrives during the job, by strategy."""

    post: int  # the second input's POST answer
    runs: tuple[str, str]  # the view's status of the first (job) run and the second
    first_end: dict[str, str]  # the first run's ai-run-end: reason and x-cancel-* headers
    second_end: dict[str, str]
    order: list[str]  # run starts and ends as the client's tree applied them
    second_text: str  # the second run's answer: what its model was given


DONE = {"run-reason": "complete"}
BY_NEW_INPUT = {"run-reason": "cancelled", "x-cancel-reason": "new_input",
                "x-cancel-by": "user-1"}
AROUND = ["start 0", "end 0", "start 1"]  # "hi", then the job starts
AFTER = ["start 3", "end 3"]  # the last "What happened?"
SEEN = {
    # Both active at once: the second starts while the job runs, its graph waits for the
    # thread, and its model then sees the finished job.
    "concurrent": Seen(200, ("complete", "complete"), DONE, DONE,
                       [*AROUND, "start 2", "end 1", "end 2", *AFTER],
                       "You asked: hi | Start the long job. Jobs: Job reindex finished.."),
    # The job's run ends cancelled, by the new input of user-1, then the second starts.
    "interrupt": Seen(200, ("cancelled", "complete"), BY_NEW_INPUT, DONE,
                      [*AROUND, "end 1", "start 2", "end 2", *AFTER],
                      "You asked: hi | Start the long job. Jobs: cancelled."),
    # The same on the wire; the second run's model never sees the interrupted run.
    "rollback": Seen(200, ("cancelled", "complete"), BY_NEW_INPUT, DONE,
                     [*AROUND, "end 1", "start 2", "end 2", *AFTER],
                     "You asked: hi. Jobs: none."),
    # Answered 200 at once; the second starts only after the job's run ended.
    "enqueue": Seen(200, ("complete", "complete"), DONE, DONE,
                    [*AROUND, "end 1", "start 2", "end 2", *AFTER],
                    "You asked: hi | Start the long job. Jobs: Job reindex finished.."),
    # Refused: 409, and the refused input starts and ends error (40900) while the job runs.
    "reject": Seen(409, ("complete", "error"), DONE,
                   {"run-reason": "error", "error-code": "40900", "error-message": REFUSAL},
                   [*AROUND, "start 2", "end 2", "end 1", *AFTER], ""),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_what_the_js_client_sees_when_a_second_input_arrives_during_a_run(
        endpoints, strategy) -> None:
    endpoint, seen = endpoints[strategy], SEEN[strategy]
    report = endpoint.report("second-input")
    hello, first, second, last = report["runIds"]

    assert [h["status"] for h in report["http"]] == [200, 200, seen.post, 200]
    assert statuses(report) == ["complete", *seen.runs, "complete"]
    assert (report["handles"]["first"]["status"], report["handles"]["second"]["status"]) == \
        seen.runs  # the ClientRun handles agree with the view
    assert numbered(report, report["order"]) == seen.order
    # Every device replaying the channel sees the same order and the same reasons.
    assert numbered(report, endpoint.wire_order("second-input")) == seen.order
    ends = endpoint.run_ends("second-input")
    assert (ends[first], ends[second]) == (seen.first_end, seen.second_end)
    assert ends[hello] == ends[last] == DONE
    assert report["texts"]["second"] == seen.second_text


def test_reject_the_core_client_sees_the_refusal_on_the_wire_not_the_409(endpoints) -> None:
    report = endpoints["reject"].report("second-input")
    refused = {"code": 40900, "statusCode": 409, "message": REFUSAL}

    # The front end's own POST (the core ClientSession does not POST) gets the JSON error.
    assert report["http"][2] == {"status": 409, "body": {"error": refused}}
    # The ClientRun handle of the refused send: started (ai-run-start), ended error.
    assert report["handles"]["second"] == {"runId": report["runIds"][2], "status": "error",
                                           "error": refused}
    [_, _, run, _] = report["view"]["runs"]
    assert (run["status"], run["error"]) == ("error", refused)
    assert report["errors"] == [refused]  # session.on('error'), once
    # The refused input shows with no answer; the job's run went on and completed.
    assert [(m["role"], m["text"]) for m in report["view"]["messages"]][4:6] == [
        ("user", ASK), ("user", ASK)]
    assert report["texts"]["first"] == "Starting the job.The job is over."


def test_enqueue_the_queued_input_shows_active_without_a_run_until_it_starts(
        endpoints) -> None:
    report = endpoints["enqueue"].report("second-input")

    assert report["http"][2]["status"] == 200  # answered at once
    assert report["http"][2]["body"]["runId"] == report["runIds"][2]  # the run it will be
    # When the POST was answered: the first run active, the second not started (the
    # official client has no queued state: an unstarted send reads active, with no run id).
    assert report["notes"]["atSecondAnswer"] == {
        "first": {"runId": report["runIds"][1], "status": "active", "error": None},
        "second": {"runId": "", "status": "active", "error": None}}


def test_concurrent_the_second_run_starts_while_the_first_still_runs(endpoints) -> None:
    report = endpoints["concurrent"].report("second-input")

    assert report["notes"]["firstWhenSecondStarted"] == "active"
    assert report["notes"]["secondWhenStarted"] == "active"
    assert report["texts"]["first"] == "Starting the job.The job is over."
    assert report["errors"] == []


# -- the LangGraph thread afterwards --------------------------------------------------------------
def summary(messages: list[BaseMessage]) -> list[str]:
    """A thread's messages, one short line each."""
    lines = []
    for m in messages:
        if isinstance(m, HumanMessage):
            lines.append(f"user: {m.text}")
        elif isinstance(m, AIMessage):
            calls = "".join(f" [{c['name']}]" for c in m.tool_calls)
            lines.append(f"ai: {m.text}{calls}")
        elif isinstance(m, ToolMessage):
            lines.append(f"tool {m.name}: "
                         f"{'cancelled' if is_cancelled_tool_message(m) else m.text}")
    return lines


def started_from(history: list[Any], text: str) -> Any:
    """The checkpoint the run that brought user message ``text`` (its first occurrence)
    started from: the parent of its input checkpoint."""
    by_id = {s.config["configurable"]["checkpoint_id"]: s for s in history}

    def parent(snapshot: Any) -> Any:
        return by_id[snapshot.parent_config["configurable"]["checkpoint_id"]]

    holding = next(s for s in history if f"user: {text}" in summary(s.values["messages"]))
    entry = parent(holding)
    assert entry.metadata["source"] == "input"
    return parent(entry)


TURN_0 = ["user: hi", "ai: Hello from the graph!"]
JOB_CALL = ["user: Start the long job", "ai: Starting the job. [long_job]"]
JOB_DONE = ["tool long_job: Job reindex finished.", "ai: The job is over."]
JOB_CANCELLED = ["tool long_job: cancelled"]


def asked(answer: str) -> list[str]:
    return [f"user: {ASK}", f"ai: {answer}"]


#: The thread's head afterwards, by strategy (both "What happened?" answers are the model's
#: account of the thread it was given).
HEADS = {
    "interrupt": [*TURN_0, *JOB_CALL, *JOB_CANCELLED, *asked(SEEN["interrupt"].second_text),
                  *asked("You asked: hi | Start the long job | What happened?. "
                         "Jobs: cancelled.")],
    "rollback": [*TURN_0, *asked(SEEN["rollback"].second_text),
                 *asked("You asked: hi | What happened?. Jobs: none.")],
    "enqueue": [*TURN_0, *JOB_CALL, *JOB_DONE, *asked(SEEN["enqueue"].second_text),
                *asked("You asked: hi | Start the long job | What happened?. "
                       "Jobs: Job reindex finished..")],
    # The refused input never reached the graph.
    "reject": [*TURN_0, *JOB_CALL, *JOB_DONE,
               *asked("You asked: hi | Start the long job. Jobs: Job reindex finished..")],
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_thread_afterwards_is_valid_under_the_strict_model(endpoints, strategy) -> None:
    endpoint = endpoints[strategy]
    state = endpoint.checkpoint("second-input")
    messages = state.values["messages"]

    assert find_history_errors(messages) == []
    assert unanswered_tool_calls(messages) == {}
    assert state.next == () and state.interrupts == ()
    # The strict model accepted the thread for the last turn (it raises on anything a
    # provider would refuse), and the JS client shows that answer.
    report = endpoint.report("second-input")
    assert summary(messages)[-1] == f"ai: {report['texts']['last']}"


@pytest.mark.parametrize("strategy", HEADS)
def test_the_thread_afterwards_holds_what_the_strategy_says(endpoints, strategy) -> None:
    state = endpoints[strategy].checkpoint("second-input")

    assert summary(state.values["messages"]) == HEADS[strategy]


def test_rollback_the_second_run_starts_from_the_checkpoint_before_the_interrupted_run(
        endpoints) -> None:
    history = endpoints["rollback"].history("second-input")
    before = started_from(history, JOB)  # the thread as the interrupted run found it

    assert summary(before.values["messages"]) == TURN_0
    assert started_from(history, ASK).values == before.values


def test_interrupt_the_second_run_starts_from_the_repaired_partial_run(endpoints) -> None:
    history = endpoints["interrupt"].history("second-input")
    before, after = started_from(history, JOB), started_from(history, ASK)

    assert after.values["messages"][:2] == before.values["messages"]
    assert summary(after.values["messages"]) == [*TURN_0, *JOB_CALL, *JOB_CANCELLED]
    cancelled = after.values["messages"][-1]
    assert cancelled.text.startswith(  # the repair says why, in the model's words
        "Cancelled before it completed: cancelled by input (user-1): interrupted by a new "
        "input")


def test_concurrent_the_thread_keeps_both_turns(endpoints) -> None:
    """Two runs of one thread take turns (run_graph's thread turn): nothing is overwritten."""
    state = endpoints["concurrent"].checkpoint("second-input")
    lines = summary(state.values["messages"])

    assert lines.count(f"user: {ASK}") == 2  # the second input and the last one
    assert f"ai: {SEEN['concurrent'].second_text}" in lines


# -- useChat (the Vercel ChatTransport POSTs) -----------------------------------------------------
def test_use_chat_shows_a_refused_input_as_an_error_and_fails_the_other_chat_too(
        endpoints) -> None:
    endpoint = endpoints["reject"]
    report = endpoint.report("chat-reject")
    first, second = report["runIds"]
    refused = {"code": 40900, "statusCode": 409, "message": REFUSAL}

    assert [(p["status"], p["answer"]) for p in report["posts"]] == [
        (200, {"runId": first, "invocationId": report["view"]["runs"][0]["invocationId"]}),
        (409, {"error": refused})]
    # Chat B (the refused send): error. Which error depends on what reached the transport
    # first: the session's error from the wire's ai-run-end (published before the 409 is
    # sent, so it wins on loopback), or the transport's own error for the 409 answer.
    chat_b = report["chats"]["b"]
    assert chat_b["status"] == "error"
    assert (chat_b["error"]["code"], chat_b["error"]["message"]) in {
        (40900, REFUSAL),
        (104005, f"unable to send; HTTP POST to {endpoint.server.agent_url} returned 409 "
                 f"Conflict")}
    assert chat_b["error"]["statusCode"] == 409
    assert [m["role"] for m in chat_b["messages"]] == ["user"]
    # Chat A (the job) fails too, with the refusal: the ChatTransport errors every open
    # stream of the session on a session error. Its run goes on and completes (the view),
    # but chat A keeps the answer as it was at the refusal.
    chat_a = report["chats"]["a"]
    assert (chat_a["status"], chat_a["error"]) == ("error", {"code": 40900, "statusCode": 409,
                                                             "message": REFUSAL})
    assert chat_a["messages"][-1]["text"] == "Starting the job."
    assert statuses(report) == ["complete", "error"]
    assert report["texts"]["first"] == "Starting the job.The job is over."
    assert report["errors"] == [refused]
    ends = endpoint.run_ends("chat-reject")
    assert (ends[first], ends[second]) == (
        DONE, {"run-reason": "error", "error-code": "40900", "error-message": REFUSAL})


def test_use_chat_asks_for_interrupt_in_its_post_body_and_the_endpoint_allows_it(
        endpoints) -> None:
    endpoint = endpoints["reject"]  # reject, with interrupt allowed per input
    report = endpoint.report("chat-override")
    first, second = report["runIds"]

    assert [(p["status"], p["strategy"]) for p in report["posts"]] == [
        (200, None), (200, "interrupt")]  # prepareSendMessagesRequest's body, as sent
    assert statuses(report) == ["cancelled", "complete"]
    assert numbered(report, report["order"]) == ["start 0", "end 0", "start 1", "end 1"]
    ends = endpoint.run_ends("chat-override")
    assert (ends[first], ends[second]) == (BY_NEW_INPUT, DONE)
    # Both chats end ready: A with its partial answer, B with the answer.
    assert report["chats"]["a"]["status"] == report["chats"]["b"]["status"] == "ready"
    assert report["chats"]["a"]["error"] is None and report["chats"]["b"]["error"] is None
    assert report["chats"]["b"]["messages"][-1]["text"] == (
        "You asked: Start the long job. Jobs: cancelled.")
    assert report["errors"] == []
    state = endpoint.checkpoint("chat-override")
    assert summary(state.values["messages"]) == [
        *JOB_CALL, *JOB_CANCELLED, *asked("You asked: Start the long job. Jobs: cancelled.")]
    assert find_history_errors(state.values["messages"]) == []
