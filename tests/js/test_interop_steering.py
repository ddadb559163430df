"""Steering end to end with the official JS client and, as the reference, the official JS agent.

One broker serves two agents: the Python endpoint running ``steer_agent.py`` (a plain
``(run, request)`` agent, ``while run.has_input(): await run.pipe(answer)``) and the official
JS agent ``steer_agent.mjs`` (the same loop with ``run.hasInput()``, per-request sessions as
the SDK's README). The scenarios of ``scenarios_steering.mjs`` run once against each agent,
both Node processes at once; each steers with the official ``ClientRun.steer(...)`` and
reports the ``published`` and ``outcome`` promises as the SDK resolved them, the view, and
every message its connection received. Meanwhile a Python ``ClientSession`` steers a run of
the JS agent (:func:`python_steers_js`).

How the official client (``@ably/ai-transport`` 0.8) behaves, with either agent:

* A steer while the run streams, taken in by the next pass: ``outcome`` resolves
  ``{consumed: true, runTerminalReason: 'complete'}`` at ``ai-run-end``; ``published``
  resolves ``{serial}``, the steer's serial on the channel. While unanswered the steer sits
  at the tail of the run's messages; after the answer the view is ``[trigger, first answer,
  steer, answer to the steer]``, all in the run.
* A steer the agent held when the client's cancel arrived, or a steer published right after
  the cancel: ``{consumed: false, runTerminalReason: 'cancelled'}``. After the cancel, the
  Python agent's ``ai-run-end`` reaches the channel before the steer (it ends that fast), and
  the SDK then resolves ``published`` with ``{serial: undefined}`` although the steer is on
  the channel; the JS agent ends later and the steer gets its serial. A ``steer()`` once the
  client folded the run's end rejects both promises with ``ErrorInfo(40003, 400, "unable to
  steer; run <id> has already ended")`` and publishes nothing.
* A steer into a suspended run: ``outcome`` stays pending at the suspend and resolves
  ``{consumed: true, runTerminalReason: 'complete'}`` once the resume's first pass took it in.
  So does a steer the agent received while active but had not drained when it suspended,
  with both agents.
* Two clients (the run's sender, and a second clientId that answered its tool call and so
  holds a ``ClientRun`` for it: the SDK gives no other way to steer a run one did not send)
  steering one pass: both ``{consumed: true, runTerminalReason: 'complete'}``, one answer
  stamped ``["<first>","<second>"]`` in channel order.

The ``steer-codec-message-ids`` header (a compact JSON array string) is on every message
(creates and appends) of exactly the output message that answers, on the wire as received
and as stored, and nowhere else: not on the other outputs, steps or run lifecycle messages.
Both agents produce that, and store the same messages with the same header names in the same
order (ids aside) for the scenarios compared. The JS reference agent waits for a session's
``end()`` before the next session on that channel attaches (see ``steer_agent.mjs``).

Needs Node >= 22 and tests/js's pinned packages: ``bash scripts/setup_js.sh``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from ably import AblyRealtime

from langgraph_interrupt import ClientSession
from langgraph_interrupt._errors import InvalidArgumentError
from langgraph_interrupt._wire import ChannelMessage
from langgraph_interrupt.channels import AblyChannel

from ..ably_broker.helpers import node_binary
from .harness import JS_DIR, InteropServer, check_js_packages, report_of, run_scenarios
from .steer_agent import SteerAgent, took_in

SCENARIOS = ["steer-while-streaming", "steer-overtaken-by-cancel", "steer-after-cancel",
             "steer-into-suspended", "steer-pending-at-suspend", "two-clients-steer"]
AGENTS = ["python", "js"]
PY_CLIENT = "py-steerer"
ENDED = {"code": 40003, "statusCode": 400}
#: The headers of a steer as the official client publishes it (and this package's client).
STEER_HEADERS = {"role", "codec-message-id", "run-id", "run-client-id", "event-id", "stream",
                 "discrete"}


@dataclass
class Steering:
    server: InteropServer
    agent: SteerAgent
    reports: dict[str, dict[str, dict[str, Any]]]  # agent -> scenario -> report
    python: Future[dict[str, Any]]

    def report(self, agent: str, name: str) -> dict[str, Any]:
        return report_of(self.reports[agent], name)

    def channel(self, agent: str, name: str) -> str:
        return f"{self.server.prefix}{'-js' if agent == 'js' else ''}-{name}"

    def stored(self, agent: str, name: str) -> list[dict[str, Any]]:
        """The channel's messages as the broker stored them (aggregated), oldest first."""
        broker = self.server.broker
        assert broker is not None
        channel = self.channel(agent, name)
        stored: list[dict[str, Any]] = self.server.call(lambda: broker.history(channel))
        return stored

    def agent_saw(self, name: str) -> list[dict[str, Any]]:
        """What the Python agent recorded for the invocations of scenario ``name``."""
        channel = self.channel("python", name)

        def read() -> list[dict[str, Any]]:
            return [{"continuation": r.continuation, "passes": r.passes, "results": r.results,
                     "hints": [(h.codec_message_id, h.client_id) for h in r.hints],
                     "end_reason": r.run.end_reason} for r in self.agent.log.get(channel, [])]

        saw: list[dict[str, Any]] = self.server.call(read)
        return saw


def start_js_agent(server: InteropServer) -> tuple[subprocess.Popen[str], str]:
    """``node steer_agent.mjs`` on the server's broker; returns the process and its URL."""
    check_js_packages()
    proc = subprocess.Popen([node_binary(), str(JS_DIR / "steer_agent.mjs"),
                             json.dumps({"ably": server.js_options()})], cwd=JS_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("{"):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"the JS steer agent did not start: {err[-2000:]}")
    return proc, f"http://127.0.0.1:{json.loads(line)['port']}/api/chat"


@pytest.fixture(scope="module")
def steering() -> Iterator[Steering]:
    agent = SteerAgent()
    server = InteropServer(agent, routes=[agent.release_route],
                           session_options={"on_steer": agent.on_steer}).start()
    proc: subprocess.Popen[str] | None = None
    try:
        proc, js_url = start_js_agent(server)
        python = server.submit(lambda: python_steers_js(server, js_url))
        runs = {"python": {}, "js": {"agentUrl": js_url, "prefix": f"{server.prefix}-js"}}
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {name: pool.submit(run_scenarios, server, "scenarios_steering.mjs",
                                         SCENARIOS, **config) for name, config in runs.items()}
            reports = {name: future.result() for name, future in futures.items()}
        yield Steering(server, agent, reports, python)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        server.stop()


# -- a Python ClientSession steers the official JS agent ------------------------------------------
def raw(message: ChannelMessage) -> dict[str, Any]:
    """A received message as the Node scenarios record it (see ``tap`` there)."""
    ai = (message.extras or {}).get("ai") or {}
    transport = ai.get("transport") or {}
    return {"kind": (ai.get("codec") or {}).get("kind"), "name": message.name,
            "action": message.action, "serial": message.serial, "clientId": message.client_id,
            "codecMessageId": transport.get("codec-message-id"),
            "runId": transport.get("run-id"),
            "steerIds": transport.get("steer-codec-message-ids")}


async def python_steers_js(server: InteropServer, agent_url: str) -> dict[str, Any]:
    """This package's ClientSession sends to the official JS agent (which holds its first
    pass until a steer arrives), steers once two tokens showed, and reads the outcome; then
    steers the ended run. Returns what it saw."""
    assert server.broker is not None
    ably = AblyRealtime(**server.broker.python_client_options(client_id=PY_CLIENT))
    client = ClientSession(AblyChannel(ably, f"{server.prefix}-py-steers-js"))
    wire: list[dict[str, Any]] = []

    def answers(session: ClientSession) -> list[str]:
        return [texts(m) for m in session.messages if m["role"] == "assistant"]

    try:
        async with asyncio.timeout(20):  # reports a hang
            await client.connect()
            client.on_message(lambda m: wire.append(raw(m)))
            handle = await client.send("write a poem")
            async with httpx.AsyncClient() as http:
                response = await http.post(agent_url,
                                           json={**handle.invocation.to_json(), "holdFor": 1})
            run = await handle.wait_started()
            await client.wait_for(lambda s: answers(s) == ["one two "])
            steer = await client.steer(run.run_id, "make it rhyme")
            outcome = await steer.outcome()
            ended = await client.wait_run_ended(run.run_id)
            try:
                await client.steer(run.run_id, "too late")
                refused: int | None = None
            except InvalidArgumentError as exc:
                refused = exc.code
            return {"http": response.status_code, "run_id": run.run_id, "status": ended.status,
                    "steer_id": steer.codec_message_id, "consumed": steer.consumed,
                    "outcome": (outcome.consumed, outcome.run_end_reason), "refused": refused,
                    "answers": answers(client), "wire": wire}
    finally:
        await client.close()
        await ably.close()


# -- helpers ---------------------------------------------------------------------------------------
def texts(message: dict[str, Any]) -> str:
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


def roles_and_texts(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["text"]) for m in view["messages"]]


def noted(agent: str, *steers: tuple[str, str]) -> str:
    """How ``agent`` names the steers it took in: the Python agent with their client ids
    (it has them), the JS agent without (its SDK gives none)."""
    if agent == "python":
        return took_in(steers)
    return "Took in: " + "; ".join(text for text, _ in steers) + "."


def steers_of(wire: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The steers on the wire: user messages that carry the run's id (the trigger has none;
    a tool result for the run is not one)."""
    return [m for m in wire if m["name"] == "ai-input" and m["runId"] == run_id
            and m["kind"] == "user-message"]


def answer_id(view: dict[str, Any], text: str) -> str:
    [cmid] = [m["codecMessageId"] for m in view["messages"]
              if m["role"] == "assistant" and m["text"] == text]
    return str(cmid)


def assert_stamped_exactly(wire: list[dict[str, Any]], run_id: str, answer: str | None,
                           ids: list[str]) -> None:
    """The header is on every message (creates and appends) of output message ``answer``,
    as the compact JSON array of ``ids``, and on no other message; ``answer=None``: on
    none at all."""
    stamped = [(m["name"], m["action"], m["codecMessageId"]) for m in wire
               if m["steerIds"] is not None]
    if answer is None:
        assert stamped == []
        return
    answering = [m for m in wire if m["codecMessageId"] == answer]
    # ably-js names an append after its message; ably-python delivers it without a name.
    assert {(m["name"] or "ai-output", m["action"]) for m in answering} == {
        ("ai-output", "message.create"), ("ai-output", "message.append")}
    assert [m["steerIds"] for m in answering] == [json.dumps(ids, separators=(",", ":"))] * len(
        answering)
    assert {m["runId"] for m in answering} == {run_id}
    assert len(stamped) == len(answering)  # nothing else carries it


def assert_stored_stamps(stored: list[dict[str, Any]], answer: str | None,
                         ids: list[str]) -> None:
    """The same on the broker's aggregated copy (what history and late joiners read)."""
    for message in stored:
        transport = message["extras"]["ai"]["transport"]
        header = transport.get("steer-codec-message-ids")
        if transport.get("codec-message-id") == answer and message["name"] == "ai-output":
            assert header == json.dumps(ids, separators=(",", ":")), message
        else:
            assert header is None, message


# -- 1. a steer while the run streams -------------------------------------------------------------
@pytest.mark.parametrize("agent", AGENTS)
def test_a_steer_while_the_run_streams_is_taken_in_by_the_next_pass(steering, agent) -> None:
    report = steering.report(agent, "steer-while-streaming")
    run_id = report["runId"]

    assert report["steer"]["outcome"] == {"consumed": True, "runTerminalReason": "complete"}
    [steer] = steers_of(report["wire"], run_id)
    assert report["steer"]["published"] == {"serial": steer["serial"]}
    assert (steer["clientId"], steer["steerIds"]) == ("user-1", None)
    # While the agent held its first pass the steer was unanswered: last in the run, pending.
    assert report["pending"]["settled"] is False
    assert roles_and_texts(report["pending"]["view"]) == [
        ("user", "write a poem"), ("assistant", "one two "), ("user", "make it rhyme")]
    # Then the next pass answered it: the view keeps the channel's order.
    answer = noted(agent, ("make it rhyme", "user-1"))
    view = report["view"]
    assert roles_and_texts(view) == [
        ("user", "write a poem"), ("assistant", "one two three."), ("user", "make it rhyme"),
        ("assistant", answer)]
    assert {m["runId"] for m in view["messages"]} == {run_id}
    assert view["messages"][2]["codecMessageId"] == steer["codecMessageId"]
    assert view["messages"][3]["parts"] == ["step-start", "text"]
    assert [r["status"] for r in view["runs"]] == ["complete"]
    assert report["errors"] == []
    # The header: on every message of exactly the answer, live and stored.
    answering = answer_id(view, answer)
    assert_stamped_exactly(report["wire"], run_id, answering, [steer["codecMessageId"]])
    assert_stored_stamps(steering.stored(agent, "steer-while-streaming"), answering,
                         [steer["codecMessageId"]])


def test_the_python_agent_takes_the_steer_in_on_its_second_pass(steering) -> None:
    report = steering.report("python", "steer-while-streaming")
    [steer] = steers_of(report["wire"], report["runId"])

    [seen] = steering.agent_saw("steer-while-streaming")
    assert seen["hints"] == [(steer["codecMessageId"], "user-1")]  # on_steer, the channel's id
    assert seen["passes"] == [[], [steer["codecMessageId"]]]
    assert (seen["results"], seen["end_reason"]) == (["complete", "complete"], "complete")


@pytest.mark.parametrize("agent", AGENTS)
def test_a_steer_has_the_official_wire_headers_and_no_parent(steering, agent) -> None:
    report = steering.report(agent, "steer-while-streaming")
    stored = [m for m in steering.stored(agent, "steer-while-streaming")
              if m["name"] == "ai-input"]
    trigger, steer = (m["extras"]["ai"] for m in stored)

    assert set(steer["transport"]) == STEER_HEADERS  # no parent, no POST (one invocation)
    assert steer["transport"]["run-id"] == report["runId"]
    assert (steer["transport"]["role"], steer["transport"]["run-client-id"]) == ("user",
                                                                                 "user-1")
    assert (steer["transport"]["stream"], steer["transport"]["discrete"]) == ("false", "true")
    assert steer["transport"]["event-id"] != trigger["transport"]["event-id"]
    assert (steer["codec"]["kind"], steer["codec"]["partType"]) == ("user-message", "text")
    assert "run-id" not in trigger["transport"]
    assert report["http"]["body"]["runId"] == report["runId"]


@pytest.mark.parametrize("agent", AGENTS)
def test_a_steer_after_the_run_ended_is_refused_without_a_publish(steering, agent) -> None:
    for name in ("steer-while-streaming", "steer-after-cancel"):
        report = steering.report(agent, name)

        message = f"unable to steer; run {report['runId']} has already ended"
        assert report["after"] == {"published": {**ENDED, "message": message},
                                   "outcome": {**ENDED, "message": message}}
        assert len(steers_of(report["wire"], report["runId"])) == 1  # the earlier steer only
        inputs = [m for m in steering.stored(agent, name) if m["name"] == "ai-input"]
        assert len(inputs) == 2  # the trigger and that steer


# -- 2. cancel -------------------------------------------------------------------------------------
@pytest.mark.parametrize("agent", AGENTS)
def test_a_cancel_that_overtakes_a_held_steer_leaves_it_unconsumed(steering, agent) -> None:
    report = steering.report(agent, "steer-overtaken-by-cancel")
    run_id = report["runId"]

    assert report["steer"]["outcome"] == {"consumed": False, "runTerminalReason": "cancelled"}
    [steer] = steers_of(report["wire"], run_id)
    assert report["steer"]["published"] == {"serial": steer["serial"]}
    assert roles_and_texts(report["view"]) == [
        ("user", "write a poem"), ("assistant", "one two "), ("user", "make it rhyme")]
    assert [r["status"] for r in report["view"]["runs"]] == ["cancelled"]
    assert_stamped_exactly(report["wire"], run_id, None, [])
    names = [m["name"] for m in steering.stored(agent, "steer-overtaken-by-cancel")]
    assert names.index("ai-input", 1) < names.index("ai-cancel")  # the steer went first
    if agent == "python":
        [seen] = steering.agent_saw("steer-overtaken-by-cancel")
        assert seen["hints"] == [(steer["codecMessageId"], "user-1")]  # the agent had it...
        assert seen["passes"] == [[]]  # ...and has_input() was False once cancelled
        assert (seen["results"], seen["end_reason"]) == (["cancelled"], "cancelled")


@pytest.mark.parametrize("agent", AGENTS)
def test_a_steer_published_after_the_cancel_is_not_consumed(steering, agent) -> None:
    report = steering.report(agent, "steer-after-cancel")
    run_id = report["runId"]

    assert report["steer"]["outcome"] == {"consumed": False, "runTerminalReason": "cancelled"}
    [steer] = steers_of(report["wire"], run_id)
    # `published` has the serial, or none when the run's end came back before the echo.
    assert report["steer"]["published"] in ({"serial": steer["serial"]}, {})
    assert [r["status"] for r in report["view"]["runs"]] == ["cancelled"]
    assert_stamped_exactly(report["wire"], run_id, None, [])
    names = [m["name"] for m in steering.stored(agent, "steer-after-cancel")]
    assert names.index("ai-cancel") < names.index("ai-input", 1)
    if agent == "python":
        [seen] = steering.agent_saw("steer-after-cancel")
        assert (seen["passes"], seen["end_reason"]) == ([[]], "cancelled")


# -- 3. suspended runs -----------------------------------------------------------------------------
@pytest.mark.parametrize("agent", AGENTS)
def test_a_steer_into_a_suspended_run_is_taken_in_by_the_resumes_first_pass(steering,
                                                                            agent) -> None:
    report = steering.report(agent, "steer-into-suspended")
    run_id = report["runId"]
    [steer] = steers_of(report["wire"], run_id)

    # At the suspend the outcome stays pending; the steer follows the tool call.
    assert report["atSuspend"]["settled"] is False
    assert [r["status"] for r in report["atSuspend"]["view"]["runs"]] == ["suspended"]
    assert roles_and_texts(report["atSuspend"]["view"]) == [
        ("user", "where am I?"), ("assistant", ""), ("user", "and the weather?")]
    assert report["steer"]["published"] == {"serial": steer["serial"]}
    assert report["steer"]["outcome"] == {"consumed": True, "runTerminalReason": "complete"}
    if agent == "python":  # the JS agent answers a continuation with a provisional id
        assert report["http"]["body"]["runId"] == run_id
    assert (report["tool"]["state"], report["tool"]["output"]) == ("output-available",
                                                                   {"city": "Paris"})
    answer = "You are in Paris. " + noted(agent, ("and the weather?", "user-1"))
    assert roles_and_texts(report["view"]) == [
        ("user", "where am I?"), ("assistant", ""), ("user", "and the weather?"),
        ("assistant", answer)]
    assert [r["status"] for r in report["view"]["runs"]] == ["complete"]
    answering = answer_id(report["view"], answer)
    assert_stamped_exactly(report["wire"], run_id, answering, [steer["codecMessageId"]])
    assert_stored_stamps(steering.stored(agent, "steer-into-suspended"), answering,
                         [steer["codecMessageId"]])
    lifecycle = [m["name"] for m in report["wire"] if m["name"] in (
        "ai-run-suspend", "ai-run-resume", "ai-run-end") or m is steer]
    assert lifecycle == ["ai-run-suspend", "ai-input", "ai-run-resume", "ai-run-end"]
    if agent == "python":
        first, resumed = steering.agent_saw("steer-into-suspended")
        assert (first["continuation"], first["passes"], first["hints"]) == (False, [[]], [])
        assert resumed["continuation"] is True
        assert resumed["hints"] == [(steer["codecMessageId"], "user-1")]  # kept, then seeded
        assert resumed["passes"] == [[steer["codecMessageId"]]]  # the first pass took it in
        assert resumed["end_reason"] == "complete"


@pytest.mark.parametrize("agent", ["python", "js"])
def test_a_steer_pending_at_a_suspend_is_answered_by_the_resume(steering, agent) -> None:
    """The agent got the steer while it streamed the tool call, then suspended without
    asking has_input() again: the client keeps the outcome pending at the suspend, and the
    resume takes the steer in (the session keeps a suspended run's unanswered steers)."""
    report = steering.report(agent, "steer-pending-at-suspend")
    run_id = report["runId"]
    [steer] = steers_of(report["wire"], run_id)

    assert report["atSuspend"]["settled"] is False
    assert [r["status"] for r in report["atSuspend"]["view"]["runs"]] == ["suspended"]
    assert report["steer"]["outcome"] == {"consumed": True, "runTerminalReason": "complete"}
    answer = "You are in Paris. " + noted(agent, ("and the weather?", "user-1"))
    assert roles_and_texts(report["view"])[-1] == ("assistant", answer)
    assert_stamped_exactly(report["wire"], run_id, answer_id(report["view"], answer),
                           [steer["codecMessageId"]])


def test_the_python_agent_had_the_steer_pending_at_the_suspend(steering) -> None:
    """The steer came while the run was active and was still pending when it suspended;
    the resume's first pass takes it in."""
    report = steering.report("python", "steer-pending-at-suspend")
    [steer] = steers_of(report["wire"], report["runId"])

    first, resumed = steering.agent_saw("steer-pending-at-suspend")
    assert first["hints"] == [(steer["codecMessageId"], "user-1")]  # received while active
    assert (first["passes"], first["results"]) == ([[]], ["complete"])  # then suspended
    assert resumed["continuation"] is True
    assert resumed["passes"] == [[steer["codecMessageId"]]]


# -- 4. two clients --------------------------------------------------------------------------------
@pytest.mark.parametrize("agent", AGENTS)
def test_two_clients_steering_one_run_are_both_consumed(steering, agent) -> None:
    report = steering.report(agent, "two-clients-steer")
    run_id = report["runId"]
    first, second = steers_of(report["wire"], run_id)
    by_client = {first["clientId"]: first, second["clientId"]: second}

    assert report["continuationRunId"] == run_id  # user-2's handle is for the same run
    for side, client in (("a", "user-1"), ("b", "user-2")):
        result = report[side]["steer"]
        assert result["outcome"] == {"consumed": True, "runTerminalReason": "complete"}
        assert result["published"] == {"serial": by_client[client]["serial"]}
        assert report[side]["errors"] == []
    texts_by_client = {"user-1": "say it in French", "user-2": "and add the weather"}
    answer = noted(agent, *((texts_by_client[m["clientId"]], m["clientId"])
                            for m in (first, second)))
    expected = [("user", "where am I?"), ("assistant", ""), ("assistant", "You are in Paris."),
                *(("user", texts_by_client[m["clientId"]]) for m in (first, second)),
                ("assistant", answer)]
    for side in ("a", "b"):  # both clients' views agree
        assert roles_and_texts(report[side]["view"]) == expected
        assert [r["status"] for r in report[side]["view"]["runs"]] == ["complete"]
    ids = [first["codecMessageId"], second["codecMessageId"]]  # in channel order
    answering = answer_id(report["a"]["view"], answer)
    assert_stamped_exactly(report["wire"], run_id, answering, ids)
    assert_stored_stamps(steering.stored(agent, "two-clients-steer"), answering, ids)
    if agent == "python":
        _, resumed = steering.agent_saw("two-clients-steer")
        assert resumed["hints"] == [(m["codecMessageId"], m["clientId"]) for m in (first,
                                                                                   second)]
        assert resumed["passes"] == [[], ids]


# -- the two agents agree --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["steer-while-streaming", "steer-into-suspended",
                                  "two-clients-steer"])
def test_the_python_agents_wire_matches_the_official_agents(steering, name) -> None:
    """Stored messages, by name and transport header set, with ids replaced by the order
    they first appear in: the same sequence from both agents (apart from who published)."""
    def shape(agent: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
        labels: dict[str, str] = {}

        def label(value: str) -> str:
            return labels.setdefault(value, f"#{len(labels)}")

        rows = []
        for message in steering.stored(agent, name):
            transport = message["extras"]["ai"]["transport"]
            ids = tuple(label(transport[k]) for k in ("codec-message-id", "run-id")
                        if k in transport)
            stamp = transport.get("steer-codec-message-ids")
            stamped = tuple(label(i) for i in json.loads(stamp)) if stamp else ()
            rows.append((message["name"], tuple(sorted(transport)), ids + stamped))
        return rows

    assert shape("python") == shape("js")


# -- 5. this package's client steers the official JS agent ----------------------------------------
def test_a_python_client_steers_the_official_js_agent(steering) -> None:
    seen = steering.python.result(30)
    run_id, steer_id = seen["run_id"], seen["steer_id"]

    assert seen["http"] == 200
    assert seen["status"] == "complete"
    assert seen["outcome"] == (True, "complete")  # SteerHandle.outcome() read the JS stamps
    assert seen["consumed"] is True
    assert seen["refused"] == 40003  # steer() on the ended run
    assert seen["answers"] == ["one two three.", "Took in: make it rhyme."]
    [steer] = steers_of(seen["wire"], run_id)
    assert (steer["codecMessageId"], steer["clientId"]) == (steer_id, PY_CLIENT)
    answering = next(m["codecMessageId"] for m in seen["wire"]
                     if m["name"] == "ai-output" and m["steerIds"] is not None)
    assert_stamped_exactly(seen["wire"], run_id, answering, [steer_id])
    broker = steering.server.broker
    stored = steering.server.call(lambda: broker.history(f"{steering.server.prefix}-py-steers-js"))
    [_, published] = [m["extras"]["ai"]["transport"] for m in stored if m["name"] == "ai-input"]
    assert set(published) == STEER_HEADERS  # this package's steer, as the official client's
    assert published["run-client-id"] == PY_CLIENT
    assert_stored_stamps(stored, answering, [steer_id])
