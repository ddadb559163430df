"""Wire conformance with the JS SDK's golden traces (``../shared/research/traces``).

Each test replays a scenario's client actions and the agent's chunk source against our
agent, then compares what our agent published with the trace's agent operations: in
order, operation kind, name, data, and transport/codec header keys and values. Ids and
serials are compared by role: both sides are renamed consistently (first appearance
order), so the check is that the two sequences are identical up to renaming of ids.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker, Run
from langgraph_interrupt.testing import text_chunks
from tests.conftest import SESSION

TRACES = Path(__file__).resolve().parents[2] / "shared" / "research" / "traces"
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                r"|\d{14}-\d+@[a-z]+:0")
OPS = {"publish": "publish", "appendMessage": "append", "updateMessage": "update",
       "append": "append", "update": "update"}


class Roles:
    """Consistent renaming of ids and serials to ``<id1>``, ``<id2>``, ... by first use."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _one(self, match: re.Match[str]) -> str:
        return self.names.setdefault(match.group(0), f"<id{len(self.names) + 1}>")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return ID.sub(self._one, value)
        if isinstance(value, Mapping):
            return {k: self(value[k]) for k in sorted(value)}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


def normalise(op: str, name: str | None, data: Any, extras: Mapping[str, Any] | None,
              roles: Roles) -> tuple[Any, ...]:
    extras = extras or {}
    ai = extras.get("ai", {})
    other = sorted(k for k in extras if k != "ai")
    # This package's extension headers (``x-``, e.g. a cancel's reason) are not in the
    # official agent's traces; the official client ignores them (tests/js checks that).
    transport = {key: value for key, value in ai.get("transport", {}).items()
                 if not key.startswith("x-")}
    return (OPS[op], name, roles(data if data is not None else ""),
            roles(transport), roles(ai.get("codec", {})), other)


def load(name: str) -> list[dict[str, Any]]:
    path = TRACES / f"{name}.jsonl"
    if not path.exists():
        pytest.fail(f"golden trace {path} is missing: the shared research folder must sit "
                    "next to the repository (../shared)")
    return [json.loads(line) for line in path.read_text().splitlines()]


def trace_ops(trace: list[dict[str, Any]], run_filter: str | None = None) -> list[tuple[Any, ...]]:
    roles = Roles()
    ops = []
    for r in trace:
        if r.get("kind") == "op" and r.get("actor") == "agent" and r["op"] in OPS:
            transport = r.get("extras", {}).get("ai", {}).get("transport", {})
            if run_filter is not None and transport.get("run-id") != run_filter:
                continue
            ops.append(normalise(r["op"], r.get("name"), r.get("data"), r.get("extras"), roles))
    return ops


def our_ops(broker: InMemoryBroker, run_id: str | None = None) -> list[tuple[Any, ...]]:
    roles = Roles()
    assert broker.records is not None
    ops = []
    for r in broker.records:
        if r.client_id != "agent":
            continue
        transport = (r.extras or {}).get("ai", {}).get("transport", {})
        if run_id is not None and transport.get("run-id") != run_id:
            continue
        ops.append(normalise(r.op, r.name, r.data, r.extras, roles))
    return ops


def chunk_segments(trace: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The agent's source chunks, one list per invocation (split at each client POST)."""
    segments: list[list[dict[str, Any]]] = []
    for r in trace:
        if r.get("kind") == "http" and r.get("op") == "POST /api/chat":
            segments.append([])
        elif r.get("kind") == "chunk" and segments:
            segments[-1].append(r["chunk"])
    return segments


async def serve(agent: AgentSession, client_handle: Any, chunks: Any,
                **kwargs: Any) -> Run:
    """The README agent pattern: create, start, pipe, then suspend or end."""
    run = agent.create_run(client_handle.invocation, **kwargs)
    await run.start()
    result = await run.pipe(chunks)
    if result.suspend_requested:
        await run.suspend()
    else:
        await run.end(result)
    return run


def per_request_agent(broker: InMemoryBroker) -> AgentSession:
    return AgentSession(broker.channel(SESSION, client_id="agent"))


async def test_a_simple_text_matches_the_trace(broker: InMemoryBroker,
                                                client: ClientSession) -> None:
    trace = load("a-simple-text")
    handle = await client.send({"id": "user-msg-1", "parts": [{"type": "text", "text": "hi"}]})
    async with per_request_agent(broker) as agent:
        await serve(agent, handle, chunk_segments(trace)[0])
    assert our_ops(broker) == trace_ops(trace)


async def test_b_server_tool_with_a_two_part_input_matches_the_trace(
        broker: InMemoryBroker, client: ClientSession) -> None:
    trace = load("b-server-tool")
    handle = await client.send({"id": "user-msg-1", "parts": [
        {"type": "text", "text": "weather in Paris?"},
        {"type": "file", "mediaType": "text/plain", "url": "data:text/plain;base64,SGVsbG8="}]})
    async with per_request_agent(broker) as agent:
        await serve(agent, handle, chunk_segments(trace)[0])
    assert our_ops(broker) == trace_ops(trace)


async def test_c1_cancel_by_run_id_matches_the_trace(broker: InMemoryBroker,
                                                     client: ClientSession) -> None:
    """The JS agent calls onCancel for each of the two cancels; we call our hook once (see
    test_cancellation.py). The wire is the same."""
    trace = load("c1-cancel-by-run-id")
    chunks = [c for c in chunk_segments(trace)[0] if c["type"] != "abort"]
    held = asyncio.Event()

    async def source() -> AsyncIterator[dict[str, Any]]:
        for chunk in chunks:
            yield chunk
        held.set()
        await asyncio.Event().wait()  # the model keeps "thinking" until cancelled

    async def note(run: Run, reason: object) -> None:
        await run.write({"type": "data-cancel-note", "data": {"note": "stopped by user"}})

    handle = await client.send({"id": "user-msg-1",
                                "parts": [{"type": "text", "text": "tell me a long story"}]})
    async with per_request_agent(broker) as agent:
        task = asyncio.create_task(serve(agent, handle, source(), on_cancelled=note))
        await held.wait()
        run_id = (await handle.wait_started(timeout=2)).run_id
        await client.cancel(run_id)
        await client.cancel(run_id)
        await task
    assert our_ops(broker) == trace_ops(trace)


async def test_c2_cancel_before_run_start_matches_the_trace(broker: InMemoryBroker,
                                                            client: ClientSession) -> None:
    trace = load("c2-cancel-before-run-start")
    async with per_request_agent(broker) as agent:  # long-lived: attached before the send
        handle = await client.send({"id": "user-msg-1",
                                    "parts": [{"type": "text", "text": "never mind"}]})
        await handle.cancel()
        await client.wait_for(lambda c: any(m.name == "ai-cancel" for m in c.received))
        await serve(agent, handle, text_chunks(["unused"]))
    assert our_ops(broker) == trace_ops(trace)


async def test_e1_client_tool_suspend_and_resume_matches_the_trace(
        broker: InMemoryBroker, client: ClientSession) -> None:
    trace = load("e1-client-tool-suspend-resume")
    first, second = chunk_segments(trace)
    handle = await client.send({"id": "user-msg-1",
                                "parts": [{"type": "text", "text": "where am I?"}]})
    async with per_request_agent(broker) as agent:
        run = await serve(agent, handle, first)
    assert run.state == "suspended"
    info = await client.wait_for(lambda c: c.run(run.run_id) if c.run(run.run_id) and
                                 c.run(run.run_id).status == "suspended" else None)
    assistant = client.decoder.entries()[-1].codec_message_id
    resume = await client.send_tool_result(run_id=info.run_id, codec_message_id=assistant,
                                           tool_call_id="call-loc-1", output={"city": "Paris"})
    async with per_request_agent(broker) as agent:
        resumed = await serve(agent, resume, second)
    assert resumed.run_id == run.run_id, "a continuation re-enters the same run"
    assert our_ops(broker) == trace_ops(trace)
    assert (await client.wait_run_ended(run.run_id, timeout=2)).status == "complete"


async def test_f_concurrent_runs_cancel_one_matches_the_trace_per_run(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """The interleaving of the two runs is timing-dependent in the trace too, so each run's
    operations are compared on their own."""
    trace = load("f-concurrent-runs-cancel-one")
    run_a_id = "00000000-0000-4000-8000-000000000003"
    run_b_id = "00000000-0000-4000-8000-000000000008"
    a_chunks = [{"type": "start"}, {"type": "start-step"}, {"type": "text-start", "id": "txt-a"},
                *({"type": "text-delta", "id": "txt-a", "delta": f"a{i} "} for i in range(3))]
    b_chunks = text_chunks([f"b{i} " for i in range(12)], text_id="txt-b")
    a_held = asyncio.Event()

    async def source_a() -> AsyncIterator[dict[str, Any]]:
        for chunk in a_chunks:
            yield chunk
        a_held.set()
        await asyncio.Event().wait()

    async with per_request_agent(broker) as agent:
        handle_a = await client.send({"id": "user-msg-A",
                                      "parts": [{"type": "text", "text": "first question"}]})
        task_a = asyncio.create_task(serve(agent, handle_a, source_a()))
        handle_b = await client.send({"id": "user-msg-B",
                                      "parts": [{"type": "text", "text": "second question"}]})
        await a_held.wait()
        run_a = (await handle_a.wait_started(timeout=2)).run_id
        await client.cancel(run_a)
        await task_a
        run_b = await serve(agent, handle_b, b_chunks)
    assert our_ops(broker, run_a) == trace_ops(trace, run_a_id)
    assert our_ops(broker, run_b.run_id) == trace_ops(trace, run_b_id)
