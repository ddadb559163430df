"""The endpoint's multitask strategies: a second POST while a run of the session streams."""

from __future__ import annotations

import pytest

from langgraph_interrupt import ClientSession, InMemoryBroker

from .conftest import ScriptedAgent, text_of


async def test_reject_answers_409_with_the_json_error_and_ends_the_input_on_the_wire(
        serve, client: ClientSession) -> None:
    agent = ScriptedAgent(hold_at=1)
    served = await serve(agent, multitask="reject")
    first = await client.send("hi")
    assert (await served.post(first.invocation.to_json())).status_code == 200
    await agent.held()
    second = await client.send("hello?")
    response = await served.post(second.invocation.to_json())
    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["code"], error["statusCode"]) == (40900, 409)
    assert "already active" in error["message"]
    info = await second.wait_ended(timeout=5)
    assert (info.status, info.error_code, info.error_message) == (
        "error", 40900, error["message"])
    assert len(agent.runs) == 1, "the agent never saw the refused input"
    agent.streams[0].release()
    assert (await first.wait_ended(timeout=5)).status == "complete"


async def test_interrupt_over_http_cancels_the_streaming_run_and_answers_the_new_one(
        serve, client: ClientSession) -> None:
    agent = ScriptedAgent(hold_at=1)
    served = await serve(agent, multitask="interrupt")
    first = await client.send("tell me a story")
    await served.post(first.invocation.to_json())
    await agent.held()
    agent.hold_at = None  # the next run streams to its end
    second = await client.send("no, a poem")
    assert (await served.post(second.invocation.to_json())).status_code == 200
    ended = await first.wait_ended(timeout=5)
    assert (ended.status, ended.cancel_reason, ended.cancelled_by) == (
        "cancelled", "new_input", "user-abc")
    assert (await second.wait_ended(timeout=5)).status == "complete"
    assert text_of(client.messages) == "Hello, world"


async def test_enqueue_over_http_answers_at_once_and_runs_the_input_after(
        serve, client: ClientSession, broker: InMemoryBroker) -> None:
    agent = ScriptedAgent(hold_at=1)
    served = await serve(agent, multitask="enqueue")
    first = await client.send("one")
    await served.post(first.invocation.to_json())
    await agent.held()
    second = await client.send("two")
    response = await served.post(second.invocation.to_json())
    assert response.status_code == 200, "a queued input is accepted, not refused"
    assert second.run is None, "and does not start while the first run streams"
    agent.streams[0].release()
    assert (await first.wait_ended(timeout=5)).status == "complete"
    agent.streams[1].release()
    assert (await second.wait_ended(timeout=5)).status == "complete"


@pytest.mark.parametrize(("field", "shown"), [
    ("yolo", "unknown multitask strategy 'yolo'"),
    (["enqueue"], "unknown multitask strategy list"),
    ("reject", "does not allow the multitask strategy 'reject' per input"),
])
async def test_a_bad_or_disallowed_per_input_strategy_gets_400_and_starts_nothing(
        serve, client: ClientSession, field: object, shown: str) -> None:
    agent = ScriptedAgent()
    served = await serve(agent, multitask_overrides=["interrupt"])
    handle = await client.send("hi")
    response = await served.post({**handle.invocation.to_json(), "multitaskStrategy": field})
    assert response.status_code == 400
    assert shown in response.json()["error"]["message"]
    assert agent.runs == [] and handle.run is None


async def test_an_allowed_per_input_strategy_applies_to_that_input_only(
        serve, client: ClientSession) -> None:
    agent = ScriptedAgent(hold_at=1)
    served = await serve(agent, multitask="reject", multitask_overrides=["interrupt"])
    first = await client.send("one")
    await served.post(first.invocation.to_json())
    await agent.held()
    second = await client.send("stop that, do this")
    response = await served.post({**second.invocation.to_json(),
                                  "multitaskStrategy": "interrupt"})
    assert response.status_code == 200
    assert (await first.wait_ended(timeout=5)).status == "cancelled"
    assert "multitaskStrategy" not in agent.requests[1].extra, "consumed, not passed on"
    agent.streams[1].release()
    assert (await second.wait_ended(timeout=5)).status == "complete"


def test_bad_strategy_options_fail_when_the_app_is_built(broker: InMemoryBroker) -> None:
    from langgraph_interrupt import InvalidArgumentError
    from langgraph_interrupt.server import create_agent_app

    with pytest.raises(InvalidArgumentError, match="unknown multitask strategy 'fifo'"):
        create_agent_app(ScriptedAgent(), channel_factory=broker.channel, multitask="fifo")
