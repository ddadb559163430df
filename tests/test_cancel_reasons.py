"""Interruption reasons: from the client's ``ai-cancel`` to ``on_cancel``, the run's signal,
``PipeResult`` and the run's ``ai-run-end``, and back to every client."""

from __future__ import annotations

import asyncio
import logging

import pytest

from langgraph_interrupt import (
    AgentSession,
    CancelReason,
    CancelRequest,
    ClientSession,
    InMemoryBroker,
    OutboundMessage,
)
from langgraph_interrupt._cancel import build_cancel
from langgraph_interrupt._wire import make_extras
from tests.conftest import SESSION
from tests.helpers import run_records, start_streaming, transport


def _run_end(broker: InMemoryBroker, run_id: str) -> dict[str, str]:
    ends = [r for r in run_records(broker, run_id) if r.name == "ai-run-end"]
    assert len(ends) == 1
    return transport(ends[0])


async def test_a_client_reason_reaches_the_run_its_run_end_and_every_client(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    other = ClientSession(broker.channel(SESSION, client_id="other-device"))
    await other.connect()
    run, _, task = await start_streaming(client, agent)
    await client.cancel(run.run_id, reason="user_speaking")
    result = await task
    assert result.reason == "cancelled"
    assert result.cancel_reason == CancelReason("client", requester="user-abc",
                                                name="user_speaking")
    assert str(result.cancel_reason) == "cancelled by client (user-abc): user_speaking"
    end = _run_end(broker, run.run_id)
    assert end["x-cancel-reason"] == "user_speaking" and end["x-cancel-by"] == "user-abc"
    for session in (client, other):
        info = await session.wait_run_ended(run.run_id, timeout=2)
        assert (info.status, info.cancel_reason, info.cancelled_by) == (
            "cancelled", "user_speaking", "user-abc")
    await other.close()


async def test_a_cancel_without_a_reason_is_client_request(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, _, task = await start_streaming(client, agent)
    await client.cancel(run.run_id)
    result = await task
    assert result.cancel_reason is not None and result.cancel_reason.name == "client_request"
    assert _run_end(broker, run.run_id)["x-cancel-reason"] == "client_request"
    cancels = [r for r in broker.records or [] if r.name == "ai-cancel"]
    assert "x-cancel-reason" not in transport(cancels[0]), "nothing extra without a reason"


async def test_application_code_that_cancels_without_a_reason_is_interrupted(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, _, task = await start_streaming(client, agent)
    run.cancel()
    result = await task
    assert result.cancel_reason == CancelReason("user", name="interrupted")
    end = _run_end(broker, run.run_id)
    assert end["x-cancel-reason"] == "interrupted" and "x-cancel-by" not in end
    assert (await client.wait_run_ended(run.run_id, timeout=2)).cancel_reason == "interrupted"


async def test_the_first_reason_wins(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, _, task = await start_streaming(client, agent)
    run.cancel(CancelReason("timeout"))
    await client.cancel(run.run_id, reason="user_speaking")
    result = await task
    assert result.cancel_reason == CancelReason("timeout")
    assert _run_end(broker, run.run_id)["x-cancel-reason"] == "timeout"


async def test_on_cancel_sees_the_reason_and_a_refused_cancel_changes_nothing(
        broker: InMemoryBroker, client: ClientSession) -> None:
    seen: list[CancelRequest] = []
    decided = asyncio.Event()

    def owner_only(request: CancelRequest) -> bool:
        seen.append(request)
        decided.set()
        return request.client_id == request.run.run_client_id

    agent = AgentSession(broker.channel(SESSION, client_id="agent"), on_cancel=owner_only)
    await agent.connect()
    run, stream, task = await start_streaming(client, agent)
    intruder = ClientSession(broker.channel(SESSION, client_id="mallory"))
    await intruder.connect()
    await intruder.cancel(run.run_id, reason="priority_message")
    await decided.wait()
    assert (seen[0].client_id, seen[0].reason) == ("mallory", "priority_message")
    stream.release()
    result = await task
    assert result.reason == "complete" and result.cancel_reason is None
    assert "x-cancel-reason" not in _run_end(broker, run.run_id)
    await intruder.close()
    await agent.close()


@pytest.mark.parametrize("reason", ["x" * 65, "two\nlines", "\x1b[31mred"])
async def test_a_hostile_reason_is_ignored_and_logged_once_but_the_stop_still_works(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession,
        caplog: pytest.LogCaptureFixture, reason: str) -> None:
    run, _, task = await start_streaming(client, agent)
    cancel = build_cancel(run_id=run.run_id)
    headers = dict(cancel.extras["ai"]["transport"])  # type: ignore[index]
    headers["x-cancel-reason"] = reason
    with caplog.at_level(logging.WARNING, logger="langgraph_interrupt.transport"):
        await client.channel.publish([OutboundMessage(cancel.name, None, make_extras(headers),
                                                      cancel.id)])
        result = await task
    assert result.cancel_reason is not None and result.cancel_reason.name == "client_request"
    assert _run_end(broker, run.run_id)["x-cancel-reason"] == "client_request"
    warnings = [r for r in caplog.records if "ignoring a reason" in r.getMessage()]
    assert len(warnings) == 1
    assert reason not in warnings[0].getMessage(), "the hostile text itself is not logged"


async def test_a_reason_that_is_not_a_string_makes_the_message_malformed(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, _, task = await start_streaming(client, agent)
    cancel = build_cancel(run_id=run.run_id)
    headers: dict[str, object] = dict(cancel.extras["ai"]["transport"])  # type: ignore[index]
    headers["x-cancel-reason"] = {"nested": ["object"]}
    await client.channel.publish([OutboundMessage(
        cancel.name, None, {"ai": {"transport": headers}}, cancel.id)])
    await client.wait_for(lambda c: any(m.name == "ai-cancel" for m in c.received))
    await client.cancel(run.run_id, reason="user_clicked_stop")  # only this one counts
    result = await task
    assert result.cancel_reason is not None
    assert result.cancel_reason.name == "user_clicked_stop", "the malformed cancel was applied"


def test_reason_names_are_bounded_and_printable() -> None:
    assert CancelReason("client").name == "client_request"
    assert CancelReason("shutdown").name == "shutdown"
    assert CancelReason("input").name == "new_input"
    assert str(CancelReason("client", "stop pressed")) == "cancelled by client: stop pressed"
    for bad in ("x" * 65, "a\tb", "\u2028"):
        with pytest.raises(ValueError):
            CancelReason("user", name=bad)
        with pytest.raises(ValueError):
            build_cancel(run_id="r", reason=bad)


async def test_refused_cancels_are_logged_once_per_requester_whatever_they_say(
        broker: InMemoryBroker, client: ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"),
                         on_cancel=lambda request: request.client_id == "user-abc")
    await agent.connect()
    run, stream, task = await start_streaming(client, agent)
    intruder = ClientSession(broker.channel(SESSION, client_id="mallory"))
    await intruder.connect()
    with caplog.at_level(logging.INFO, logger="langgraph_interrupt.transport"):
        for reason in ("user_speaking", "timeout", "priority_message") * 10:
            await intruder.cancel(run.run_id, reason=reason)
        await client.cancel(run.run_id, reason="user_clicked_stop")  # the owner: applies
        result = await task
    refused = [r.getMessage() for r in caplog.records if "refused a cancel" in r.getMessage()]
    assert refused == [f"run {run.run_id}: on_cancel refused a cancel from 'mallory' "
                       "(reason 'user_speaking')"]
    assert result.cancel_reason is not None
    assert (result.cancel_reason.requester, result.cancel_reason.name) == (
        "user-abc", "user_clicked_stop"), "the refused reasons changed nothing"
    stream.release()
    await intruder.close()
    await agent.close()
