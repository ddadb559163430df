"""The agent endpoint: the invocation POST, background runs, sessions, and agent failures."""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any

import pytest

from langgraph_interrupt import ClientSession, InMemoryBroker, Run
from langgraph_interrupt.server import AgentRequest, create_agent_app, default_graph_config

from ..conftest import SESSION
from .conftest import PATH, ScriptedAgent, text_of


async def test_post_answers_at_once_then_the_agent_streams_in_the_background(
        serve, client: ClientSession) -> None:
    agent = ScriptedAgent(hold_at=1)
    served = await serve(agent)
    handle = await client.send("hi")

    response = await served.post(handle.invocation.to_json())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"runId", "invocationId"}
    started = await handle.wait_started(timeout=5)
    assert (started.run_id, started.invocation_id) == (body["runId"], body["invocationId"])
    await agent.held()  # the answer came back while the run streams
    assert not client.run(body["runId"]).ended
    agent.streams[0].release()
    ended = await handle.wait_ended(timeout=5)
    assert ended.status == "complete"
    assert text_of(client.messages) == "Hello, world"


async def test_extra_body_fields_and_headers_reach_the_agent(serve, client) -> None:
    agent = ScriptedAgent()
    served = await serve(agent)
    handle = await client.send("hi")

    response = await served.post({**handle.invocation.to_json(), "model": "small",
                                  "options": {"temperature": 0}},
                                 headers={"Authorization": "Bearer t0ken", "X-Trace": "abc"})

    assert response.status_code == 200
    await handle.wait_ended(timeout=5)
    request = agent.requests[0]
    assert request.invocation == handle.invocation
    assert dict(request.extra) == {"model": "small", "options": {"temperature": 0}}
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["x-trace"] == "abc"
    assert request.session_name == SESSION


# -- bad input: a clear 4xx, and no run ------------------------------------------------------
VALID = {"inputEventId": "evt-1", "sessionName": SESSION}
BAD_BODIES = [
    pytest.param(b'{"inputEventId": "e1", "sessionName":', 400, "malformed JSON", id="malformed"),
    pytest.param(b"", 400, "empty body", id="empty"),
    pytest.param(b"\xff\xfe{}", 400, "malformed JSON", id="not-utf8"),
    pytest.param(b'["e1", "ai:x"]', 400, "expected a JSON object", id="array"),
    pytest.param(b'"just a string"', 400, "expected a JSON object", id="string"),
    pytest.param(b'{"sessionName": "ai:test-session"}', 400, "inputEventId: Field required",
                 id="missing-input-event-id"),
    pytest.param(b'{"inputEventId": "e1"}', 400, "sessionName: Field required",
                 id="missing-session-name"),
    pytest.param(b'{"inputEventId": "e1", "sessionName": 7}', 400, "sessionName:",
                 id="wrong-type"),
    pytest.param(b'{"inputEventId": "", "sessionName": "ai:test-session"}', 400,
                 "inputEventId:", id="empty-id"),
    pytest.param(b"[" * 30000 + b"]" * 30000, 400, "JSON nested too deeply", id="deep"),
]


@pytest.mark.parametrize(("raw", "status", "phrase"), BAD_BODIES)
async def test_bad_bodies_get_a_clear_400_and_start_no_run(serve, broker: InMemoryBroker,
                                                           raw, status, phrase) -> None:
    agent = ScriptedAgent()
    served = await serve(agent)

    response = await served.http.post(PATH, content=raw,
                                      headers={"content-type": "application/json"})

    assert response.status_code == status
    error = response.json()["error"]
    assert phrase in error["message"]
    assert error["code"] == 40000 and error["statusCode"] == status
    assert_no_run(served, agent, broker)


def assert_no_run(served, agent: ScriptedAgent, broker: InMemoryBroker) -> None:
    assert agent.requests == []
    assert served.endpoint.tasks == set()
    assert served.endpoint.sessions.sessions == {}
    assert not [r for r in broker.records or [] if r.name and r.name.startswith("ai-run")]


@pytest.mark.parametrize(("content_type", "shown"), [
    pytest.param("text/plain", "text/plain", id="text"),
    pytest.param("application/x-www-form-urlencoded", "application/x-www-form-urlencoded",
                 id="form"),
    pytest.param(None, "none", id="missing"),
])
async def test_a_body_that_is_not_json_gets_415(serve, broker, content_type, shown) -> None:
    agent = ScriptedAgent()
    served = await serve(agent)
    headers = {} if content_type is None else {"content-type": content_type}

    response = await served.http.post(PATH, content=b'{"inputEventId": "e1", '
                                      b'"sessionName": "ai:test-session"}', headers=headers)

    assert response.status_code == 415
    assert f"must be application/json, got content type {shown}" in (
        response.json()["error"]["message"])
    assert_no_run(served, agent, broker)


async def test_json_with_a_charset_or_a_json_suffix_is_accepted(serve, client) -> None:
    served = await serve(ScriptedAgent())
    for content_type in ("application/json; charset=utf-8", "application/vnd.chat+json"):
        handle = await client.send("hi")
        response = await served.http.post(PATH, content=handle.invocation.model_dump_json(
            by_alias=True), headers={"content-type": content_type})
        assert response.status_code == 200, response.text
        assert (await handle.wait_ended(timeout=5)).status == "complete"


async def test_an_oversized_body_gets_413_without_being_read_in_full(serve, broker) -> None:
    agent = ScriptedAgent()
    served = await serve(agent, max_body_bytes=1024)
    big = {**VALID, "padding": "x" * 2000}

    declared = await served.post(big)  # httpx sends a Content-Length
    read = bytearray()

    async def chunked():  # no Content-Length: the endpoint must stop at the limit
        for _ in range(1000):
            read.extend(b" " * 512)
            yield b" " * 512

    streamed = await served.http.post(PATH, content=chunked(),
                                      headers={"content-type": "application/json"})

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["message"] == (
            "unable to read invocation; the body exceeds 1024 bytes")
    assert len(read) < 100 * 512
    assert_no_run(served, agent, broker)


async def test_an_unknown_session_gets_404_and_opens_no_channel(serve, broker) -> None:
    opened: list[str] = []

    def factory(name: str):
        opened.append(name)
        return broker.channel(name, client_id="agent")

    agent = ScriptedAgent()
    served = await serve(agent, channel_factory=factory, allow_session={"ai:known"})

    response = await served.post({"inputEventId": "e1", "sessionName": "ai:stranger"})

    assert response.status_code == 404
    assert response.json()["error"]["message"] == (
        "unable to start run; unknown session 'ai:stranger'")
    assert opened == []
    assert_no_run(served, agent, broker)


async def test_an_async_session_predicate_decides_and_known_sessions_are_served(
        serve, client, broker) -> None:
    asked: list[str] = []

    async def allow(name: str) -> bool:
        asked.append(name)
        return name.startswith("ai:test")

    served = await serve(ScriptedAgent(), allow_session=allow)
    refused = await served.post({"inputEventId": "e1", "sessionName": "other:room"})
    handle = await client.send("hi")
    accepted = await served.post(handle.invocation.to_json())

    assert (refused.status_code, accepted.status_code) == (404, 200)
    assert asked == ["other:room", SESSION]
    assert (await handle.wait_ended(timeout=5)).status == "complete"


async def test_other_methods_and_paths_get_json_errors(serve) -> None:
    served = await serve(ScriptedAgent())

    get = await served.http.get(PATH)
    missing = await served.http.post("/nope", json=VALID)

    assert get.status_code == 405
    assert get.json()["error"]["statusCode"] == 405
    assert missing.status_code == 404
    assert "Not Found" in missing.json()["error"]["message"]


# -- sessions ----------------------------------------------------------------------------------
async def test_a_session_is_opened_once_and_reused_by_concurrent_requests(serve, broker) -> None:
    opened: list[str] = []
    opening, release = asyncio.Event(), asyncio.Event()

    async def factory(name: str):
        opened.append(name)
        opening.set()
        await release.wait()  # every request arrives while the channel is being opened
        return broker.channel(name, client_id="agent")

    served = await serve(ScriptedAgent(), channel_factory=factory)
    clients = [ClientSession(broker.channel(SESSION, client_id=f"user-{i}")) for i in range(3)]
    for c in clients:
        await c.connect()
    handles = [await c.send(f"hi {i}") for i, c in enumerate(clients)]

    posts = [asyncio.create_task(served.post(h.invocation.to_json())) for h in handles]
    await opening.wait()
    release.set()
    responses = await asyncio.gather(*posts)

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert opened == [SESSION]
    for handle in handles:
        assert (await handle.wait_ended(timeout=5)).status == "complete"
    for c in clients:
        await c.close()


async def test_a_channel_that_cannot_be_opened_gets_503_and_is_retried_next_time(
        serve, client, broker) -> None:
    failures = [RuntimeError("ably is down")]

    def factory(name: str):
        if failures:
            raise failures.pop()
        return broker.channel(name, client_id="agent")

    served = await serve(ScriptedAgent(), channel_factory=factory)
    handle = await client.send("hi")

    first = await served.post(handle.invocation.to_json())
    second = await served.post(handle.invocation.to_json())

    assert first.status_code == 503
    assert first.json()["error"]["message"] == (
        "unable to open session 'ai:test-session'; ably is down")
    assert second.status_code == 200
    assert (await handle.wait_ended(timeout=5)).status == "complete"


# -- cancel while starting -------------------------------------------------------------------------
async def test_a_cancel_sent_before_the_post_is_honoured_by_a_new_session(
        serve, client, broker) -> None:
    agent = ScriptedAgent()
    served = await serve(agent)
    handle = await client.send("hi")
    await handle.cancel()  # the Stop button, before the agent's session even exists

    response = await served.post(handle.invocation.to_json())

    assert response.status_code == 200
    ended = await handle.wait_ended(timeout=5)
    assert ended.status == "cancelled"
    await served.agents_done()
    assert agent.streams[0].sent == 0
    assert [r.reason for r in agent.results] == ["cancelled"]


async def test_a_cancel_arriving_while_the_run_is_starting_is_honoured(
        serve, client, broker) -> None:
    gate = asyncio.Event()
    agent = ScriptedAgent()
    served = await serve(agent)
    warm = await client.send("warm up")  # opens the session: the next cancel arrives live
    await served.post(warm.invocation.to_json())
    await warm.wait_ended(timeout=5)
    agent.gate = gate
    handle = await client.send("hi")

    response = await served.post(handle.invocation.to_json())
    assert response.status_code == 200
    await agent_called_twice(agent)
    seen = asyncio.Event()
    session = served.endpoint.sessions.sessions[SESSION]
    session.channel.subscribe(lambda m: seen.set() if m.name == "ai-cancel" else None)
    await handle.cancel()  # the run exists but has not started: the session buffers it
    await seen.wait()
    gate.set()

    ended = await handle.wait_ended(timeout=5)
    assert ended.status == "cancelled"
    assert agent.streams[1].sent == 0


async def agent_called_twice(agent: ScriptedAgent) -> None:
    while len(agent.requests) < 2:
        agent.called.clear()
        await agent.called.wait()


# -- agent failures ------------------------------------------------------------------------------
async def test_an_agent_that_raises_ends_its_run_error_and_the_app_keeps_serving(
        serve, client) -> None:
    async def broken(run: Run, request: AgentRequest) -> None:
        await run.start()
        raise LookupError("the tool registry is empty")

    served = await serve(broken)
    handle = await client.send("hi")

    response = await served.post(handle.invocation.to_json())

    assert response.status_code == 200
    ended = await handle.wait_ended(timeout=5)
    assert (ended.status, ended.error_code) == ("error", 104008)
    assert ended.error_message == "unable to complete run; the tool registry is empty"
    again = await client.send("again")
    assert (await served.post(again.invocation.to_json())).status_code == 200
    assert (await again.wait_ended(timeout=5)).status == "error"


async def test_an_agent_that_raises_before_starting_still_ends_the_run_error(
        serve, client) -> None:
    async def broken(run: Run, request: AgentRequest) -> None:
        raise ValueError("no model configured")

    served = await serve(broken)
    handle = await client.send("hi")
    await served.post(handle.invocation.to_json())

    ended = await handle.wait_ended(timeout=5)
    assert (ended.status, ended.error_code) == ("error", 104008)
    assert "no model configured" in ended.error_message


async def test_a_failing_source_ends_the_run_error_with_code_and_message(serve, client) -> None:
    served = await serve(ScriptedAgent(fail_at=1))
    handle = await client.send("hi")
    await served.post(handle.invocation.to_json())

    ended = await handle.wait_ended(timeout=5)
    assert (ended.status, ended.error_code) == ("error", 104008)
    assert ended.error_message == "unable to complete run; model provider exploded (429)"


async def test_an_agent_that_returns_without_ending_its_run_has_it_ended(serve, client) -> None:
    async def forgetful(run: Run, request: AgentRequest) -> None:
        await run.start()
        await run.write({"type": "text-start", "id": "t"})
        await run.write({"type": "text-delta", "id": "t", "delta": "partial"})

    served = await serve(forgetful)
    handle = await client.send("hi")
    await served.post(handle.invocation.to_json())

    assert (await handle.wait_ended(timeout=5)).status == "complete"
    assert text_of(client.messages) == "partial"


async def test_an_agent_that_suspends_is_left_suspended(serve, client) -> None:
    async def asks(run: Run, request: AgentRequest) -> None:
        await run.start()
        await run.suspend()

    served = await serve(asks)
    handle = await client.send("hi")
    await served.post(handle.invocation.to_json())

    await client.wait_for(lambda c: handle.run and handle.run.status == "suspended", timeout=5)
    await served.endpoint.aclose()
    assert handle.run.status == "suspended"


# -- on_cancel ----------------------------------------------------------------------------------
async def test_an_on_cancel_hook_that_rejects_leaves_the_run_streaming(serve, client,
                                                                       broker) -> None:
    decided: list[tuple[str | None, bool]] = []
    decision = asyncio.Event()

    def owner_only(request) -> bool:
        verdict = request.client_id == request.run.run_client_id
        decided.append((request.client_id, verdict))
        decision.set()
        return verdict

    agent = ScriptedAgent(hold_at=1)
    served = await serve(agent, on_cancel=owner_only)
    intruder = ClientSession(broker.channel(SESSION, client_id="intruder"))
    await intruder.connect()
    handle = await client.send("hi")
    await served.post(handle.invocation.to_json())
    run_id = (await handle.wait_started(timeout=5)).run_id
    await agent.held()

    await intruder.cancel(run_id)
    await decision.wait()
    agent.streams[0].release()

    assert (await handle.wait_ended(timeout=5)).status == "complete"
    assert decided == [("intruder", False)]
    assert text_of(client.messages) == "Hello, world"
    await intruder.close()


# -- graphs ------------------------------------------------------------------------------------
class FakeGraph:
    """Quacks like a compiled LangGraph graph (not callable, has ``astream``)."""

    def astream(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("run_graph owns the graph; the endpoint never streams it")


async def test_a_graph_is_run_with_run_graph_config_and_cancel_mode(serve, client,
                                                                   monkeypatch) -> None:
    calls: list[dict[str, Any]] = []

    async def run_graph(graph, run, *, config, cancel_mode):
        calls.append({"graph": graph, "config": config, "cancel_mode": cancel_mode})
        async with run:
            await run.write({"type": "text-start", "id": "t"})
            await run.write({"type": "text-delta", "id": "t", "delta": "from the graph"})
            await run.write({"type": "text-end", "id": "t"})

    fake = types.ModuleType("langgraph_interrupt.integration")
    fake.run_graph = run_graph  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langgraph_interrupt.integration", fake)
    graph = FakeGraph()
    served = await serve(graph, cancel_mode="drain")
    handle = await client.send("hi")

    await served.post({**handle.invocation.to_json(), "model": "small",
                       "thread_id": "someone-else", "checkpoint_id": "x", "__pregel_x": 1})

    assert (await handle.wait_ended(timeout=5)).status == "complete"
    assert text_of(client.messages) == "from the graph"
    assert calls == [{"graph": graph, "cancel_mode": "drain", "config": {
        "configurable": {"model": "small", "thread_id": SESSION}}}]


def test_the_default_graph_config_keeps_the_session_as_the_thread() -> None:
    from langgraph_interrupt import Invocation

    request = AgentRequest(Invocation(inputEventId="e", sessionName="ai:s"),
                           {"thread_id": "t", "checkpoint_ns": "n", "user": "u"})
    assert default_graph_config(request) == {"configurable": {"user": "u", "thread_id": "ai:s"}}


def test_an_agent_that_is_neither_callable_nor_a_graph_is_refused(broker) -> None:
    from langgraph_interrupt import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"async callable .* or a compiled LangGraph"):
        create_agent_app(object(), channel_factory=broker.channel)


# -- known gap (transport) -------------------------------------------------------------------------
async def test_a_continuation_post_answers_with_the_run_it_resumes(serve, client) -> None:
    async def asks_then_answers(run: Run, request: AgentRequest) -> None:
        await run.start()
        assert run.trigger is not None
        if run.trigger.is_continuation:
            await run.end()
        else:
            await run.suspend()

    served = await serve(asks_then_answers)
    handle = await client.send("hi")
    first = (await served.post(handle.invocation.to_json())).json()
    await client.wait_for(lambda c: handle.run and handle.run.status == "suspended", timeout=5)
    more = await client.send("here is what you asked for", run_id=first["runId"])

    second = (await served.post(more.invocation.to_json())).json()

    assert (await client.wait_run_ended(first["runId"], timeout=5)).status == "complete"
    assert second["runId"] == first["runId"]
