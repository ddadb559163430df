"""Steering a LangGraph agent with the official JS client (issue 13's wire acceptance).

The graph of ``graph_agent.py`` (strict scripted model, ``CancellableToolNode``, a
checkpointer) served by ``create_agent_app``, so ``run_graph`` runs it; the real
``@ably/ai-transport`` 0.8 client steers with ``ClientRun.steer(codec.createUserMessage(...))``
(``scenarios_graph_steering.mjs``, one Node process for all scenarios, concurrently). The
model answers a user message that follows tool results it has not answered yet by appending
it to its answer, and records every prompt by thread, so both the client's text and the
prompts show what the model saw. Releases (``POST /test/release {"thread", "steers"}``)
wait until the agent's run has the steer: everything is synchronised on events.

What the official client gives, and what the graph does:

* A steer while ``long_job`` runs: taken in at the step boundary after the tool, the next
  (last) model call sees it right after the tool result; ``outcome`` resolves
  ``{consumed: true, runTerminalReason: 'complete'}``. The run's first assistant message is
  finished at the boundary and the answer is a new assistant message, as the official JS
  agent's loop does (one message per pass): the header is on every Ably message of that
  new message and on nothing before it, and the client's view reads [trigger, first answer,
  steer, answer to the steer].
* A steer while the model streams the message that calls the tool: the boundary after that
  step leaves the call unanswered, so the steer joins after the tool's result.
* A steer the agent holds when the client's cancel arrives, or one published right after the
  cancel: ``{consumed: false, runTerminalReason: 'cancelled'}``. The thread is repaired (the
  job's call answered "cancelled"), valid for the strict model, and never held the steer.
  A steer published after the cancel reaches the channel before or after the agent's
  ``ai-run-end`` (the agent ends that fast); after it, ``published`` resolves ``{}``
  (``serial: undefined``), else ``{serial}``.
* A steer while the model streams its final answer (no tools): the graph has finished when
  the answer ends, so it goes round once more with the steer: ``consumed: true``, the thread
  ``[human, ai, human (steer), ai]``.

Needs Node >= 22 and tests/js's pinned packages: ``bash scripts/setup_js.sh``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langgraph_interrupt.integration import is_cancelled_tool_message, unanswered_tool_calls
from langgraph_interrupt.testing import find_history_errors

from .graph_agent import PROMPTS, RELEASE_ROUTE, STEERS, STORY, build_graph, on_steer
from .harness import InteropServer, report_of, run_scenarios

SCENARIOS = ["graph-steer-during-tool", "graph-steer-then-cancel", "graph-steer-after-cancel",
             "graph-steer-while-calling-tool", "graph-steer-while-answering"]
JOB, ASK, WEATHER = "Start the long job", "What happened?", "also report the weather"
ANSWER = f"The job is over. You also asked, while it ran: {WEATHER}."
CONSUMED = {"consumed": True, "runTerminalReason": "complete"}
NOT_CONSUMED = {"consumed": False, "runTerminalReason": "cancelled"}
JOB_CALL = ["user: Start the long job", "ai: Starting the job. [long_job]"]
SHORT = f"In short: {STORY.split(',')[0]}, done."


@dataclass
class Endpoint:
    server: InteropServer
    graph: Any
    reports: dict[str, dict[str, Any]]

    def report(self, name: str) -> dict[str, Any]:
        return report_of(self.reports, name)

    def thread(self, name: str) -> str:
        return f"{self.server.prefix}-{name}"

    def messages(self, name: str) -> list[BaseMessage]:
        """The thread's messages in the LangGraph checkpoint (read on the server's loop)."""
        config = {"configurable": {"thread_id": self.thread(name)}}
        state = self.server.call(lambda: self.graph.aget_state(config))
        assert state.next == () and state.interrupts == ()
        return list(state.values["messages"])

    def history(self, name: str) -> list[list[BaseMessage]]:
        """The messages of every checkpoint the thread ever had, oldest first."""
        config = {"configurable": {"thread_id": self.thread(name)}}

        async def read() -> list[list[BaseMessage]]:
            return [list(s.values.get("messages", []))
                    async for s in self.graph.aget_state_history(config)]

        return list(reversed(self.server.call(read)))

    def prompts(self, name: str) -> list[list[str]]:
        """Every prompt the model was given on the thread, summarised."""
        prompts: list[list[str]] = self.server.call(
            lambda: [summary(p) for p in PROMPTS.get(self.thread(name), [])])
        return prompts

    def steers_received(self, name: str) -> list[str]:
        """The codec-message-ids of the steers the agent's runs received (``on_steer``)."""
        ids: list[str] = self.server.call(
            lambda: [s.codec_message_id for s in STEERS.get(self.thread(name), [])])
        return ids

    def stored(self, name: str) -> list[dict[str, Any]]:
        """The channel's messages as the broker stored them (aggregated), oldest first."""
        broker = self.server.broker
        assert broker is not None
        stored: list[dict[str, Any]] = self.server.call(lambda: broker.history(
            self.thread(name)))
        return stored


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    graph = build_graph()
    server = InteropServer(graph, routes=[RELEASE_ROUTE],
                           session_options={"on_steer": on_steer}).start()
    try:
        reports = run_scenarios(server, "scenarios_graph_steering.mjs", SCENARIOS)
        yield Endpoint(server, graph, reports)
    finally:
        server.stop()


# -- helpers ---------------------------------------------------------------------------------------
def summary(messages: list[BaseMessage]) -> list[str]:
    """A thread's (or a prompt's) messages, one short line each."""
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


def assert_valid(messages: list[BaseMessage]) -> None:
    """What a provider would accept: the strict model's oracle, no call left unanswered."""
    assert find_history_errors(messages) == []
    assert unanswered_tool_calls(messages) == {}


def roles_and_texts(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["text"]) for m in view["messages"]]


def the_steer(wire: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """The one steer on the wire: a user message carrying the run's id (the trigger has
    none)."""
    [steer] = [m for m in wire if m["name"] == "ai-input" and m["runId"] == run_id
               and m["kind"] == "user-message"]
    return steer


def outputs(wire: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The run's ``ai-output`` messages as received (ably-js names an append after its
    message)."""
    return [m for m in wire if m["name"] == "ai-output" and m["runId"] == run_id]


def stamp(*ids: str) -> str:
    return json.dumps(list(ids), separators=(",", ":"))


# -- 1. a steer while a slow tool runs -------------------------------------------------------------
def test_a_steer_during_a_slow_tool_is_consumed_and_the_answer_reflects_it(endpoint) -> None:
    report = endpoint.report("graph-steer-during-tool")
    run_id = report["runId"]
    steer = the_steer(report["wire"], run_id)

    assert report["steer"]["outcome"] == CONSUMED
    assert report["steer"]["published"] == {"serial": steer["serial"]}
    # The release waited for the agent to have it; until the answer the outcome was pending
    # and the view showed the steer unanswered, last in the run.
    assert report["released"]["steers"] == 1
    assert endpoint.steers_received("graph-steer-during-tool") == [steer["codecMessageId"]]
    assert report["pending"]["settled"] is False
    assert roles_and_texts(report["pending"]["view"])[-1] == ("user", WEATHER)
    # The answer after the tool reflects the steer: the run's one assistant message ends
    # with it (a second step), all in the run, which completed.
    assert report["text"] == f"Starting the job.{ANSWER}"
    view = report["view"]
    assert {m["runId"] for m in view["messages"]} == {run_id}
    assert [r["status"] for r in view["runs"]] == ["complete"]
    assert report["errors"] == []


def test_the_model_call_after_the_tool_sees_the_steer_and_the_thread_is_valid(
        endpoint) -> None:
    name = "graph-steer-during-tool"

    # Two model calls: the job's, then the one right after the tool, whose prompt ends with
    # the tool result and the steer (never between the AI message and its result).
    assert endpoint.prompts(name) == [
        ["user: Start the long job"],
        [*JOB_CALL, "tool long_job: Job reindex finished.", f"user: {WEATHER}"]]
    messages = endpoint.messages(name)
    assert_valid(messages)
    # The steer once, right after the tool result and before the final AI message.
    assert summary(messages) == [*JOB_CALL, "tool long_job: Job reindex finished.",
                                 f"user: {WEATHER}", f"ai: {ANSWER}"]


def test_the_answer_after_the_drain_carries_the_header_and_nothing_before_it(
        endpoint) -> None:
    report = endpoint.report("graph-steer-during-tool")
    run_id = report["runId"]
    steer = the_steer(report["wire"], run_id)
    wire = report["wire"]
    ours = outputs(wire, run_id)
    stamped = [m for m in wire if m["steerIds"] is not None]

    # The first assistant message ends at the boundary (its finish, unstamped, after the
    # tool result); the header is on every output of the new message that answers the
    # steer: start, start-step, the text stream's create and appends, finish-step, finish.
    first = next(i for i, m in enumerate(ours) if m["steerIds"] is not None)
    assert [m["kind"] for m in ours[first - 2:first]] == ["tool-output-available", "finish"]
    assert ours[first]["kind"] == "start"
    assert len({m["codecMessageId"] for m in ours[first:]}) == 1
    assert not {m["codecMessageId"] for m in ours[first:]} & {
        m["codecMessageId"] for m in ours[:first]}, "a new assistant message"
    assert all(m["steerIds"] is None for m in ours[:first])
    assert [m["steerIds"] for m in ours[first:]] == [stamp(steer["codecMessageId"])] * len(
        ours[first:])
    assert [m["kind"] for m in ours[first:]][-2:] == ["finish-step", "finish"]
    assert {("text", "message.create"), ("text", "message.append")} <= {
        (m["kind"], m["action"]) for m in ours[first:]}
    assert stamped == ours[first:]  # not the steps, not the run's lifecycle, not the inputs
    # The steer reached the channel before any stamped message.
    assert wire.index(steer) < wire.index(ours[first])
    # The same on the broker's aggregated copy (what history and late joiners read).
    stored = [m for m in endpoint.stored("graph-steer-during-tool")
              if m["name"] == "ai-output"]
    headers = [m["extras"]["ai"]["transport"].get("steer-codec-message-ids") for m in stored]
    kinds = [m["extras"]["ai"]["codec"]["kind"] for m in stored]
    cut = kinds.index("tool-output-available") + 2  # and the first message's finish
    assert headers[:cut] == [None] * cut
    assert headers[cut:] == [stamp(steer["codecMessageId"])] * (len(stored) - cut)
    assert kinds[cut] == "start"


@pytest.mark.parametrize(("name", "before", "after"), [
    ("graph-steer-during-tool", "Starting the job.", ANSWER),
    ("graph-steer-while-answering", STORY, SHORT)])
def test_the_view_shows_the_answer_to_a_steer_after_the_steer(endpoint, name, before,
                                                               after) -> None:
    """As with the official JS agent (test_interop_steering.py): the client's view reads
    [trigger, first answer, steer, answer to the steer]."""
    view = endpoint.report(name)["view"]
    trigger = {"graph-steer-during-tool": JOB}.get(name, "Tell me a story")
    steer = {"graph-steer-during-tool": WEATHER}.get(name, "make it short")

    assert roles_and_texts(view) == [("user", trigger), ("assistant", before), ("user", steer),
                                     ("assistant", after)]


# -- 2. cancel -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["graph-steer-then-cancel", "graph-steer-after-cancel"])
def test_a_steer_the_cancel_overtakes_is_not_consumed(endpoint, name) -> None:
    report = endpoint.report(name)
    run_id = report["runId"]
    steer = the_steer(report["wire"], run_id)
    names = [m["name"] for m in endpoint.stored(name)]

    assert report["steer"]["outcome"] == NOT_CONSUMED
    # The client's view at the end of the run: the steer stays in the cancelled run,
    # unanswered.
    assert [r["status"] for r in report["view"]["runs"]] == ["cancelled"]
    assert roles_and_texts(report["view"]) == [("user", JOB), ("assistant", "Starting the job."),
                                               ("user", WEATHER)]
    assert report["view"]["messages"][2]["runId"] == run_id
    assert all(m["steerIds"] is None for m in report["wire"])  # nothing took it in
    if name == "graph-steer-then-cancel":
        # The agent had it (in the run, a drain asked for) when the cancel came.
        assert report["steer"]["published"] == {"serial": steer["serial"]}
        assert endpoint.steers_received(name) == [steer["codecMessageId"]]
        assert names.index("ai-input", 1) < names.index("ai-cancel")
    else:
        # Published after the cancel, before the client saw the run end (so steer() took
        # it). The agent ends fast: when its ai-run-end reached the channel first, the SDK
        # resolves `published` without a serial (the run ended before the echo).
        assert names.index("ai-cancel") < names.index("ai-input", 1)
        before_the_end = names.index("ai-input", 1) < names.index("ai-run-end")
        assert report["steer"]["published"] == (
            {"serial": steer["serial"]} if before_the_end else {})
    assert report["errors"] == []


@pytest.mark.parametrize("name", ["graph-steer-then-cancel", "graph-steer-after-cancel"])
def test_after_a_cancelled_steer_the_thread_is_repaired_and_never_held_it(endpoint,
                                                                          name) -> None:
    report = endpoint.report(name)
    messages = endpoint.messages(name)
    told = "You asked: Start the long job. Jobs: cancelled."

    assert_valid(messages)
    # The job's call answered "cancelled" by the cancel's own repair (not by the next
    # turn's); no steer; the next turn's model call accepted the thread and recounts every
    # user request it holds.
    assert summary(messages) == [*JOB_CALL, "tool long_job: cancelled", f"user: {ASK}",
                                 f"ai: {told}"]
    assert messages[2].text == "Cancelled before it completed: cancelled by client (user-1)."
    assert report["next"]["text"] == told
    # No checkpoint ever held the steer, and no model call saw it.
    assert all(WEATHER not in m.text for thread in endpoint.history(name) for m in thread)
    assert all(WEATHER not in line for prompt in endpoint.prompts(name) for line in prompt)
    assert len(endpoint.prompts(name)) == 2  # the job's call, then the next turn's


def test_a_steer_while_the_model_calls_a_tool_waits_for_the_tools_result(endpoint) -> None:
    """Never between an AI message and its tool results: the steer came while the model
    streamed the call, the boundary after that step left the call unanswered, so the graph
    went on and took the steer in after the tool."""
    name = "graph-steer-while-calling-tool"
    report = endpoint.report(name)
    steer = the_steer(report["wire"], report["runId"])
    call = ["user: Narrate the reindex", "ai: Once upon a time, I started the job. [long_job]",
            "tool long_job: Job narrated finished."]
    answer = f"The narrated job is over. You also asked, while it ran: {WEATHER}."

    assert report["steer"]["outcome"] == CONSUMED
    assert report["steer"]["published"] == {"serial": steer["serial"]}
    assert endpoint.steers_received(name) == [steer["codecMessageId"]]
    assert endpoint.prompts(name) == [["user: Narrate the reindex"], [*call, f"user: {WEATHER}"]]
    messages = endpoint.messages(name)
    assert_valid(messages)
    assert summary(messages) == [*call, f"user: {WEATHER}", f"ai: {answer}"]
    assert report["text"] == f"Once upon a time, I started the job.{answer}"  # the run's
    # Stamped from the new message after the tool result on, as for a steer during the tool.
    ours = outputs(report["wire"], report["runId"])
    first = next(i for i, m in enumerate(ours) if m["steerIds"] is not None)
    assert [m["kind"] for m in ours[first - 2:first]] == ["tool-output-available", "finish"]
    assert ours[first]["kind"] == "start"
    assert [m for m in report["wire"] if m["steerIds"] is not None] == ours[first:]
    assert {m["steerIds"] for m in ours[first:]} == {stamp(steer["codecMessageId"])}
    assert report["errors"] == []


# -- 3. a steer while the model streams its final answer -----------------------------------------
def test_a_steer_while_the_final_answer_streams_goes_round_once_more(endpoint) -> None:
    name = "graph-steer-while-answering"
    report = endpoint.report(name)
    run_id = report["runId"]
    steer = the_steer(report["wire"], run_id)

    assert report["steer"]["outcome"] == CONSUMED
    assert report["steer"]["published"] == {"serial": steer["serial"]}
    assert report["pending"]["settled"] is False
    assert endpoint.steers_received(name) == [steer["codecMessageId"]]
    # The story streamed to its end, then one more model call with the steer.
    assert endpoint.prompts(name) == [["user: Tell me a story"],
                                      ["user: Tell me a story", f"ai: {STORY}",
                                       "user: make it short"]]
    messages = endpoint.messages(name)
    assert_valid(messages)
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]
    assert summary(messages) == ["user: Tell me a story", f"ai: {STORY}", "user: make it short",
                                 f"ai: {SHORT}"]
    assert report["text"] == f"{STORY}{SHORT}"  # the run's assistant text, both messages
    assert [r["status"] for r in report["view"]["runs"]] == ["complete"]
    # The header: on the second step's outputs only, none of the story's.
    ours = outputs(report["wire"], run_id)
    first = next(i for i, m in enumerate(ours) if m["steerIds"] is not None)
    assert [m["kind"] for m in ours[:first]][-1] == "finish"
    assert ours[first]["kind"] == "start"
    assert all(m["steerIds"] is None for m in ours[:first])
    assert {m["steerIds"] for m in ours[first:]} == {stamp(steer["codecMessageId"])}
    assert [m for m in report["wire"] if m["steerIds"] is not None] == ours[first:]
    assert report["errors"] == []
