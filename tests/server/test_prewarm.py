"""``prewarm``: the endpoint opens a session when a client opens its channel, so the first
turn of a conversation is answered from what the session already saw, with no attach and
no history read in the POST's path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from langgraph_interrupt import ClientSession, InMemoryBroker
from langgraph_interrupt._wire import ChannelMessage, opened_channel
from langgraph_interrupt.channels import InMemoryChannel

from .conftest import ScriptedAgent, Served


class Factory:
    """The agent's channel factory on the in-memory broker, recording what it made."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self.broker = broker
        self.made: dict[str, list[InMemoryChannel]] = {}
        self.changed = asyncio.Event()

    def __call__(self, name: str) -> InMemoryChannel:
        channel = self.broker.channel(name, client_id="agent")
        self.made.setdefault(name, []).append(channel)
        self.changed.set()
        return channel

    async def wait_made(self, name: str) -> InMemoryChannel:
        while name not in self.made:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5)
        return self.made[name][0]


@pytest.fixture
async def clients(broker: InMemoryBroker) -> AsyncIterator[Callable[[str], Any]]:
    opened: list[ClientSession] = []

    async def open_(name: str) -> ClientSession:
        session = ClientSession(broker.channel(name, client_id="user-abc"))
        await session.connect()
        opened.append(session)
        return session

    yield open_
    for session in opened:
        await session.close()


async def _opened_seen(broker: InMemoryBroker, name: str) -> asyncio.Event:
    """Set when a lifecycle watcher attached after the endpoint's sees ``name`` opened: the
    endpoint's watcher has had the event by then (deliveries go in attach order)."""
    seen = asyncio.Event()
    watcher = broker.channel("[meta]channel.lifecycle", client_id="test")
    watcher.subscribe(lambda m: seen.set() if opened_channel(m) == name else None)
    await watcher.attach()
    return seen


async def _warmed(pool: Any) -> None:
    """Wait until the pool has taken every name it was asked to prewarm."""
    if pool._warmer is not None:
        await pool._warmer


async def _input_seen(served: Served, name: str) -> asyncio.Event:
    seen = asyncio.Event()
    session = served.endpoint.sessions.sessions[name]
    session.channel.subscribe(lambda m: seen.set() if m.name == "ai-input" else None)
    return seen


async def test_a_client_opening_its_channel_opens_the_session_before_any_post(
        serve, broker: InMemoryBroker, clients) -> None:
    factory = Factory(broker)
    served = await serve(ScriptedAgent(), channel_factory=factory, prewarm=True)
    assert factory.made.keys() == {"[meta]channel.lifecycle"}

    client = await clients("ai:chat-1")  # the page loads: its channel opens
    agent_channel = await factory.wait_made("ai:chat-1")
    seen = await _input_seen(served, "ai:chat-1")
    reads: list[Any] = []
    history, attach = agent_channel.history, agent_channel.attach
    agent_channel.history = lambda **kw: reads.append(("history", kw)) or history(**kw)  # type: ignore[method-assign]
    agent_channel.attach = lambda **kw: reads.append(("attach", kw)) or attach(**kw)  # type: ignore[method-assign]

    handle = await client.send("hi")
    await seen.wait()  # the prewarmed session has the input live
    response = await served.post(handle.invocation.to_json())

    assert response.status_code == 200
    assert response.json()["runId"] == (await handle.wait_started(timeout=5)).run_id
    assert (await handle.wait_ended(timeout=5)).status == "complete"
    assert reads == [], "the first turn needed no attach and no history read"
    assert len(factory.made["ai:chat-1"]) == 1


async def test_prewarming_follows_the_policy_and_makes_room_by_closing_idle_sessions(
        serve, broker: InMemoryBroker, clients, caplog) -> None:
    factory = Factory(broker)
    served = await serve(ScriptedAgent(), channel_factory=factory, prewarm=True,
                         allow_session=lambda name: name.startswith("ai:"),
                         max_warm_sessions=2)
    pool = served.endpoint.sessions
    caplog.set_level(logging.DEBUG, logger="langgraph_interrupt.server")

    async def warmed(*names: str) -> None:
        for name in names:
            await clients(name)
        await factory.wait_made(names[-1])
        await _warmed(pool)  # every name taken, in order

    await warmed("lobby", "ai:one", "ai:two", "ai:three")
    assert "lobby" not in factory.made, "the policy refused it before a channel was made"
    assert sorted(pool.sessions) == ["ai:three", "ai:two"], "ai:one, idle longest, went"

    for name in ("ai:two", "ai:three"):
        await pool.acquire(name)  # both in use now
    seen = await _opened_seen(broker, "ai:four")
    await clients("ai:four")
    await seen.wait()
    await _warmed(pool)
    assert sorted(pool.sessions) == ["ai:three", "ai:two"], "a session in use never goes"
    assert any("ai:four" in r.getMessage() and "none idle" in r.getMessage()
               for r in caplog.records)
    for name in ("ai:two", "ai:three"):
        pool.release(name)


async def test_a_prewarmed_session_idles_out_like_any_other(
        serve, broker: InMemoryBroker, clients) -> None:
    factory = Factory(broker)
    served = await serve(ScriptedAgent(), channel_factory=factory, prewarm=True,
                         session_idle_timeout=0.01)
    await clients("ai:chat-1")
    agent_channel = await factory.wait_made("ai:chat-1")
    closed = asyncio.Event()
    detach = agent_channel.detach

    async def detaching() -> None:
        await detach()
        closed.set()

    agent_channel.detach = detaching  # type: ignore[method-assign]
    await asyncio.wait_for(closed.wait(), 5)
    assert "ai:chat-1" not in served.endpoint.sessions.sessions


async def test_hostile_or_malformed_lifecycle_events_are_skipped(
        serve, broker: InMemoryBroker, caplog) -> None:
    """Nobody may publish on a metachannel; a backend that let them through (or a changed
    payload) must not open odd sessions or stop the warmer."""
    factory = Factory(broker)
    served = await serve(ScriptedAgent(), channel_factory=factory, prewarm=True)
    warmer = served.endpoint.warmer
    assert warmer is not None
    for data in (None, "ai:x", {"channelId": 7}, {"channelId": ""},
                 {"channelId": "[meta]log"}, {"no": "id"}):
        warmer._on_message(ChannelMessage("channel.opened", data, None, "s"))
    warmer._on_message(ChannelMessage("channel.closed", {"channelId": "ai:y"}, None, "s"))
    warmer._on_message(ChannelMessage("channel.opened", {"channelId": "ai:ok"}, None, "s"))
    await factory.wait_made("ai:ok")

    assert set(factory.made) == {"[meta]channel.lifecycle", "ai:ok"}


async def test_a_lifecycle_channel_that_cannot_be_attached_leaves_prewarm_off(
        serve, broker: InMemoryBroker, client: ClientSession, caplog) -> None:
    lifecycle = broker.channel("[meta]channel.lifecycle", client_id="agent")
    lifecycle.crash()  # attaching fails (80003)
    served = await serve(ScriptedAgent(), prewarm=lifecycle)

    handle = await client.send("hi")
    response = await served.post(handle.invocation.to_json())

    assert response.status_code == 200
    assert any("prewarm is off" in r.getMessage() for r in caplog.records)


async def test_without_idle_timeout_prewarming_still_makes_room_and_zero_turns_it_off(
        serve, broker: InMemoryBroker, clients) -> None:
    factory = Factory(broker)
    served = await serve(ScriptedAgent(), channel_factory=factory, prewarm=True,
                         session_idle_timeout=None, max_warm_sessions=1)
    pool = served.endpoint.sessions
    for name in ("ai:one", "ai:two"):
        await clients(name)
        await factory.wait_made(name)
        await _warmed(pool)
    assert sorted(pool.sessions) == ["ai:two"], "ai:one, idle, made room"

    off = Factory(broker)
    unwarmed = await serve(ScriptedAgent(), channel_factory=off, prewarm=True,
                           max_warm_sessions=0)
    seen = await _opened_seen(broker, "ai:three")
    await clients("ai:three")
    await seen.wait()
    assert unwarmed.endpoint.sessions._warmer is None, "nothing was asked to open"
    assert set(off.made) == {"[meta]channel.lifecycle"}
