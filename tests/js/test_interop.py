"""The official JS client drives the Python agent endpoint (scripted agent, no LangGraph).

One broker and one endpoint serve the module; one Node process runs every scenario of
``scenarios.mjs`` concurrently (each on its own session channel), and each test asserts on
its scenario's report: what ``@ably/ai-transport`` 0.8's session and view, the ClientRun
handle and ai@7's ``Chat`` (what ``useChat`` wraps) show, plus what the agent saw, what the
broker stored and, for the ``*-by-python`` scenarios, what a Python ``ClientSession`` on the
same channel did and saw while Node ran.

Needs Node >= 22 and tests/js's pinned packages: ``bash scripts/setup_js.sh`` (the test
command runs it). Missing pieces fail the tests with that hint; nothing is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pytest
from ably import AblyRealtime

from langgraph_interrupt import ClientSession, RunInfo
from langgraph_interrupt.channels import AblyChannel

from .harness import InteropServer, report_of, run_scenarios
from .scenario_agent import HELD, ScenarioAgent

SCENARIOS = [
    "text", "tool-call", "client-tool", "stop-by-run-id", "stop-before-start",
    "tail-after-cancel", "cancel-then-send", "send-alongside", "cancel-from-second-device",
    "on-cancel-rejected", "agent-error", "agent-raises", "chat-transport", "chat-stop",
    "chat-unknown-session", "cancelled-by-python", "chat-cancelled-by-python",
]
FULL_HELD = "".join(HELD)
#: Scenarios whose run a Python ClientSession (client id PY_CLIENT) cancels while Node runs.
BY_PYTHON = ["cancelled-by-python", "chat-cancelled-by-python"]
PY_CLIENT = "voice-1"


@dataclass
class Interop:
    server: InteropServer
    agent: ScenarioAgent
    reports: dict[str, dict[str, Any]]
    python: dict[str, Future[RunInfo]]

    def report(self, name: str) -> dict[str, Any]:
        return report_of(self.reports, name)

    def wire(self, name: str, event: str) -> list[tuple[str | None, dict[str, str]]]:
        """The ``event`` messages of scenario ``name``'s channel as the broker stored them:
        (publisher's client id, transport headers), oldest first."""
        return self.server.wire(f"{self.server.prefix}-{name}", event)

    def agent_saw(self, name: str) -> list[dict[str, Any]]:
        """What the agent recorded for the runs of scenario ``name`` (read on its loop)."""
        channel = f"{self.server.prefix}-{name}"

        def read() -> list[dict[str, Any]]:
            return [{
                "scenario": r.scenario, "extra": r.extra, "headers": r.headers,
                "run_id": r.run_id, "end_reason": r.run.end_reason,
                "pipe": r.result.reason if r.result else None,
                "sent": r.source.sent if r.source else None,
                "finalised": r.source.finalised.is_set() if r.source else None,
                "cancel_requests": list(r.cancel_requests),
                "continuation": r.continuation,
            } for r in self.agent.log.get(channel, [])]

        result: list[dict[str, Any]] = self.server.call(read)
        return result


@pytest.fixture(scope="module")
def interop() -> Iterator[Interop]:
    agent = ScenarioAgent()
    server = InteropServer(agent, on_cancel=agent.on_cancel).start()
    try:
        python = {name: server.submit(lambda name=name: python_cancels(server, name))
                  for name in BY_PYTHON}
        yield Interop(server, agent, run_scenarios(server, "scenarios.mjs", SCENARIOS), python)
    finally:
        server.stop()


async def python_cancels(server: InteropServer, name: str) -> RunInfo:
    """A Python ClientSession on scenario ``name``'s channel: once the run the JS client
    started shows two tokens, it cancels the run with reason ``user_speaking``; returns the
    run as it ended, as this client sees it."""
    assert server.broker is not None
    ably = AblyRealtime(**server.broker.python_client_options(client_id=PY_CLIENT))
    client = ClientSession(AblyChannel(ably, f"{server.prefix}-{name}"))

    def held_run(session: ClientSession) -> RunInfo | None:
        active = [r for r in session.runs if r.status == "active"]
        answers = [texts(m) for m in session.messages if m["role"] == "assistant"]
        return active[0] if len(active) == 1 and answers == ["one two "] else None

    try:
        async with asyncio.timeout(20):  # reports a hang (the Node scenario failed)
            await client.connect()
            run: RunInfo = await client.wait_for(held_run)
            await client.cancel(run.run_id, reason="user_speaking")
            return await client.wait_run_ended(run.run_id)
    finally:
        await client.close()
        await ably.close()


def texts(message: dict[str, Any]) -> str:
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


def roles_and_runs(view: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(m["role"], m["runId"], m["text"]) for m in view["messages"]]


def run_info(view: dict[str, Any], run_id: str) -> dict[str, Any]:
    return next(r for r in view["runs"] if r["runId"] == run_id)


# -- streaming ----------------------------------------------------------------------------------
def test_js_client_sends_and_streams_a_text_answer(interop) -> None:
    report = interop.report("text")
    run_id = report["runId"]

    assert report["http"]["status"] == 200
    assert report["http"]["body"]["runId"] == run_id  # the POST answer names the real run
    assert report["handle"] == {"runId": run_id, "status": "complete", "error": None}
    assert roles_and_runs(report["view"]) == [("user", run_id, "hi"),
                                              ("assistant", run_id, "Hello, world!")]
    assert report["view"]["messages"][1]["parts"] == ["step-start", "text"]
    info = run_info(report["view"], run_id)
    assert (info["status"], info["clientId"]) == ("complete", "user-1")
    assert info["invocationId"] == report["http"]["body"]["invocationId"]
    assert report["errors"] == []
    [seen] = interop.agent_saw("text")
    assert (seen["extra"], seen["end_reason"]) == ({"scenario": "text"}, "complete")


def test_js_client_shows_a_server_tool_call_with_streamed_input_and_output(interop) -> None:
    report = interop.report("tool-call")

    states = [seen["state"] for seen in report["states"]]
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == [
        "input-streaming", "input-available", "output-available"]
    tool = report["tool"]
    assert (tool["type"], tool["toolCallId"]) == ("tool-get_weather", "call-1")
    assert tool["input"] == {"city": "Paris"}
    assert tool["output"] == {"city": "Paris", "forecast": "sunny", "celsius": 21}
    assert report["text"] == "Sunny, 21°C."
    assert [m["role"] for m in report["view"]["messages"]] == ["user", "assistant"]
    assert report["view"]["messages"][1]["parts"] == ["step-start", "tool-get_weather",
                                                      "step-start", "text"]
    assert run_info(report["view"], report["runId"])["status"] == "complete"


def test_a_client_tool_suspends_the_run_and_the_tool_result_resumes_it(interop) -> None:
    report = interop.report("client-tool")
    run_id = report["runId"]

    assert (report["asked"]["type"], report["asked"]["state"]) == ("tool-get_location",
                                                                   "input-available")
    assert report["continuationRunId"] == run_id  # resumed, not a new run
    assert report["http"]["status"] == 200
    assert report["tool"]["state"] == "output-available"
    assert report["tool"]["output"] == {"city": "Paris"}  # exactly the client's object
    late = report["lateJoinerTool"]
    assert (late["state"], late["output"]) == ("output-available", {"city": "Paris"})
    assert report["text"] == "You are in Paris."
    assert [r["runId"] for r in report["view"]["runs"]] == [run_id]
    assert run_info(report["view"], run_id)["status"] == "complete"
    seen = interop.agent_saw("client-tool")
    assert [(s["run_id"], s["continuation"], s["end_reason"]) for s in seen] == [
        (run_id, False, None), (run_id, True, "complete")]  # suspended, then resumed


# -- Stop ------------------------------------------------------------------------------------------
def test_js_client_stops_mid_stream_with_session_cancel(interop) -> None:
    report = interop.report("stop-by-run-id")
    run_id = report["runId"]

    assert report["handle"]["status"] == "cancelled"
    assert report["text"] == "one two "  # the partial answer stays, nothing after the Stop
    assert run_info(report["view"], run_id)["status"] == "cancelled"
    [seen] = interop.agent_saw("stop-by-run-id")
    assert (seen["pipe"], seen["end_reason"], seen["sent"]) == ("cancelled", "cancelled", 2)
    assert seen["finalised"]  # the model stream was closed
    assert seen["cancel_requests"] == [("user-1", True)]


def test_js_client_stops_with_the_send_handle_before_the_run_started(interop) -> None:
    report = interop.report("stop-before-start")
    run_id = report["runId"]

    assert report["http"]["status"] == 200
    assert report["handle"]["status"] == "cancelled"
    assert [m["role"] for m in report["view"]["messages"]] == ["user"]  # no answer at all
    assert run_info(report["view"], run_id)["status"] == "cancelled"
    [seen] = interop.agent_saw("stop-before-start")
    assert (seen["pipe"], seen["sent"]) == ("cancelled", 0)
    assert seen["cancel_requests"] == [("user-1", True)]


def test_tokens_published_after_the_cancel_belong_to_the_cancelled_run(interop) -> None:
    report = interop.report("tail-after-cancel")
    run_id = report["runId"]

    assert report["atCancel"] == "one two "
    assert report["text"] == "one two three four "  # the tail, inside the cancelled run
    assert roles_and_runs(report["view"]) == [("user", run_id, "go on"),
                                              ("assistant", run_id, "one two three four ")]
    assert run_info(report["view"], run_id)["status"] == "cancelled"
    [seen] = interop.agent_saw("tail-after-cancel")
    assert (seen["sent"], seen["end_reason"]) == (4, "cancelled")


def test_cancel_then_send_starts_the_next_run_clean(interop) -> None:
    report = interop.report("cancel-then-send")
    first, second = report["first"], report["second"]

    assert (first["status"], first["text"]) == ("cancelled", "one two ")
    assert (second["status"], second["text"]) == ("complete", "Hello, world!")
    assert first["runId"] != second["runId"]
    assert roles_and_runs(report["view"]) == [
        ("user", first["runId"], "first"), ("assistant", first["runId"], "one two "),
        ("user", second["runId"], "second"), ("assistant", second["runId"], "Hello, world!")]
    assert [s["end_reason"] for s in interop.agent_saw("cancel-then-send")] == [
        "cancelled", "complete"]


def test_send_alongside_cancel_one_run_and_the_other_completes(interop) -> None:
    report = interop.report("send-alongside")
    a, b = report["a"], report["b"]

    assert report["bothActive"] == ["active", "active"]
    assert (a["status"], a["text"]) == ("cancelled", "one two ")
    assert (b["status"], b["text"]) == ("complete", FULL_HELD)
    seen = interop.agent_saw("send-alongside")
    assert [(s["run_id"], s["end_reason"]) for s in seen] == [
        (a["runId"], "cancelled"), (b["runId"], "complete")]
    assert seen[1]["cancel_requests"] == []  # B was never asked to stop


def test_a_cancel_from_a_second_device_stops_the_run(interop) -> None:
    report = interop.report("cancel-from-second-device")
    run_id = report["runId"]

    assert report["seenRunId"] == run_id  # the other device found the run in its own view
    assert len(set(report["connections"])) == 2
    for device in ("phone", "laptop"):
        view = report[device]["view"]
        assert run_info(view, run_id)["status"] == "cancelled"
        assert roles_and_runs(view)[-1] == ("assistant", run_id, "one two ")
    [seen] = interop.agent_saw("cancel-from-second-device")
    assert seen["cancel_requests"] == [("user-1", True)]


def test_an_on_cancel_hook_rejecting_a_cancel_leaves_the_run_streaming(interop) -> None:
    report = interop.report("on-cancel-rejected")
    run_id = report["runId"]

    assert report["handle"]["status"] == "complete"
    assert report["text"] == FULL_HELD
    assert run_info(report["view"], run_id)["status"] == "complete"
    [seen] = interop.agent_saw("on-cancel-rejected")
    assert seen["cancel_requests"] == [("intruder", False)]
    assert (seen["pipe"], seen["end_reason"]) == ("complete", "complete")


# -- errors ----------------------------------------------------------------------------------------
MODEL_ERROR = {"code": 104008, "statusCode": 500,
               "message": "unable to complete run; model provider exploded (429)"}


def test_an_agent_error_reaches_the_client_as_a_run_in_state_error(interop) -> None:
    report = interop.report("agent-error")
    run_id = report["runId"]

    assert report["handle"] == {"runId": run_id, "status": "error", "error": MODEL_ERROR}
    assert run_info(report["view"], run_id)["error"] == MODEL_ERROR
    assert report["errors"] == [MODEL_ERROR]  # the live session also emits it
    assert report["text"] == "Hello, "  # what streamed before the failure stays


def test_an_agent_that_raises_ends_the_run_error_through_the_endpoint(interop) -> None:
    report = interop.report("agent-raises")

    assert report["handle"]["status"] == "error"
    assert report["handle"]["error"] == {"code": 104008, "statusCode": 500,
                                         "message": "unable to complete run; the agent crashed"}


# -- useChat (Vercel ChatTransport) ----------------------------------------------------------------
def test_use_chat_transport_posts_to_the_endpoint_and_receives_the_stream(interop) -> None:
    report = interop.report("chat-transport")

    assert report["chat"] == {"status": "ready", "error": None, "messages": [
        {"role": "user", "text": "hi", "parts": ["text"]},
        {"role": "assistant", "text": "Hello, world!", "parts": ["step-start", "text"]}]}
    [post] = report["posts"]
    assert (post["method"], post["status"]) == ("POST", 200)
    assert post["url"] == interop.server.agent_url
    assert set(post["body"]) == {"inputEventId", "sessionName", "scenario", "trigger",
                                 "historyLength"}
    assert run_info(report["view"], report["runId"])["status"] == "complete"
    [seen] = interop.agent_saw("chat-transport")
    assert seen["extra"] == {"scenario": "text", "trigger": "submit-message",
                             "historyLength": 0}
    assert seen["headers"]["x-chat-test"] == "text"
    assert seen["headers"]["content-type"] == "application/json"


def test_use_chat_stop_cancels_the_run(interop) -> None:
    report = interop.report("chat-stop")

    assert report["chat"]["status"] == "ready"
    assert report["chat"]["messages"][-1] == {"role": "assistant", "text": "one two ",
                                              "parts": ["step-start", "text"]}
    assert run_info(report["view"], report["runId"])["status"] == "cancelled"
    [seen] = interop.agent_saw("chat-stop")
    assert (seen["end_reason"], seen["cancel_requests"]) == ("cancelled", [("user-1", True)])


def test_use_chat_shows_the_endpoints_refusal_of_an_unknown_session(interop) -> None:
    report = interop.report("chat-unknown-session")

    assert report["chat"]["status"] == "error"
    assert report["chat"]["error"]["code"] == 104005
    assert report["chat"]["error"]["message"].endswith("returned 404 Not Found")
    assert [p["status"] for p in report["posts"]] == [404]
    assert interop.agent.log.get(f"forbidden:{interop.server.prefix}") is None


# -- interruption reasons: this package's x-cancel-* headers and the official client ---------------
@pytest.mark.parametrize("name", ["stop-by-run-id", "stop-before-start", "chat-stop"])
def test_a_js_stop_ends_the_run_with_reason_client_request_and_the_js_client_id(
        interop, name) -> None:
    report = interop.report(name)  # session.cancel(runId), the send handle's, useChat's stop()
    run_id = report["runId"]

    assert run_info(report["view"], run_id)["status"] == "cancelled"
    [(sender, cancel)] = interop.wire(name, "ai-cancel")
    assert sender == "user-1"
    assert not [h for h in cancel if h.startswith("x-")]  # the JS client gives no reason
    [(_, end)] = interop.wire(name, "ai-run-end")
    assert (end["run-id"], end["run-reason"]) == (run_id, "cancelled")
    assert (end["x-cancel-reason"], end["x-cancel-by"]) == ("client_request", "user-1")


def test_a_python_client_cancels_a_js_clients_run_with_a_reason(interop) -> None:
    report = interop.report("cancelled-by-python")
    run_id = report["runId"]

    # The JS client: the run cancelled, the partial answer intact, no error, and it goes on.
    assert report["handle"]["status"] == "cancelled"
    assert run_info(report["view"], run_id)["status"] == "cancelled"
    assert roles_and_runs(report["view"]) == [("user", run_id, "tell me a story"),
                                              ("assistant", run_id, "one two ")]
    assert report["view"]["messages"][1]["parts"] == ["step-start", "text"]
    assert report["errors"] == []
    assert report["next"]["text"] == "Hello, world!"
    # It received the Python client's ai-cancel, x- headers and all.
    [cancel] = report["cancels"]
    assert (cancel["clientId"], cancel["headers"]["run-id"]) == (PY_CLIENT, run_id)
    assert cancel["headers"]["x-cancel-reason"] == "user_speaking"
    assert float(cancel["headers"]["x-cancel-sent-at"]) > 0
    # The Python client reads the reason and the requester back from the run's end.
    info = interop.python["cancelled-by-python"].result(10)
    assert (info.run_id, info.status) == (run_id, "cancelled")
    assert (info.cancel_reason, info.cancelled_by) == ("user_speaking", PY_CLIENT)
    ends = [(e["run-id"], e["run-reason"], e.get("x-cancel-reason"), e.get("x-cancel-by"))
            for _, e in interop.wire("cancelled-by-python", "ai-run-end")]
    assert ends == [(run_id, "cancelled", "user_speaking", PY_CLIENT),
                    (report["next"]["runId"], "complete", None, None)]
    first, _ = interop.agent_saw("cancelled-by-python")
    assert first["cancel_requests"] == [(PY_CLIENT, True)]


def test_use_chat_shows_a_run_a_python_client_cancelled_as_stopped_not_failed(interop) -> None:
    report = interop.report("chat-cancelled-by-python")

    assert report["chat"] == {"status": "ready", "error": None, "messages": [
        {"role": "user", "text": "a long one", "parts": ["text"]},
        {"role": "assistant", "text": "one two ", "parts": ["step-start", "text"]}]}
    assert run_info(report["view"], report["runId"])["status"] == "cancelled"
    assert report["errors"] == []
    info = interop.python["chat-cancelled-by-python"].result(10)
    assert (info.run_id, info.cancel_reason, info.cancelled_by) == (
        report["runId"], "user_speaking", PY_CLIENT)
