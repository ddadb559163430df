"""Python client parity with the JS hooks: active runs by client id, cancel by filter, and
what the client measured of the cancels it asked for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    ClientSession,
    InMemoryBroker,
    InvalidArgumentError,
    OutboundMessage,
    PipeResult,
    Run,
)
from langgraph_interrupt.testing import ScriptedStream
from tests.conftest import SESSION
from tests.helpers import TOKENS, start_streaming, transport


@pytest.fixture
async def second(broker: InMemoryBroker) -> AsyncIterator[ClientSession]:
    """Another user on the same session channel."""
    session = ClientSession(broker.channel(SESSION, client_id="user-two"))
    await session.connect()
    yield session
    await session.close()


Started = tuple[Run, ScriptedStream, "asyncio.Task[PipeResult]"]


async def _seen_active(session: ClientSession, runs: Sequence[Started]) -> None:
    """Wait until ``session`` has folded every run's start."""
    ids = {run.run_id for run, _, _ in runs}
    await session.wait_for(lambda s: ids <= {r.run_id for r in s.runs if r.status == "active"},
                           timeout=2)


def _publishes(session: ClientSession) -> list[list[OutboundMessage]]:
    """Record every batch ``session`` publishes (the real channel still publishes it)."""
    batches: list[list[OutboundMessage]] = []
    publish = session.channel.publish

    async def recording(messages: Sequence[OutboundMessage]) -> list[str]:
        batches.append(list(messages))
        return await publish(messages)

    session.channel.publish = recording  # type: ignore[method-assign]
    return batches


async def test_active_runs_are_keyed_by_the_client_each_run_answers(
        broker: InMemoryBroker, client: ClientSession, second: ClientSession,
        agent: AgentSession) -> None:
    mine = [await start_streaming(client, agent), await start_streaming(client, agent)]
    theirs = await start_streaming(second, agent)
    observer = ClientSession(broker.channel(SESSION, client_id="observer"))
    await observer.connect()  # a late joiner: the runs come from history
    for session in (client, second, observer):
        await _seen_active(session, [*mine, theirs])
        assert session.active_runs() == {
            "user-abc": {mine[0][0].run_id, mine[1][0].run_id},
            "user-two": {theirs[0].run_id}}
    mine[0][1].release()
    await mine[0][2]
    await observer.wait_run_ended(mine[0][0].run_id, timeout=2)
    assert observer.active_runs() == {"user-abc": {mine[1][0].run_id},
                                      "user-two": {theirs[0].run_id}}
    for run, stream, task in (mine[1], theirs):
        stream.release()
        await task
        await observer.wait_run_ended(run.run_id, timeout=2)
    assert observer.active_runs() == {}, "a client with no active run leaves the map"
    await observer.close()


async def test_a_suspended_run_counts_only_with_include_suspended(
        client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("where am I?")
    run = agent.create_run(handle.invocation)
    await run.start()
    await run.pipe([
        {"type": "start"},
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "where", "input": {}},
        {"type": "finish", "finishReason": "tool-calls"}])
    await client.wait_for(lambda c: c.active_runs() == {"user-abc": {run.run_id}}, timeout=2)
    await run.suspend()
    await client.wait_for(lambda c: c.active_runs(include_suspended=True) and not c.active_runs(),
                          timeout=2)
    assert client.active_runs() == {}
    assert client.active_runs(include_suspended=True) == {"user-abc": {run.run_id}}
    assert await client.cancel_runs(all=True) == [], "agents ignore a suspended run's cancel"


async def test_cancel_runs_all_cancels_every_active_run_in_one_publish(
        broker: InMemoryBroker, client: ClientSession, second: ClientSession,
        agent: AgentSession) -> None:
    started = [await start_streaming(client, agent), await start_streaming(second, agent)]
    await _seen_active(client, started)
    batches = _publishes(client)
    asked = await client.cancel_runs(all=True, reason="user_speaking")
    assert asked == [run.run_id for run, _, _ in started]
    assert len(batches) == 1 and len(batches[0]) == 2
    for run, _, task in started:
        assert (await task).reason == "cancelled"
        info = await client.wait_run_ended(run.run_id, timeout=2)
        assert (info.status, info.cancel_reason, info.cancelled_by) == (
            "cancelled", "user_speaking", "user-abc")
    cancels = [transport(r) for r in broker.records or [] if r.name == "ai-cancel"]
    assert {c["run-id"] for c in cancels} == set(asked)
    assert len({c["x-cancel-sent-at"] for c in cancels}) == 1, "one send time for the batch"


@pytest.mark.parametrize(("selector", "cancelled"), [
    ({"own": True}, "user-abc"),
    ({"client_id": "user-two"}, "user-two"),
    ({"where": lambda run: run.client_id == "user-two"}, "user-two"),
])
async def test_cancel_runs_by_owner_leaves_the_other_users_runs_running(
        client: ClientSession, second: ClientSession, agent: AgentSession,
        selector: dict[str, Any], cancelled: str) -> None:
    started = {"user-abc": await start_streaming(client, agent),
               "user-two": await start_streaming(second, agent)}
    await _seen_active(client, list(started.values()))
    asked = await client.cancel_runs(**selector)
    assert asked == [started[cancelled][0].run_id]
    assert (await started[cancelled][2]).reason == "cancelled"
    kept = started["user-two" if cancelled == "user-abc" else "user-abc"]
    kept[1].release()
    assert (await kept[2]).reason == "complete"


async def test_cancel_runs_with_nothing_active_publishes_nothing(
        broker: InMemoryBroker, client: ClientSession, second: ClientSession,
        agent: AgentSession) -> None:
    started = run, stream, task = await start_streaming(second, agent)
    await _seen_active(client, [started])
    assert await client.cancel_runs(own=True) == []
    assert await client.cancel_runs(client_id="nobody") == []
    stream.release()
    await task
    await client.wait_run_ended(run.run_id, timeout=2)
    assert await client.cancel_runs(all=True) == [], "an ended run is not active"
    assert not [r for r in broker.records or [] if r.name == "ai-cancel"]


@pytest.mark.parametrize("kwargs", [
    {}, {"all": True, "own": True}, {"own": True, "client_id": "user-two"},
    {"all": True, "reason": "x" * 65}, {"all": True, "reason": "two\nlines"},
])
async def test_cancel_runs_refuses_anything_but_one_filter_and_a_usable_reason(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession,
        kwargs: dict[str, Any]) -> None:
    await _seen_active(client, [await start_streaming(client, agent)])
    with pytest.raises(InvalidArgumentError):
        await client.cancel_runs(**kwargs)
    assert not [r for r in broker.records or [] if r.name == "ai-cancel"]
    assert issubclass(InvalidArgumentError, ValueError)


async def test_own_needs_a_channel_with_a_client_id(broker: InMemoryBroker) -> None:
    anonymous = ClientSession(broker.channel(SESSION))
    await anonymous.connect()
    with pytest.raises(InvalidArgumentError, match="no client id"):
        await anonymous.cancel_runs(own=True)
    await anonymous.close()


async def test_cancel_latency_is_measured_only_for_the_runs_this_client_cancelled(
        broker: InMemoryBroker, client: ClientSession, second: ClientSession,
        agent: AgentSession) -> None:
    by_me, by_them, finished = [await start_streaming(client, agent) for _ in range(3)]
    await _seen_active(client, [by_me, by_them, finished])
    assert client.run(by_me[0].run_id).cancel_requested_at is None  # type: ignore[union-attr]
    await client.cancel_runs(where=lambda run: run.run_id == by_me[0].run_id)
    asked = client.run(by_me[0].run_id)
    assert asked is not None and asked.cancel_requested_at is not None, "noted at once"
    await second.cancel(by_them[0].run_id)
    finished[1].release()
    mine = await client.wait_run_ended(by_me[0].run_id, timeout=2)
    theirs = await client.wait_run_ended(by_them[0].run_id, timeout=2)
    done = await client.wait_run_ended(finished[0].run_id, timeout=2)
    assert mine.ended_at is not None and mine.cancel_requested_at is not None
    assert mine.cancel_latency == mine.ended_at - mine.cancel_requested_at > 0
    assert theirs.status == "cancelled" and theirs.cancel_requested_at is None
    assert theirs.cancel_latency is None, "another client's cancel is not this one's wait"
    assert done.status == "complete" and done.ended_at is not None
    assert done.cancel_latency is None
    await client.cancel(by_me[0].run_id)  # again, after the end: the first request stays
    assert client.run(by_me[0].run_id) == mine
    for _, _, task in (by_me, by_them, finished):
        await task


async def test_a_cancel_sent_before_the_run_started_is_timed_from_the_request(
        client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("never mind")
    await handle.cancel(reason="user_clicked_stop")  # before the agent has the invocation
    await client.wait_for(lambda c: any(m.name == "ai-cancel" for m in c.received), timeout=2)
    async with agent.create_run(handle.invocation) as run:
        result = await run.pipe(ScriptedStream(TOKENS))
    assert result.reason == "cancelled"
    info = await handle.wait_ended(timeout=2)
    assert info.cancel_reason == "user_clicked_stop"
    assert info.cancel_requested_at is not None and info.cancel_latency is not None
    assert info.cancel_latency > 0


async def test_a_cancel_by_run_id_for_a_run_not_yet_seen_is_timed_once_it_is(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, _, task = await start_streaming(client, agent)
    late = ClientSession(broker.channel(SESSION, client_id="user-abc"))  # e.g. a second tab
    await late.cancel(run.run_id)  # it has the id from elsewhere; it has folded nothing
    assert (await task).reason == "cancelled"
    await late.connect()  # the run's start and end come from history now
    info = await late.wait_run_ended(run.run_id, timeout=2)
    assert info.cancel_requested_at is not None and info.ended_at is not None
    assert info.cancel_latency == info.ended_at - info.cancel_requested_at > 0
    await late.close()


async def test_a_refused_cancel_keeps_its_first_request_time_and_gives_no_latency(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), on_cancel=lambda _: False)
    await agent.connect()
    run, stream, task = await start_streaming(client, agent)
    await _seen_active(client, [(run, stream, task)])
    await client.cancel(run.run_id)
    first = client.run(run.run_id)
    assert first is not None and first.cancel_requested_at is not None
    assert await client.cancel_runs(own=True) == [run.run_id]  # asked again: still active
    stream.release()
    assert (await task).reason == "complete"
    info = await client.wait_run_ended(run.run_id, timeout=2)
    assert info.cancel_requested_at == first.cancel_requested_at, "the first request is kept"
    assert info.status == "complete" and info.cancel_latency is None
    await agent.close()
