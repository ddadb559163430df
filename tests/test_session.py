"""Agent session and run lifecycle: finding the trigger, headers, steps, suspend, end, failures."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    ChannelError,
    ClientSession,
    HistoryFetchFailedError,
    InMemoryBroker,
    InputEventNotFoundError,
    InvalidInvocationError,
    Invocation,
    OutboundMessage,
    RunLifecycleError,
    SessionClosedError,
    UnsupportedChunkError,
)
from langgraph_interrupt._wire import (
    EVENT_RUN_END,
    H_INVOCATION_ID,
    H_RUN_CLIENT_ID,
    H_RUN_ID,
    H_RUN_REASON,
    make_extras,
)
from langgraph_interrupt.testing import Inbox, ScriptedStream, text_chunks
from tests.conftest import SESSION
from tests.helpers import describe, run_records, transport


async def test_a_long_lived_session_finds_a_trigger_it_already_saw_live(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    await client.wait_for(lambda c: bool(c.messages))
    await asyncio.sleep(0)  # let the agent's own delivery of the input run
    async with agent.create_run(handle.invocation) as run:
        await run.pipe(text_chunks(["ok"]))
    assert run.trigger is not None and run.trigger.event_id == handle.event_id


async def test_a_trigger_published_after_start_began_is_found_live(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    invocation = Invocation(inputEventId="future-event", sessionName=SESSION)
    run = agent.create_run(invocation)
    starting = asyncio.create_task(run.start())
    await asyncio.sleep(0)
    from langgraph_interrupt import OutboundMessage
    await client.channel.publish([OutboundMessage("ai-input", "late", {"ai": {"transport": {
        "role": "user", "codec-message-id": "cm-late", "event-id": "future-event"},
        "codec": {"kind": "user-message", "partType": "text", "messageId": "m"}}})])
    await starting
    assert run.trigger is not None and run.trigger.codec_message_id == "cm-late"
    await run.end()


async def test_a_missing_trigger_fails_with_104010_after_the_bounded_wait(
        broker: InMemoryBroker) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), trigger_timeout=0.05)
    await agent.connect()
    run = agent.create_run(Invocation(inputEventId="nope", sessionName=SESSION))
    with pytest.raises(InputEventNotFoundError) as info:
        await run.start()
    assert info.value.code == 104010 and info.value.status_code == 504
    assert run_records(broker, run.run_id) == []
    await agent.close()


async def test_the_history_scan_is_bounded_in_pages(broker: InMemoryBroker,
                                                    client: ClientSession) -> None:
    handle = await client.send("old")
    for i in range(30):
        await client.send(f"newer {i}")
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), history_page_size=10,
                         max_history_pages=2, trigger_timeout=0.05)
    await agent.connect()
    with pytest.raises(InputEventNotFoundError):
        await agent.create_run(handle.invocation).start()
    roomy = AgentSession(broker.channel(SESSION, client_id="agent2"), history_page_size=10,
                         max_history_pages=5)
    await roomy.connect()
    run = roomy.create_run(handle.invocation)
    await run.start()
    assert run.trigger is not None
    await run.end()
    await agent.close()
    await roomy.close()


async def test_history_fetch_is_retried_then_fails_with_104011(
        broker: InMemoryBroker, client: ClientSession) -> None:
    handle = await client.send("hi")
    agent = AgentSession(broker.channel(SESSION, client_id="agent"))
    await agent.connect()
    broker.fail_next("history", 2)  # two transient failures: the third attempt succeeds
    run = agent.create_run(handle.invocation)
    await run.start()
    await run.end()
    broker.fail_next("history", 3)
    with pytest.raises(HistoryFetchFailedError) as info:
        await agent.create_run(handle.invocation).start()
    assert info.value.code == 104011
    await agent.close()


async def test_an_invocation_for_another_session_is_refused(agent: AgentSession) -> None:
    with pytest.raises(InvalidInvocationError, match="not 'ai:test-session'"):
        agent.create_run(Invocation(inputEventId="e", sessionName="ai:other"))


async def test_a_closed_session_refuses_new_runs_and_pending_starts(
        broker: InMemoryBroker) -> None:
    agent = AgentSession(broker.channel(SESSION, client_id="agent"), trigger_timeout=5)
    await agent.connect()
    run = agent.create_run(Invocation(inputEventId="never", sessionName=SESSION))
    starting = asyncio.create_task(run.start())
    await asyncio.sleep(0.01)
    await agent.close()
    with pytest.raises(SessionClosedError):
        await starting
    with pytest.raises(SessionClosedError):
        agent.create_run(Invocation(inputEventId="e", sessionName=SESSION))


async def test_run_start_and_output_headers_follow_the_protocol(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    async with agent.create_run(handle.invocation) as run:
        await run.pipe(text_chunks(["a"]))
    records = run_records(broker, run.run_id)
    start, step, first = (transport(r) for r in records[:3])
    assert start == {"run-id": run.run_id, "run-client-id": "user-abc",
                     "parent": handle.codec_message_id, "invocation-id": run.invocation_id,
                     "input-client-id": "user-abc",
                     "input-codec-message-id": handle.codec_message_id}
    assert step["step-id"] == f"{run.invocation_id}-step-0"
    assert first["step-start-serial"] == records[1].serial
    assert first["input-codec-message-id"] == handle.codec_message_id
    assert first["role"] == "assistant" and first["stream"] == "false"


async def test_each_pipe_is_one_message_and_one_step(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    async with agent.create_run(handle.invocation) as run:
        await run.pipe(text_chunks(["one"]))
        await run.pipe(text_chunks(["two"], text_id="t2"))
    ends = [describe(r) for r in run_records(broker, run.run_id) if r.name == "ai-step-end"]
    assert ends == [("ai-step-end", "complete")] * 2
    await handle.wait_ended(timeout=2)
    texts = [m["parts"][-1]["text"] for m in client.messages if m["role"] == "assistant"]
    assert texts == ["one", "two"]


async def test_an_unsupported_chunk_fails_the_pipe_with_40003(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    async with agent.create_run(handle.invocation) as run:
        result = await run.pipe([{"type": "start"}, {"type": "reset-step"}])
        await run.end(result)
    assert result.reason == "error" and isinstance(result.error, UnsupportedChunkError)
    assert transport(run_records(broker, run.run_id)[-1])["error-code"] == "40003"


async def test_an_exception_in_the_run_body_ends_the_run_error(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    with pytest.raises(KeyError):
        async with agent.create_run(handle.invocation):
            raise KeyError("oops")
    info = await handle.wait_ended(timeout=2)
    assert info.status == "error" and info.error_code == 104008
    assert info.error_message == "unable to complete run; 'oops'"


async def test_suspend_then_a_continuation_resumes_the_same_run(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("where am I?")
    run = agent.create_run(handle.invocation)
    await run.start()
    result = await run.pipe([
        {"type": "start"},
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "where", "input": {}},
        {"type": "finish", "finishReason": "tool-calls"}])
    assert result.suspend_requested
    await run.suspend()
    assert run not in agent.runs
    await client.wait_for(lambda c: c.run(run.run_id) and c.run(run.run_id).status == "suspended")
    target = client.decoder.entries()[-1].codec_message_id
    resume = await client.send_tool_result(run_id=run.run_id, codec_message_id=target,
                                           tool_call_id="c1", output={"city": "Paris"})
    async with agent.create_run(resume.invocation) as resumed:
        assert resumed.run_id == run.run_id and resumed.trigger.is_continuation
        await resumed.pipe(text_chunks(["Paris."]))
    names = [r.name for r in run_records(broker, run.run_id)]
    assert names.count("ai-run-resume") == 1 and names[-1] == "ai-run-end"
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "complete"
    tool = client.messages[1]["parts"][-1]
    assert tool["state"] == "output-available" and tool["output"] == {"city": "Paris"}


async def test_suspending_with_an_open_step_is_refused(
        client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    async with agent.create_run(handle.invocation) as run:
        await run.write({"type": "start"})
        with pytest.raises(RunLifecycleError):
            await run.suspend()


async def test_end_is_idempotent_and_the_first_end_wins(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    await run.end("complete")
    await run.end("error", error=RuntimeError("late"))
    ends = [describe(r) for r in run_records(broker, run.run_id) if r.name == "ai-run-end"]
    assert ends == [("ai-run-end", "complete")]


async def test_a_failed_append_is_repaired_by_one_full_update_at_the_end_of_the_stream(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """Trace g: the JS agent sends the update after the terminal append, which live
    subscribers ignore; we send it as the terminal operation, so live views are repaired."""
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    stream = ScriptedStream(["Hello", " there", "!"], hold_at=1)
    piping = asyncio.create_task(run.pipe(stream))
    await stream.holding.wait()
    broker.fail_next("append", 1)  # the " there" append is lost
    stream.release()
    result = await piping
    await run.end(result)
    assert result.reason == "complete"
    ops = [describe(r) for r in run_records(broker, run.run_id)]
    assert ("update", "text", "Hello there!", "complete") in ops
    await handle.wait_ended(timeout=2)
    assert client.messages[-1]["parts"][-1]["text"] == "Hello there!"
    streamed = [m for m in broker.history_of(SESSION) if m.action == "message.update"]
    assert [m.data for m in streamed] == ["Hello there!"]


async def test_a_channel_without_mutable_messages_fails_the_run_with_one_clear_error() -> None:
    broker = InMemoryBroker(mutable_messages=False, record=True)
    client = ClientSession(broker.channel(SESSION, client_id="user-abc"))
    await client.connect()
    async with AgentSession(broker.channel(SESSION, client_id="agent")) as agent:
        handle = await client.send("hi")
        async with agent.create_run(handle.invocation) as run:
            result = await run.pipe(text_chunks(["a", "b", "c"]))
            await run.end(result)
    assert result.reason == "error" and result.error is not None
    assert result.error.code == 104000
    assert "mutable" in result.error.message
    info = await handle.wait_ended(timeout=2)
    assert info.error_code == 104000
    appends = [r for r in broker.records or [] if r.op == "append"]
    assert appends == [], "no stream of failing appends"


async def test_a_failing_publish_during_streaming_ends_the_run_error(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    broker.fail_next("publish", 1, ChannelError("unable to publish; boom", code=50000))
    result = await run.pipe(text_chunks(["a"]))
    await run.end(result)
    assert result.reason == "error"
    assert (await handle.wait_ended(timeout=2)).status == "error"


async def test_a_forged_run_end_or_output_from_another_participant_changes_nothing(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """Only the identity that published ``ai-run-start`` speaks for the run: a participant
    that publishes an ``ai-run-end`` or an output with the run's headers is ignored (Ably
    verifies client ids), and the agent's real end still applies."""
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    await run.write({"type": "start"})
    await run.write({"type": "text-start", "id": "t"})
    await run.write({"type": "text-delta", "id": "t", "delta": "real"})
    await client.wait_for(lambda c: bool(c.messages) and c.messages[-1]["role"] == "assistant")
    info = client.run(run.run_id)
    assert info is not None and info.agent_client_id == "agent"

    mallory = broker.channel(SESSION, client_id="mallory")
    await mallory.attach()
    forged_end = {H_RUN_ID: run.run_id, H_RUN_CLIENT_ID: "user-abc", H_RUN_REASON: "error",
                  H_INVOCATION_ID: run.invocation_id, "error-code": "104008",
                  "error-message": "forged"}
    forged_output = {"role": "assistant", "codec-message-id": str(uuid.uuid4()),
                     H_RUN_ID: run.run_id, H_RUN_CLIENT_ID: "user-abc",
                     "input-codec-message-id": handle.codec_message_id, "stream": "false"}
    await mallory.publish([
        OutboundMessage(EVENT_RUN_END, None, make_extras(forged_end)),
        OutboundMessage("ai-output", "", make_extras(forged_output, {"kind": "text",
                                                                      "id": "x"}))])
    seen = asyncio.Event()
    client.channel.subscribe(lambda m: seen.set() if m.client_id == "mallory" else None)
    await seen.wait()

    assert client.run(run.run_id).status == "active"  # type: ignore[union-attr]
    assert [m["role"] for m in client.messages] == ["user", "assistant"]
    await run.end()
    assert (await handle.wait_ended(timeout=2)).status == "complete"


async def test_a_watcher_cannot_squat_the_agents_next_message_ids(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """The broker de-duplicates message ids across the channel, so a participant who could
    predict the agent's next ids could publish them first and have the agent's messages
    (its ai-run-end included) acknowledged and dropped. The ids are unguessable: guesses
    from every id seen so far squat nothing, and the run ends on the wire for everyone."""
    squatter = broker.channel(SESSION, client_id="mallory")
    watched = Inbox()
    squatter.subscribe(watched)
    await squatter.attach()
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    await run.write({"type": "start"})
    await run.write({"type": "data-progress", "data": {"step": 1}})
    await watched.wait_for(lambda m: m.client_id == "agent" and m.name == "ai-output"
                           and m.data == {"step": 1})
    seen = [m.id for m in watched.messages if m.client_id == "agent" and m.id]
    assert len(seen) >= 3 and len(set(seen)) == len(seen)
    guesses = {f"{run.invocation_id}:{n}" for n in range(200)}
    for known in seen:
        base, _, tail = known.rpartition(":")
        if tail.isdigit():
            guesses.update(f"{base}:{int(tail) + k}" for k in range(1, 50))
    for guess in guesses:  # one publish each: Ably refuses a batch of such ids (40031)
        await squatter.publish([OutboundMessage("ai-noise", "x", None, guess)])

    await run.write({"type": "finish"})
    await run.end()

    info = await handle.wait_ended(timeout=2)
    assert info.status == "complete"
    ours = [r for r in run_records(broker, run.run_id) if r.client_id == "agent"]
    assert [describe(r)[1] for r in ours if r.name == "ai-output"][-1] == "finish"


async def test_a_publish_taken_for_someone_elses_duplicate_is_a_clear_error(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    """Were an id ever predicted, the broker would acknowledge the agent's publish as a copy
    of the squatter's message and deliver nothing: the agent says so instead of believing
    the run ended."""
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    await run.start()
    await run.flush()
    mallory = broker.channel(SESSION, client_id="mallory")
    await mallory.attach()
    seen = asyncio.Event()
    agent.channel.subscribe(lambda m: seen.set() if m.client_id == "mallory" else None)
    await mallory.publish([OutboundMessage("ai-noise", "x", None, "taken-id")])
    await seen.wait()
    run._next_id = lambda: "taken-id"  # type: ignore[method-assign]  # a predicted id

    with pytest.raises(ChannelError, match="duplicate of message"):
        await run.end()


async def test_a_cancelled_history_scan_stops_instead_of_retrying() -> None:
    """The live input won the race: the scan is cancelled, and history is not read again."""
    from langgraph_interrupt.transport._trigger import scan_history

    calls = 0
    reading = asyncio.Event()

    class SlowHistory:
        async def history(self, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            reading.set()
            await asyncio.Event().wait()

    scan = asyncio.create_task(scan_history(SlowHistory(), "e-1", max_pages=5,  # type: ignore[arg-type]
                                            page_size=10))
    await reading.wait()
    scan.cancel()
    with pytest.raises(asyncio.CancelledError):
        await scan
    assert calls == 1
