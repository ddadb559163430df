"""Fixtures for the agent endpoint: an app on the in-memory broker, driven over httpx.

``serve(agent, **options)`` builds the app with ``create_agent_app``, enters its lifespan
(httpx's ASGI transport does not run lifespans) and returns a :class:`Served` with an
``httpx.AsyncClient`` bound to it. Leaving the test (or ``await served.shutdown()``) runs
the app's shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from langgraph_interrupt import InMemoryBroker, PipeResult, Run
from langgraph_interrupt.server import AgentEndpoint, AgentRequest, create_agent_app
from langgraph_interrupt.testing import ScriptedStream

PATH = "/api/chat"


@dataclass
class Served:
    app: Any
    http: httpx.AsyncClient
    endpoint: AgentEndpoint
    stack: AsyncExitStack

    async def post(self, body: Any, **kw: Any) -> httpx.Response:
        return await self.http.post(PATH, json=body, **kw)

    async def agents_done(self) -> None:
        """Wait until every background agent task has returned."""
        await asyncio.gather(*self.endpoint.tasks)

    async def shutdown(self) -> None:
        await self.stack.aclose()


@pytest.fixture
async def serve(broker: InMemoryBroker) -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    stacks: list[AsyncExitStack] = []

    async def make(agent: Any, **options: Any) -> Served:
        options.setdefault("channel_factory",
                           lambda name: broker.channel(name, client_id="agent"))
        options.setdefault("session_options", {"trigger_timeout": 2.0})
        app = create_agent_app(agent, **options)
        stack = AsyncExitStack()
        stacks.append(stack)
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test"))
        return Served(app, http, app.state.agent_endpoint, stack)

    yield make
    for stack in reversed(stacks):
        await stack.aclose()


@dataclass
class ScriptedAgent:
    """An agent that streams one :class:`ScriptedStream` per run and records what it saw.

    ``gate``: when given, the agent waits for it before ``run.start()`` (a slow start).
    """

    tokens: list[str] = field(default_factory=lambda: ["Hello", ", ", "world"])
    hold_at: int | None = None
    fail_at: int | None = None
    gate: asyncio.Event | None = None
    requests: list[AgentRequest] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    streams: list[ScriptedStream] = field(default_factory=list)
    results: list[PipeResult] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def held(self, index: int = 0) -> ScriptedStream:
        """Wait until run ``index`` streams and its source holds at ``hold_at``."""
        while len(self.streams) <= index:
            self.called.clear()
            await self.called.wait()
        await self.streams[index].holding.wait()
        return self.streams[index]

    async def __call__(self, run: Run, request: AgentRequest) -> None:
        self.requests.append(request)
        self.runs.append(run)
        stream = ScriptedStream(self.tokens, hold_at=self.hold_at, fail_at=self.fail_at)
        self.streams.append(stream)
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        await run.start()
        result = await run.pipe(stream)
        self.results.append(result)
        await run.end(result)


def text_of(messages: list[dict[str, Any]]) -> str:
    """The text of the last assistant message."""
    assistant = [m for m in messages if m.get("role") == "assistant"]
    if not assistant:
        return ""
    return "".join(p.get("text", "") for p in assistant[-1]["parts"] if p.get("type") == "text")
