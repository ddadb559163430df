"""Conditional interruption, run deadlines and interruption metrics (transport level).

``on_cancel`` decides with the run's facts (elapsed, tokens, node, generating) and may
answer "drain"; a run deadline cancels with reason ``timeout``; every interrupted run gets
a timeline (requested → received → aborted → stopped → published) on the run, a callback,
the logs and an OpenTelemetry span event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    AITransportError,
    CancelRequest,
    ClientSession,
    InMemoryBroker,
    Run,
)
from langgraph_interrupt.testing import ScriptedStream
from tests.conftest import SESSION
from tests.helpers import TOKENS, run_records, start_streaming, transport


async def _agent(broker: InMemoryBroker, **options: Any) -> AgentSession:
    session = AgentSession(broker.channel(SESSION, client_id="agent"), trigger_timeout=1.0,
                           **options)
    await session.connect()
    return session


async def test_on_cancel_decides_with_the_runs_progress(
        broker: InMemoryBroker, client: ClientSession) -> None:
    seen: list[tuple[float, int, str | None, bool, str]] = []
    asked = asyncio.Event()

    def almost_done_finishes(request: CancelRequest) -> bool:
        seen.append((request.elapsed, request.tokens, request.node, request.generating,
                     request.reason))
        asked.set()
        return request.tokens < 3  # an answer this far along is let finish

    agent = await _agent(broker, on_cancel=almost_done_finishes)
    run, stream, task = await start_streaming(client, agent, hold_at=3)
    await client.cancel(run.run_id, reason="user_speaking")
    await asked.wait()
    stream.release()
    result = await task
    assert result.reason == "complete", "the hook let the almost finished answer finish"
    elapsed, tokens, node, generating, reason = seen[0]
    assert elapsed > 0 and tokens == 3 and node is None and generating
    assert reason == "user_speaking"
    assert not run.progress.generating and run.progress.tokens == len(TOKENS)
    await agent.close()


async def test_drain_lets_the_piped_answer_finish_then_ends_cancelled(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, on_cancel=lambda request: "drain")
    run, stream, task = await start_streaming(client, agent, hold_at=3)
    await client.cancel(run.run_id)
    await run.signal.wait()
    assert not stream.finalised.is_set(), "a drain does not stop the source"
    stream.release()
    result = await task
    assert result.reason == "cancelled"
    assert result.cancel_reason is not None and result.cancel_reason.drain
    assert client.messages[-1]["parts"][-1]["text"] == "".join(TOKENS)
    ended = await client.wait_run_ended(run.run_id, timeout=2)
    assert ended.status == "cancelled"
    await agent.close()


async def test_a_hook_answer_that_is_not_a_decision_is_a_rejection_and_reported(
        broker: InMemoryBroker, client: ClientSession) -> None:
    errors: list[AITransportError] = []
    reported = asyncio.Event()

    def on_error(error: AITransportError) -> None:
        errors.append(error)
        reported.set()

    agent = await _agent(broker, on_cancel=lambda request: "maybe", on_error=on_error)
    run, stream, task = await start_streaming(client, agent)
    await client.cancel(run.run_id)
    await reported.wait()
    assert errors[0].code == 104002 and "'maybe'" in errors[0].message
    stream.release()
    assert (await task).reason == "complete"
    await agent.close()


async def test_an_async_hook_may_drain_too(
        broker: InMemoryBroker, client: ClientSession) -> None:
    async def drain(request: CancelRequest) -> str:
        return "drain"

    agent = await _agent(broker, on_cancel=drain)
    run, stream, task = await start_streaming(client, agent)
    await client.cancel(run.run_id)
    await run.signal.wait()
    stream.release()
    result = await task
    assert result.reason == "cancelled" and result.cancel_reason is not None
    assert result.cancel_reason.drain
    await agent.close()


async def test_a_run_deadline_cancels_with_reason_timeout(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, run_timeout=0.01)
    run, _, task = await start_streaming(client, agent)  # holds forever: only the deadline
    result = await task
    assert result.reason == "cancelled"
    assert result.cancel_reason is not None
    assert (result.cancel_reason.source, result.cancel_reason.name) == ("timeout", "timeout")
    ends = [transport(r) for r in run_records(broker, run.run_id) if r.name == "ai-run-end"]
    assert ends[0]["x-cancel-reason"] == "timeout"
    await agent.close()


async def test_a_per_run_deadline_overrides_and_ends_with_the_run(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = await _agent(broker, run_timeout=3600)
    handle = await client.send("quick one")
    run = agent.create_run(handle.invocation, timeout=3600)
    async with run:
        await run.pipe(ScriptedStream(TOKENS[:2]))
    assert run._deadline is not None and run._deadline.cancelled(), "no timer outlives it"
    fast, _, task = await start_streaming(client, agent, timeout=0.01)
    assert (await task).cancel_reason is not None and fast.signal.reason is not None
    assert fast.signal.reason.source == "timeout"
    with pytest.raises(ValueError, match="run_timeout must be positive"):
        AgentSession(broker.channel(SESSION), run_timeout=0)
    await agent.close()


async def test_an_interrupted_run_reports_its_timeline_everywhere(
        broker: InMemoryBroker, client: ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    reported: list[tuple[Run, Any]] = []
    agent = await _agent(broker, on_interrupted=lambda run, timeline: reported.append(
        (run, timeline)))
    with tracer.start_as_current_span("agent turn"):
        run, _, task = await start_streaming(client, agent)
        with caplog.at_level(logging.INFO, logger="langgraph_interrupt.transport"):
            await client.cancel(run.run_id, reason="user_speaking")
            result = await task
    timeline = run.interruption
    assert timeline is not None and reported == [(run, timeline)]
    assert result.interruption == timeline, "the pipe's result carries it, complete"
    assert (timeline.reason, timeline.requester) == ("user_speaking", "user-abc")
    marks = [timeline.requested_at, timeline.received_at, timeline.aborted_at,
             timeline.stopped_at, timeline.published_at]
    assert None not in marks and marks == sorted(marks), marks  # type: ignore[type-var]
    assert timeline.total is not None and timeline.total >= 0
    records = [r for r in caplog.records if hasattr(r, "interruption")]
    assert len(records) == 1 and records[0].interruption["reason"] == "user_speaking"
    events = [e for span in exporter.get_finished_spans() for e in span.events]
    assert [e.name for e in events] == ["langgraph_interrupt.run_interrupted"]
    assert events[0].attributes["langgraph_interrupt.reason"] == "user_speaking"
    assert events[0].attributes["langgraph_interrupt.run_id"] == run.run_id
    await agent.close()


async def test_a_run_that_was_not_cancelled_has_no_timeline(
        client: ClientSession, agent: AgentSession) -> None:
    handle = await client.send("hi")
    run = agent.create_run(handle.invocation)
    async with run:
        result = await run.pipe(ScriptedStream(TOKENS[:2]))
    assert run.interruption is None and result.interruption is None
