"""Endpoint sessions: closed when idle, never under a run, reopened only after they detached."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph_interrupt import ClientSession, InMemoryBroker

from ..conftest import SESSION
from .conftest import ScriptedAgent


class TrackedChannel:
    """An in-memory channel handle that records its detaches (optionally held at a gate)."""

    def __init__(self, inner: Any, log: list[str], gate: asyncio.Event | None = None) -> None:
        self._inner = inner
        self._log = log
        self._gate = gate
        self.detaching = asyncio.Event()
        self.detached = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def detach(self) -> None:
        self._log.append("detach")
        self.detaching.set()
        if self._gate is not None:
            await self._gate.wait()
        await self._inner.detach()
        self._log.append("detached")
        self.detached.set()


def tracked(broker: InMemoryBroker, log: list[str], channels: list[TrackedChannel],
            gate: asyncio.Event | None = None):
    def factory(name: str) -> TrackedChannel:
        log.append("open")
        channel = TrackedChannel(broker.channel(name, client_id="agent"), log, gate)
        channels.append(channel)
        return channel
    return factory


async def test_an_idle_session_is_closed_and_opened_again_by_the_next_request(
        serve, client: ClientSession, broker) -> None:
    log: list[str] = []
    channels: list[TrackedChannel] = []
    served = await serve(ScriptedAgent(), channel_factory=tracked(broker, log, channels),
                         session_idle_timeout=0.01)
    first = await client.send("hi")
    await served.post(first.invocation.to_json())
    assert (await first.wait_ended(timeout=5)).status == "complete"

    await asyncio.wait_for(channels[0].detached.wait(), 5)  # no run for the idle timeout: detached
    assert served.endpoint.sessions.sessions == {}
    second = await client.send("again")
    await served.post(second.invocation.to_json())

    assert (await second.wait_ended(timeout=5)).status == "complete"
    assert log[:4] == ["open", "detach", "detached", "open"]


async def test_a_session_is_not_closed_while_a_run_uses_it(serve, client, broker) -> None:
    log: list[str] = []
    channels: list[TrackedChannel] = []
    agent = ScriptedAgent(hold_at=1)
    served = await serve(agent, channel_factory=tracked(broker, log, channels),
                         session_idle_timeout=0.01)
    pool = served.endpoint.sessions
    handle = await client.send("hi")
    await served.post(handle.invocation.to_json())
    await agent.held()

    pool._close_idle(SESSION)  # as if an idle timer fired now: the run holds the session
    assert SESSION in pool.sessions
    assert pool._timers == {}
    agent.streams[0].release()

    assert (await handle.wait_ended(timeout=5)).status == "complete"
    await asyncio.wait_for(channels[0].detached.wait(), 5)  # idle only once the agent returned
    assert log == ["open", "detach", "detached"]


async def test_a_session_is_opened_again_only_after_the_idle_one_detached(
        serve, client, broker) -> None:
    log: list[str] = []
    channels: list[TrackedChannel] = []
    gate = asyncio.Event()
    served = await serve(ScriptedAgent(), channel_factory=tracked(broker, log, channels, gate),
                         session_idle_timeout=0.01)
    pool = served.endpoint.sessions
    first = await client.send("hi")
    await served.post(first.invocation.to_json())
    await first.wait_ended(timeout=5)
    await asyncio.wait_for(channels[0].detaching.wait(), 5)  # idle close begun, held at the gate
    opening = asyncio.Event()
    real_open = pool._open

    def open_(name: str):
        opening.set()
        return real_open(name)

    pool._open = open_  # type: ignore[method-assign]
    second = await client.send("again")
    posting = asyncio.create_task(served.post(second.invocation.to_json()))
    try:
        await opening.wait()
        await asyncio.sleep(0)  # one loop turn: the open task runs up to its first wait
        assert log == ["open", "detach"]  # it waits for the old detach; no new channel yet
    finally:
        gate.set()

    assert (await posting).status_code == 200
    assert (await second.wait_ended(timeout=5)).status == "complete"
    assert log[:4] == ["open", "detach", "detached", "open"]
