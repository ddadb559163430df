"""Every cancellation promise of the transport, one named test each.

Where this project deliberately differs from the JS agent (protocol notes §11), the test
says so in its docstring.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    AITransportError,
    CancelRequest,
    ClientSession,
    InMemoryBroker,
    OutboundMessage,
    PipeResult,
    Run,
)
from langgraph_interrupt._cancel import build_cancel
from langgraph_interrupt.testing import ScriptedStream
from tests.conftest import SESSION
from tests.helpers import TOKENS, describe, run_records, start_streaming, transport


# -- cancel by run id / by input id ---------------------------------------------------------
async def test_cancel_by_run_id_stops_the_source_and_ends_the_run_cancelled(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, stream, task = await start_streaming(client, agent)
    await client.cancel(run.run_id)
    result = await task
    assert result.reason == "cancelled"
    assert result.cancel_reason is not None and result.cancel_reason.requester == "user-abc"
    assert stream.finalised.is_set(), "the source (the LLM stream) was closed"
    info = await client.wait_run_ended(run.run_id, timeout=2)
    assert info.status == "cancelled"
    assert client.messages[-1]["parts"][-1]["text"] == "w0 w1 w2 "


async def test_cancel_by_input_id_before_the_run_exists_is_buffered_and_honoured(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """Trace c2: a long-lived agent receives the cancel before it creates the run."""
    handle = await client.send("never mind")
    await handle.cancel()  # before the invocation reaches the agent
    await client.wait_for(lambda c: any(m.name == "ai-cancel" for m in c.received))
    run = agent.create_run(handle.invocation)
    async with run:
        result = await run.pipe(ScriptedStream(TOKENS))
    assert result.reason == "cancelled"
    assert [describe(r) for r in run_records(broker, run.run_id)] == [
        ("ai-run-start",), ("ai-run-end", "cancelled")]


async def test_early_cancel_buffer_is_bounded_in_size(broker: InMemoryBroker) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), cancel_buffer_size=10)
    await agent.connect()
    flood = broker.channel(SESSION, client_id="flooder")
    await flood.attach()
    for i in range(500):
        await flood.publish([build_cancel(input_codec_message_id=f"cmid-{i}")])
    inbox_done = asyncio.Event()
    agent.channel.subscribe(lambda m: inbox_done.set() if m.name == "done" else None)
    await flood.publish([OutboundMessage("done")])
    await inbox_done.wait()
    assert len(agent._early) == 10
    assert list(agent._early)[-1] == "cmid-499", "the oldest entries are dropped first"
    await agent.close()


async def test_early_cancel_buffer_drops_entries_older_than_the_ttl(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), cancel_buffer_ttl=0.0)
    await agent.connect()
    handle = await client.send("hi")
    await handle.cancel()
    await client.wait_for(lambda c: any(m.name == "ai-cancel" for m in c.received))
    run = agent.create_run(handle.invocation)
    async with run:
        result = await run.pipe(ScriptedStream(["a", "b"]))
    assert result.reason == "complete", "an expired early cancel is not applied"
    await agent.close()


async def test_cancel_published_before_a_per_request_agent_attached_is_honoured(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """Trace c3: the JS agent never sees this cancel (it is only in history); we honour it."""
    handle = await client.send("never mind")
    await handle.cancel()
    agent = AgentSession(broker.channel(SESSION, client_id="agent"))  # attaches after both
    await agent.connect()
    run = agent.create_run(handle.invocation)
    async with run:
        result = await run.pipe(ScriptedStream(TOKENS))
    assert result.reason == "cancelled"
    assert (await handle.wait_ended(timeout=2)).status == "cancelled"
    await agent.close()


async def test_a_cancel_in_history_older_than_the_trigger_is_not_applied(
        broker: InMemoryBroker, client: ClientSession) -> None:
    first = await client.send("first")
    await first.cancel()
    second = await client.send("second")
    agent = AgentSession(broker.channel(SESSION, client_id="agent"))
    await agent.connect()
    async with agent.create_run(second.invocation) as run:
        result = await run.pipe(ScriptedStream(["ok"]))
    assert result.reason == "complete"
    await agent.close()


# -- authorisation ---------------------------------------------------------------------------
async def test_on_cancel_hook_receives_requester_and_target_and_may_reject(
        broker: InMemoryBroker, client: ClientSession) -> None:
    seen: list[CancelRequest] = []
    decided = asyncio.Event()

    def only_owner(request: CancelRequest) -> bool:
        seen.append(request)
        decided.set()
        return request.client_id == request.run.run_client_id

    agent = AgentSession(broker.channel(SESSION, client_id="agent"), on_cancel=only_owner)
    await agent.connect()
    run, stream, task = await start_streaming(client, agent)
    intruder = ClientSession(broker.channel(SESSION, client_id="mallory"))
    await intruder.connect()
    await intruder.cancel(run.run_id)
    await decided.wait()
    stream.release()
    result = await task
    assert result.reason == "complete", "a rejected cancel leaves the run streaming"
    assert seen[0].client_id == "mallory" and seen[0].run is run
    assert seen[0].run.run_client_id == "user-abc" and seen[0].run_id == run.run_id
    await agent.close()


async def test_async_on_cancel_hook_rejection_then_later_authorised_cancel_applies(
        broker: InMemoryBroker, client: ClientSession) -> None:
    calls: list[str | None] = []

    async def owner_only(request: CancelRequest) -> bool:
        calls.append(request.client_id)
        await asyncio.sleep(0)
        return request.client_id == "user-abc"

    agent = AgentSession(broker.channel(SESSION, client_id="agent"), on_cancel=owner_only)
    await agent.connect()
    run, _, task = await start_streaming(client, agent)
    intruder = ClientSession(broker.channel(SESSION, client_id="mallory"))
    await intruder.connect()
    await intruder.cancel(run.run_id)
    await client.cancel(run.run_id)
    result = await task
    assert result.reason == "cancelled"
    assert calls == ["mallory", "user-abc"]
    await agent.close()


async def test_on_cancel_hook_that_raises_counts_as_rejection_and_is_reported(
        broker: InMemoryBroker, client: ClientSession) -> None:
    errors: list[AITransportError] = []
    reported = asyncio.Event()

    def broken(request: CancelRequest) -> bool:
        raise RuntimeError("auth service down")

    def on_error(error: AITransportError) -> None:
        errors.append(error)
        reported.set()

    agent = AgentSession(broker.channel(SESSION, client_id="agent"), on_cancel=broken,
                         on_error=on_error)
    await agent.connect()
    run, stream, task = await start_streaming(client, agent)
    await client.cancel(run.run_id)
    await reported.wait()
    stream.release()
    assert (await task).reason == "complete"
    assert errors[0].code == 104002 and "auth service down" in errors[0].message
    await agent.close()


async def test_duplicate_cancels_abort_once_end_once_and_call_the_hook_once(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """Trace c1 sends the cancel twice; the JS agent calls onCancel for each. We call it once."""
    calls = 0

    def accept(request: CancelRequest) -> bool:
        nonlocal calls
        calls += 1
        return True

    agent = AgentSession(broker.channel(SESSION, client_id="agent"), on_cancel=accept)
    await agent.connect()
    run, _, task = await start_streaming(client, agent)
    aborts: list[object] = []
    run.signal.add_callback(aborts.append)
    await client.cancel(run.run_id)
    await client.cancel(run.run_id)
    await task
    await client.cancel(run.run_id)  # after the end: a no-op too
    await client.wait_for(lambda c: sum(m.name == "ai-cancel" for m in c.received) == 3)
    assert calls == 1 and len(aborts) == 1
    ends = [r for r in run_records(broker, run.run_id) if r.name == "ai-run-end"]
    assert len(ends) == 1
    await agent.close()


# -- what is published on cancel --------------------------------------------------------------
async def test_cancel_publish_order_is_on_cancelled_output_then_streams_then_step_then_run(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    async def note(run: Run, reason: object) -> None:
        await run.write({"type": "data-cancel-note", "data": {"note": "stopped by user"}})

    handle = await client.send("story")
    run = agent.create_run(handle.invocation, on_cancelled=note)
    gate = asyncio.Event()
    reached = asyncio.Event()

    async def two_streams() -> Any:
        yield {"type": "start"}
        yield {"type": "reasoning-start", "id": "r0"}
        yield {"type": "reasoning-delta", "id": "r0", "delta": "thinking"}
        yield {"type": "text-start", "id": "t0"}
        yield {"type": "text-delta", "id": "t0", "delta": "Once"}
        reached.set()
        await gate.wait()
        yield {"type": "text-delta", "id": "t0", "delta": " upon"}

    async def drive() -> PipeResult:
        async with run:
            return await run.pipe(two_streams())

    task = asyncio.create_task(drive())
    await reached.wait()
    await client.cancel(run.run_id)
    await task
    ops = [describe(r) for r in run_records(broker, run.run_id)]
    tail = ops[ops.index(("publish", "data-cancel-note", None)):]
    assert tail == [
        ("publish", "data-cancel-note", None),
        ("append", "reasoning", "", "cancelled"),
        ("append", "text", "", "cancelled"),
        ("ai-step-end", "cancelled"),
        ("ai-run-end", "cancelled"),
    ]
    info = await client.wait_run_ended(run.run_id, timeout=2)
    assert info.status == "cancelled"
    parts = client.messages[-1]["parts"]
    assert parts[-1] == {"type": "data-cancel-note", "data": {"note": "stopped by user"}}


async def test_nothing_of_a_run_is_published_after_its_run_end(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, stream, task = await start_streaming(client, agent)
    await client.cancel(run.run_id)
    await task
    stream.release()  # even if the source were to continue, nothing more goes out
    with pytest.raises(AITransportError):
        await run.write({"type": "text-delta", "id": "txt-0", "delta": "late"})
    ops = run_records(broker, run.run_id)
    assert ops[-1].name == "ai-run-end"


async def test_streams_are_terminated_and_the_run_ends_error_when_the_source_raises(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """Trace d: the JS agent leaves the text stream open forever; we terminate it."""
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    async with run:
        result = await run.pipe(ScriptedStream(["Partial ", "answer"], fail_at=2))
        assert result.reason == "error" and result.error is not None
        await run.end(result)
    ops = [describe(r) for r in run_records(broker, run.run_id)]
    assert ops[-3:] == [("append", "text", "", "cancelled"), ("ai-step-end", "failed"),
                        ("ai-run-end", "error")]
    end = transport(run_records(broker, run.run_id)[-1])
    assert end["error-code"] == "104008"
    assert end["error-message"] == "unable to complete run; model provider exploded (429)"
    info = await handle.wait_ended(timeout=2)
    assert (info.status, info.error_code) == ("error", 104008)
    assert client.messages[-1]["parts"][-1]["text"] == "Partial answer"


# -- concurrency and shutdown ------------------------------------------------------------------
async def test_cancelling_one_of_several_concurrent_runs_leaves_the_others_streaming(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    started = [await start_streaming(client, agent) for _ in range(3)]
    victim = started[1][0]
    await client.cancel(victim.run_id)
    assert (await started[1][2]).reason == "cancelled"
    for run, stream, task in (started[0], started[2]):
        assert not run.cancelled
        stream.release()
        assert (await task).reason == "complete"
    statuses = {r.run_id: r.status for r in client.runs}
    await client.wait_for(lambda c: all(r.ended for r in c.runs))
    statuses = {r.run_id: r.status for r in client.runs}
    assert statuses == {started[0][0].run_id: "complete", victim.run_id: "cancelled",
                        started[2][0].run_id: "complete"}


async def test_closing_the_session_ends_open_runs_cancelled(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"))
    await agent.connect()
    run, _stream, task = await start_streaming(client, agent)
    await agent.close()
    assert (await task).reason == "cancelled"
    assert run.signal.reason is not None and run.signal.reason.source == "shutdown"
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "cancelled"
    assert [describe(r) for r in run_records(broker, run.run_id)][-2:] == [
        ("ai-step-end", "cancelled"), ("ai-run-end", "cancelled")]


async def test_session_close_terminal_publishes_survive_cancellation_of_the_closing_task(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"))
    await agent.connect()
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()  # nobody but close() will end this run
    gate, blocked = asyncio.Event(), asyncio.Event()
    publish = agent.channel.publish

    async def gated(messages: Any) -> list[str]:
        if messages[0].name == "ai-run-end":
            blocked.set()
            await gate.wait()
        return await publish(messages)

    agent.channel.publish = gated  # type: ignore[method-assign]
    closer = asyncio.create_task(agent.close())
    await blocked.wait()  # close() is in the middle of publishing ai-run-end
    closer.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "cancelled"


async def test_session_close_is_bounded_in_time_when_the_channel_hangs(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), terminal_timeout=0.05)
    await agent.connect()
    _run, _, task = await start_streaming(client, agent)
    hang = asyncio.Event()

    async def never(*args: object, **kwargs: object) -> list[str]:
        await hang.wait()
        return []

    agent.channel.publish = never  # type: ignore[method-assign]
    agent.channel.append = never  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    began = loop.time()
    await agent.close(timeout=0.1)
    assert loop.time() - began < 1.0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_cancelling_the_task_that_runs_a_pipe_still_ends_the_run_cancelled(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, _, task = await start_streaming(client, agent)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "cancelled"


async def test_run_cancel_before_start_aborts_start_and_publishes_nothing(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    from langgraph_interrupt import OperationCancelledError

    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    assert run.cancel("changed my mind") is True
    assert run.cancel("again") is False
    with pytest.raises(OperationCancelledError) as info:
        await run.start()
    assert info.value.code == 40033
    assert run_records(broker, run.run_id) == []


async def test_a_source_that_never_awaits_can_still_be_cancelled_mid_stream(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """A sync iterable (or an async one that never suspends) must not starve the loop:
    the client's cancel has to get its turn, and ``pipe`` then reports ``cancelled``,
    consistently with what the wire says."""
    from langgraph_interrupt.testing import text_chunks

    handle = await client.send("count to a lot")
    run = agent.create_run(handle.invocation)
    loop = asyncio.get_running_loop()
    cancel: list[asyncio.Task[None]] = []

    seen = 0

    def after_ten_deltas(message: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == 10:  # the task runs only when the agent's loop lets it
            cancel.append(loop.create_task(client.cancel(run.run_id)))

    client.on_message(after_ten_deltas)
    tokens = [f"t{i} " for i in range(20_000)]
    async with run:
        result = await run.pipe(iter(text_chunks(tokens)))
    assert cancel, "the client saw the stream"
    await cancel[0]
    assert result.reason == "cancelled"
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "cancelled"
    appended = [r for r in run_records(broker, run.run_id) if r.op == "append"]
    assert len(appended) < 1_000, f"the cancel waited for {len(appended)} deltas"


async def test_a_source_that_swallows_the_interruption_publishes_nothing_after_run_end(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """The terminal sequence starts as soon as the abort lands; a source that catches the
    ``CancelledError`` and keeps yielding must not get another chunk onto the wire."""
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    holding = asyncio.Event()
    swallowed = asyncio.Event()

    async def stubborn() -> Any:
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "before "}
        try:
            holding.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()
        yield {"type": "text-delta", "id": "t", "delta": "after"}

    async def drive() -> PipeResult:
        async with run:
            return await run.pipe(stubborn())

    task = asyncio.create_task(drive())
    await holding.wait()
    await client.cancel(run.run_id)
    result = await task
    assert swallowed.is_set()
    assert result.reason == "cancelled"
    ops = [describe(r) for r in run_records(broker, run.run_id)]
    assert ops[-1] == ("ai-run-end", "cancelled"), ops
    assert not any("after" in str(r.data) for r in run_records(broker, run.run_id))
    assert client.messages[-1]["parts"][-1]["text"] == "before "


# -- regressions found while splitting _run.py ------------------------------------------------
async def test_a_source_whose_aiter_raises_ends_the_run_error_and_end_does_not_hang(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    class Broken:
        def __aiter__(self) -> Any:
            raise RuntimeError("no stream for you")

    handle = await client.send("hi")
    async with agent.create_run(handle.invocation) as run:
        result = await run.pipe(Broken())
    assert result.reason == "error" and "no stream for you" in str(result.error)
    info = await client.wait_run_ended(run.run_id, timeout=2)
    assert info.status == "error"


async def test_a_task_cancelled_with_the_run_in_one_loop_turn_stays_cancelled(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """Our own interruption is withdrawn; the caller's cancellation stays counted."""
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    stream = ScriptedStream(TOKENS, hold_at=2)
    counted: list[int] = []

    async def drive() -> None:
        try:
            await run.pipe(stream)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            counted.append(task.cancelling())
            raise

    task = asyncio.create_task(drive())
    await stream.holding.wait()
    run.cancel()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counted == [1]
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "cancelled"


async def test_an_end_that_failed_before_its_run_end_can_be_retried(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    with pytest.raises(AITransportError, match="unknown run end reason"):
        await run.end("bogus")  # type: ignore[arg-type]
    await run.end("complete")
    assert run.state == "ended"
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "complete"
