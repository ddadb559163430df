"""Pipelined publishing: order, stream termination and reporting without an ack per message.

The agent publishes through :class:`LateAcks`, a channel that applies every operation at
once, in order (as Ably does with one connection's messages), but acknowledges only when the
test says so, in whatever order it says. So a test sees what went out before any
acknowledgement came back, and that acknowledgements arriving out of order change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    ChannelError,
    ChannelMessage,
    ClientSession,
    InMemoryBroker,
    OutboundMessage,
    PipeResult,
    Run,
)
from langgraph_interrupt.channels import Channel
from langgraph_interrupt.testing import Inbox, ScriptedStream
from tests.conftest import SESSION
from tests.helpers import TOKENS, start_streaming, transport


class LateAcks:
    """A channel handle that applies at once and acknowledges when released (see above)."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.held: list[asyncio.Future[None]] = []
        self.holding = False
        self.changed = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def name(self) -> str:
        return self.inner.name

    async def _ack(self) -> None:
        if self.holding:
            gate = asyncio.get_running_loop().create_future()
            self.held.append(gate)
            self.changed.set()
            await gate

    async def publish(self, messages: Sequence[OutboundMessage]) -> list[str]:
        serials = await self.inner.publish(messages)  # applied now
        await self._ack()
        return serials

    async def append(self, serial: str, data: str, extras: Mapping[str, Any]) -> None:
        await self.inner.append(serial, data, extras)
        await self._ack()

    async def update(self, serial: str, data: Any, extras: Mapping[str, Any]) -> None:
        await self.inner.update(serial, data, extras)
        await self._ack()

    def release(self, *, reverse: bool = False, fail_first: BaseException | None = None) -> int:
        """Acknowledge everything held, newest first with ``reverse``; ``fail_first``
        refuses the oldest instead. Returns how many."""
        held, self.held = self.held, []
        if fail_first is not None and held:
            held.pop(0).set_exception(fail_first)
        for gate in reversed(held) if reverse else held:
            gate.set_result(None)
        return len(held)


@pytest.fixture
async def seen(broker: InMemoryBroker) -> AsyncIterator[Inbox]:
    """Everything a participant on the session channel receives."""
    channel = broker.channel(SESSION, client_id="watcher")
    inbox = Inbox()
    channel.subscribe(inbox)
    await channel.attach()
    yield inbox
    await channel.detach()


@pytest.fixture
async def late(broker: InMemoryBroker) -> AsyncIterator[tuple[AgentSession, LateAcks]]:
    channel = LateAcks(broker.channel(SESSION, client_id="agent"))
    agent = AgentSession(channel)  # type: ignore[arg-type]
    await agent.connect()
    yield agent, channel
    channel.holding = False
    channel.release()
    await agent.close()


def of_run(seen: Inbox, run_id: str) -> list[ChannelMessage]:
    """What the client received of the run (appends by the serial of their create)."""
    serials = {m.serial for m in seen.messages if transport(m).get("run-id") == run_id}
    return [m for m in seen.messages
            if transport(m).get("run-id") == run_id or m.serial in serials]


def describe(message: ChannelMessage) -> str:
    headers = transport(message)
    if message.name in ("ai-run-end", "ai-step-end"):
        return f"{message.name}:{headers.get('run-reason') or headers.get('step-reason')}"
    if message.action == "message.append":
        return f"append:{headers.get('status')}"
    return f"{message.name}:{(message.extras or {}).get('ai', {}).get('codec', {}).get('kind')}"


async def test_the_cancel_sequence_goes_out_before_any_of_it_is_acknowledged(
        broker: InMemoryBroker, client: ClientSession, late: tuple[AgentSession, LateAcks],
        seen: Inbox) -> None:
    agent, channel = late
    run, _, task = await start_streaming(client, agent)
    await run.flush()  # what streamed so far is acknowledged
    channel.holding = True

    await client.cancel(run.run_id)
    await seen.wait_for(lambda m: m.name == "ai-run-end")

    tail = [describe(m) for m in of_run(seen, run.run_id)][-3:]
    assert tail == ["append:cancelled", "ai-step-end:cancelled", "ai-run-end:cancelled"]
    # the append, then the step's and the run's end in one publish (one acknowledgement)
    assert len(channel.held) == 2, "all of it went out with no acknowledgement back"
    assert not task.done(), "pipe() reports only once they are acknowledged"
    channel.release(reverse=True)
    result = await task
    assert result.reason == "cancelled"


async def test_acknowledgements_out_of_order_keep_the_exact_order_and_every_stream_closed(
        broker: InMemoryBroker, client: ClientSession, late: tuple[AgentSession, LateAcks],
        seen: Inbox) -> None:
    agent, channel = late
    channel.holding = True
    handle = await client.send("tell me")
    run = agent.create_run(handle.invocation)

    async def drive() -> PipeResult:
        async with run:
            return await run.pipe(ScriptedStream(TOKENS))

    task = asyncio.create_task(drive())
    while not task.done():  # acknowledge whatever is held, newest first, as it comes
        channel.changed.clear()
        if not channel.release(reverse=True):
            await asyncio.wait({task, asyncio.ensure_future(channel.changed.wait())},
                               return_when=asyncio.FIRST_COMPLETED)
    assert (await task).reason == "complete"
    await seen.wait_for(lambda m: m.name == "ai-run-end")

    kinds = [describe(m) for m in of_run(seen, run.run_id)]
    assert kinds[:4] == ["ai-run-start:None", "ai-step-start:None", "ai-output:start",
                         "ai-output:start-step"]
    assert kinds[-5:] == ["append:complete", "ai-output:finish-step", "ai-output:finish",
                          "ai-step-end:complete", "ai-run-end:complete"]
    assert client.messages[-1]["parts"][-1]["text"] == "".join(TOKENS), "nothing reordered"
    stored = broker.history_of(SESSION)
    assert "".join(TOKENS) in [m.data for m in stored]


async def test_a_refused_publish_in_the_middle_of_the_cancel_sequence_is_reported(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession,
        seen: Inbox) -> None:
    run, _, task = await start_streaming(client, agent)
    await run.flush()
    refusal = ChannelError("unable to publish; injected refusal", code=50000)
    broker.fail_next("publish", 1, refusal)  # the first publish of the sequence: ai-step-end

    run.cancel()  # the agent's own cancel: no client publish to take the fault
    result = await task

    assert result.reason == "error" and result.error is refusal, "reported, not hidden"
    info = await client.wait_run_ended(run.run_id, timeout=2)
    assert info.status == "cancelled", "the run still ends on the wire"
    kinds = [describe(m) for m in of_run(seen, run.run_id)]
    assert "ai-step-end:cancelled" not in kinds and kinds[-1] == "ai-run-end:cancelled"


async def test_a_run_whose_pipe_failed_ends_error_when_its_block_exits(
        client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    source = ScriptedStream(["a", "b", "c"], fail_at=2, error=RuntimeError("model down"))
    async with agent.create_run(handle.invocation) as run:
        result = await run.pipe(source)  # returns the error; the block then exits normally
    assert result.reason == "error"
    info = await handle.wait_ended(timeout=2)
    assert info.status == "error" and "model down" in (info.error_message or "")
    assert run.end_reason == "error"


async def test_deltas_written_while_an_append_is_in_flight_go_out_as_one_append(
        client: ClientSession, late: tuple[AgentSession, LateAcks], seen: Inbox) -> None:
    agent, channel = late
    run, stream, task = await start_streaming(client, agent, hold_at=1)
    await run.flush()
    channel.holding = True
    stream.release()
    await stream.finalised.wait()  # every delta written; w1's append is not acknowledged
    appends = [m.data for m in of_run(seen, run.run_id) if m.action == "message.append"]
    assert appends == ["w0 ", "w1 "], "the rest waits for w1's acknowledgement"
    channel.holding = False
    channel.release()
    assert (await task).reason == "complete"
    await seen.wait_for(lambda m: m.name == "ai-run-end")
    appends = [m for m in of_run(seen, run.run_id) if m.action == "message.append"]
    assert [m.data for m in appends] == ["w0 ", "w1 ", "".join(TOKENS[2:])]
    assert transport(appends[-1])["status"] == "complete", "the close carries the rest"


async def test_a_rollup_window_caps_the_appends_per_stream(
        broker: InMemoryBroker, client: ClientSession, seen: Inbox) -> None:
    async with AgentSession(broker.channel(SESSION, client_id="agent"),
                            append_rollup_window=3600.0) as agent:
        handle = await client.send("hi")
        async with agent.create_run(handle.invocation) as run:
            result = await run.pipe(ScriptedStream(TOKENS))
    assert result.reason == "complete"
    await handle.wait_ended(timeout=2)
    appends = [m for m in of_run(seen, run.run_id) if m.action == "message.append"]
    # The first delta goes at once; the window holds the rest, which the close carries.
    assert [m.data for m in appends] == ["w0 ", "".join(TOKENS[1:])]
    assert client.messages[-1]["parts"][-1]["text"] == "".join(TOKENS)


async def test_a_step_begun_and_ended_before_its_start_is_acknowledged_names_its_serial(
        client: ClientSession, late: tuple[AgentSession, LateAcks], seen: Inbox) -> None:
    """pipe() begins the step before the source's first chunk; a cancel before any chunk
    and before the ai-step-start's acknowledgement ends that step by its serial: the end
    (and what follows it) goes out as soon as that serial is known."""
    agent, channel = late
    channel.holding = True
    handle = await client.send("tell me")
    run = agent.create_run(handle.invocation)
    thinking = asyncio.Event()

    async def slow_model() -> AsyncIterator[dict[str, Any]]:
        thinking.set()
        await asyncio.Event().wait()  # no first token before the cancel
        yield {"type": "start"}

    async def drive() -> PipeResult:
        async with run:
            return await run.pipe(slow_model())

    task = asyncio.create_task(drive())
    await thinking.wait()
    run.cancel()
    await channel.changed.wait()
    assert [describe(m) for m in of_run(seen, run.run_id)] == [
        "ai-run-start:None", "ai-step-start:None"], "the end waits for the step's serial"
    channel.holding = False
    channel.release()
    await seen.wait_for(lambda m: m.name == "ai-run-end")
    records = of_run(seen, run.run_id)
    assert [describe(m) for m in records] == [
        "ai-run-start:None", "ai-step-start:None", "ai-step-end:cancelled",
        "ai-run-end:cancelled"]
    assert transport(records[2])["step-start-serial"] == records[1].serial
    assert (await task).reason == "cancelled"


async def in_flight_then_cancel(client: ClientSession, agent: AgentSession, channel: LateAcks,
                                seen: Inbox) -> tuple[Run, asyncio.Task[PipeResult]]:
    """A run whose last append (w3) is applied but not acknowledged, then cancelled."""
    handle = await client.send("tell me")
    run = agent.create_run(handle.invocation)
    tokens: asyncio.Queue[str] = asyncio.Queue()

    async def model() -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        while True:
            yield {"type": "text-delta", "id": "t", "delta": await tokens.get()}

    async def drive() -> PipeResult:
        async with run:
            return await run.pipe(model())

    task = asyncio.create_task(drive())
    for token in TOKENS[:3]:
        tokens.put_nowait(token)
    await seen.wait_for(lambda m: m.action == "message.append" and m.data == "w2 ")
    await run.flush()
    channel.holding = True
    tokens.put_nowait("w3 ")  # applied; its acknowledgement is held
    await channel.changed.wait()
    run.cancel()
    await seen.wait_for(lambda m: m.name == "ai-run-end")
    return run, task


async def test_a_cancel_does_not_wait_for_the_append_in_flight(
        client: ClientSession, late: tuple[AgentSession, LateAcks], seen: Inbox) -> None:
    agent, channel = late
    run, task = await in_flight_then_cancel(client, agent, channel, seen)

    tail = [describe(m) for m in of_run(seen, run.run_id)][-3:]
    assert tail == ["append:cancelled", "ai-step-end:cancelled", "ai-run-end:cancelled"]
    # w3's acknowledgement, the closing append, the step's and the run's end (one publish)
    assert len(channel.held) == 3, "w3's acknowledgement and the cancel's two publishes"
    channel.holding = False
    channel.release()
    assert (await task).reason == "cancelled"
    updates = [m for m in seen.messages if m.action == "message.update"]
    assert updates == [], "acknowledged in order: nothing to repair"


async def test_an_append_refused_after_the_cancel_went_out_is_repaired_by_one_update(
        broker: InMemoryBroker, client: ClientSession, late: tuple[AgentSession, LateAcks],
        seen: Inbox) -> None:
    agent, channel = late
    _run, task = await in_flight_then_cancel(client, agent, channel, seen)
    channel.holding = False
    channel.release(fail_first=ChannelError("unable to append message; refused", code=50000))

    assert (await task).reason == "cancelled"
    update = await seen.wait_for(lambda m: m.action == "message.update")
    assert update.data == "w0 w1 w2 w3 "
    assert transport(update)["status"] == "cancelled"
    assert [m.action for m in seen.messages].count("message.update") == 1


async def test_an_append_acknowledged_after_the_cancel_went_out_is_repaired_by_one_update(
        client: ClientSession, late: tuple[AgentSession, LateAcks], seen: Inbox) -> None:
    """What a retried append looks like: it lands after the close, so its acknowledgement
    comes back after the close's. The history is rewritten once, in order."""
    agent, channel = late
    _run, task = await in_flight_then_cancel(client, agent, channel, seen)
    channel.holding = False
    channel.release(reverse=True)

    assert (await task).reason == "cancelled"
    update = await seen.wait_for(lambda m: m.action == "message.update")
    assert (update.data, transport(update)["status"]) == ("w0 w1 w2 w3 ", "cancelled")
