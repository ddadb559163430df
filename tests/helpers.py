"""Small helpers shared by the transport tests."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph_interrupt import (
    AgentSession,
    ClientSession,
    InMemoryBroker,
    PipeResult,
    Run,
    WireRecord,
)
from langgraph_interrupt.testing import ScriptedStream

TOKENS = [f"w{i} " for i in range(50)]


def transport(record: WireRecord) -> dict[str, str]:
    extras = record.extras or {}
    return dict(extras.get("ai", {}).get("transport", {}))


def codec(record: WireRecord) -> dict[str, str]:
    extras = record.extras or {}
    return dict(extras.get("ai", {}).get("codec", {}))


def run_records(broker: InMemoryBroker, run_id: str) -> list[WireRecord]:
    """Everything the agent published for ``run_id``, in publish order."""
    assert broker.records is not None
    return [r for r in broker.records if transport(r).get("run-id") == run_id
            and r.name not in ("ai-input", "ai-cancel")]


def describe(record: WireRecord) -> tuple[Any, ...]:
    """A compact, comparable summary of one agent operation."""
    t, c = transport(record), codec(record)
    if record.name in ("ai-step-end",):
        return ("ai-step-end", t["step-reason"])
    if record.name == "ai-run-end":
        return ("ai-run-end", t["run-reason"])
    if record.name and record.name != "ai-output":
        return (record.name,)
    if record.op in ("append", "update"):
        return (record.op, c.get("kind"), record.data, t.get("status"))
    return ("publish", c.get("kind"), t.get("status"))


async def start_streaming(
    client: ClientSession, agent: AgentSession, *, hold_at: int = 3, **run_kwargs: Any
) -> tuple[Run, ScriptedStream, asyncio.Task[PipeResult]]:
    """Send a message, start a run that streams :data:`TOKENS` and holds after ``hold_at``
    deltas (``async with run: run.pipe(...)`` in a task)."""
    handle = await client.send("tell me a long story")
    run = agent.create_run(handle.invocation, **run_kwargs)
    stream = ScriptedStream(TOKENS, hold_at=hold_at)

    async def drive() -> PipeResult:
        async with run:
            return await run.pipe(stream)

    task = asyncio.create_task(drive())
    await stream.holding.wait()
    return run, stream, task
