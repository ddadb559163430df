"""Steering in the transport: a follow-up into a running run, drained by ``has_input()``,
stamped on the answer that takes it in, and resolved ``consumed`` by the client."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker, Run
from langgraph_interrupt._errors import InvalidArgumentError
from langgraph_interrupt.testing import ScriptedStream
from langgraph_interrupt.transport import Steer
from langgraph_interrupt.transport._steering import MAX_STEERS_PER_RUN
from tests.conftest import SESSION
from tests.helpers import run_records, transport


def _stamps(broker: InMemoryBroker, run_id: str) -> list[tuple[str, list[str]]]:
    """(op, steer ids) of every agent output of the run that carries the header."""
    return [(r.op, json.loads(transport(r)["steer-codec-message-ids"]))
            for r in run_records(broker, run_id)
            if "steer-codec-message-ids" in transport(r)]


class Loop:
    """The JS agent's loop: ``while run.has_input(): pipe an answer``; the first answer
    holds until released, so a test can steer while it streams."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.first = ScriptedStream(["one ", "two "], hold_at=1)
        self.passes: list[list[str]] = []  # the steers each pass answered
        self.hints: list[Steer] = []

    async def __call__(self) -> None:
        async with self.run:
            while self.run.has_input():
                self.passes.append([s.codec_message_id for s in self.run.steers])
                source = self.first if len(self.passes) == 1 else ScriptedStream(["ok"])
                await self.run.pipe(source)


async def _start(client: ClientSession, agent: AgentSession,
                 **options: Any) -> tuple[Loop, asyncio.Task[None]]:
    handle = await client.send("write a poem")
    loop = Loop(agent.create_run(handle.invocation, **options))
    task = asyncio.create_task(loop())
    await loop.first.holding.wait()
    return loop, task


async def test_a_steer_while_the_run_streams_is_answered_by_the_next_pass(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    hints: list[Steer] = []
    hinted = asyncio.Event()

    def on_steer(run: Run, steer: Steer) -> None:
        hints.append(steer)
        hinted.set()

    loop, task = await _start(client, agent, on_steer=on_steer)
    run_id = loop.run.run_id
    steer = await client.steer(run_id, "make it rhyme")
    await hinted.wait()
    assert [(h.codec_message_id, h.client_id) for h in hints] == [
        (steer.codec_message_id, "user-abc")]
    loop.first.release()
    await task
    assert loop.passes == [[], [steer.codec_message_id]]
    outcome = await steer.outcome(timeout=2)
    assert (outcome.consumed, outcome.run_end_reason) == (True, "complete")
    stamps = _stamps(broker, run_id)
    assert stamps and all(ids == [steer.codec_message_id] for _, ids in stamps)
    assert len({op for op, _ in stamps}) >= 2, "creates and appends of that message alike"
    first_message = next(r for r in run_records(broker, run_id) if r.name == "ai-output")
    assert "steer-codec-message-ids" not in transport(first_message), "only the answer"


async def test_the_client_refuses_to_steer_a_run_it_has_seen_end(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    loop, task = await _start(client, agent)
    run_id = loop.run.run_id
    await client.cancel(run_id)
    await task
    with pytest.raises(InvalidArgumentError, match="has ended"):
        await client.steer(run_id, "too late")


async def test_a_steer_that_the_cancel_overtakes_resolves_not_consumed(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    loop, task = await _start(client, agent)
    steer = await client.steer(loop.run.run_id, "shorter please")
    await client.cancel(loop.run.run_id)
    await task
    assert loop.passes == [[]], "cancelled: has_input() is False, nothing drained"
    outcome = await steer.outcome(timeout=2)
    assert (outcome.consumed, outcome.run_end_reason) == (False, "cancelled")


async def test_has_input_is_the_initial_response_then_only_new_steers(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    assert run.has_input() and run.has_input(), "no output yet: the initial response"
    await run.pipe(ScriptedStream(["hello"]))
    assert not run.has_input()
    run.cancel()
    assert not run.has_input()
    await run.end()


async def test_two_clients_steering_one_run_are_both_answered(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    other = ClientSession(broker.channel(SESSION, client_id="other-device"))
    await other.connect()
    hinted: list[Steer] = []
    both = asyncio.Event()

    def on_steer(run: Run, steer: Steer) -> None:
        hinted.append(steer)
        if len(hinted) == 2:
            both.set()

    loop, task = await _start(client, agent, on_steer=on_steer)
    run_id = loop.run.run_id
    await other.wait_for(lambda c: c.run(run_id))
    mine = await client.steer(run_id, "in French")
    theirs = await other.steer(run_id, "and short")
    await both.wait()
    assert {h.client_id for h in hinted} == {"user-abc", "other-device"}
    loop.first.release()
    await task
    assert sorted(loop.passes[1]) == sorted([mine.codec_message_id, theirs.codec_message_id])
    assert (await mine.outcome(timeout=2)).consumed
    assert (await theirs.outcome(timeout=2)).consumed
    await other.close()


async def test_a_steer_into_a_suspended_run_is_taken_in_by_its_resume(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("book a table")
    run = agent.create_run(handle.invocation)
    await run.start()
    assert run.has_input()
    await run.pipe(ScriptedStream(["Which day?"]))
    await run.suspend()
    steer = await client.steer(run.run_id, "also, a window seat")
    await client.wait_for(lambda c: any(m.name == "ai-input" and
                                        transport_of(m).get("codec-message-id") ==
                                        steer.codec_message_id for m in c.received))
    answer = await client.send_tool_result(run_id=run.run_id,
                                           codec_message_id=_assistant_id(client),
                                           tool_call_id="call_day", output={"day": "Friday"})
    resumed = agent.create_run(answer.invocation)
    async with resumed:
        assert resumed.run_id == run.run_id
        assert resumed.has_input()
        assert [s.codec_message_id for s in resumed.steers] == [steer.codec_message_id]
        await resumed.pipe(ScriptedStream(["Friday, by the window."]))
    outcome = await steer.outcome(timeout=2)
    assert (outcome.consumed, outcome.run_end_reason) == (True, "complete")


def transport_of(message: Any) -> dict[str, str]:
    return dict((message.extras or {}).get("ai", {}).get("transport", {}))


def _assistant_id(client: ClientSession) -> str:
    return [m for m in client.messages if m["role"] == "assistant"][-1]["id"]


async def test_hostile_or_odd_steers_are_skipped_and_bounded(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession,
        caplog: pytest.LogCaptureFixture) -> None:
    loop, task = await _start(client, agent)
    run_id = loop.run.run_id
    with caplog.at_level(logging.WARNING, logger="langgraph_interrupt.transport"):
        await client.steer("no-such-run", "hello?")  # kept for a run that may open, bounded
        handles = [await client.steer(run_id, f"steer {i}")
                   for i in range(MAX_STEERS_PER_RUN + 5)]
        await client.wait_for(lambda c: sum(m.name == "ai-input" for m in c.received)
                              >= MAX_STEERS_PER_RUN + 7)
    assert len(loop.run._steering.unanswered()) == MAX_STEERS_PER_RUN
    assert sum("steers unanswered" in r.getMessage() for r in caplog.records) == 1
    loop.first.release()
    await task
    consumed = [await h.outcome(timeout=2) for h in handles]
    assert [o.consumed for o in consumed] == [True] * MAX_STEERS_PER_RUN + [False] * 5
    assert agent._steers._waiting.keys() == {"no-such-run"}


async def test_only_user_messages_steer_a_tool_result_for_the_run_does_not(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    loop, task = await _start(client, agent)
    run_id = loop.run.run_id
    await client.send_tool_result(run_id=run_id, codec_message_id=_assistant_id(client),
                                  tool_call_id="call_x", output="not a steer")
    steer = await client.steer(run_id, "but this is")
    await client.wait_for(lambda c: any(transport_of(m).get("codec-message-id") ==
                                        steer.codec_message_id for m in c.received))
    await asyncio.sleep(0)  # one loop turn for the agent's subscription
    assert [s.codec_message_id for s in loop.run._steering.unanswered()] == [
        steer.codec_message_id]
    loop.first.release()
    await task


async def test_a_steer_still_pending_when_the_run_suspends_is_taken_in_by_its_resume(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    hinted = asyncio.Event()
    handle = await client.send("book a table")
    run = agent.create_run(handle.invocation, on_steer=lambda run, steer: hinted.set())
    await run.start()
    assert run.has_input()
    first = ScriptedStream(["Which ", "day?"], hold_at=1)
    piping = asyncio.create_task(run.pipe(first))
    await first.holding.wait()
    steer = await client.steer(run.run_id, "also, a window seat")
    await hinted.wait()
    first.release()
    await piping
    await run.suspend()  # no has_input() in between: the steer is still pending
    answer = await client.send_tool_result(run_id=run.run_id,
                                           codec_message_id=_assistant_id(client),
                                           tool_call_id="call_day", output={"day": "Friday"})
    resumed = agent.create_run(answer.invocation)
    async with resumed:
        assert resumed.has_input()
        assert [s.codec_message_id for s in resumed.steers] == [steer.codec_message_id]
        await resumed.pipe(ScriptedStream(["Friday, by the window."]))
    assert (await steer.outcome(timeout=2)).consumed
