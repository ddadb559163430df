"""The POST path has no fixed wait: it costs one read of the channel, and no timer decides it.

``Gated`` wraps the agent's channel so the test decides when an attach or a history read
completes, and the timers this package's code schedules are recorded when they fire, so "no
timer" is checked, not timed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from langgraph_interrupt import ClientSession, InMemoryBroker
from langgraph_interrupt.channels import Channel

from .conftest import ScriptedAgent


class Gated:
    """The agent's channel, with attach and history held until :attr:`gate` is set."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.started: list[str] = []
        self.first_started = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _start(self, what: str) -> None:
        self.started.append(what)
        self.first_started.set()

    async def attach(self, **options: Any) -> str | None:
        self._start("attach")
        await self.gate.wait()
        return await self.inner.attach(**options)

    async def history(self, **options: Any) -> Any:
        self._start(f"history until_attach={options.get('until_attach')}")
        await self.gate.wait()
        return await self.inner.history(**options)


@pytest.fixture
async def timers() -> AsyncIterator[list[tuple[float, str]]]:
    """Timers of this package's code that fired: (delay, where). A bound that is cancelled
    when the awaited thing happens (trigger_timeout) never fires; a fixed wait does."""
    loop = asyncio.get_running_loop()
    fired: list[tuple[float, str]] = []
    call_at = loop.call_at

    def recording(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        frame = sys._getframe(1)
        while frame is not None:
            if "/langgraph_interrupt/" in frame.f_code.co_filename and getattr(
                    callback, "__name__", "") != "_close_idle":  # the idle timer, not the POST's
                where = (when - loop.time(), f"{frame.f_code.co_filename}:{frame.f_lineno}")

                def firing(*args: Any, callback: Any = callback, where: Any = where) -> Any:
                    fired.append(where)
                    return callback(*args)

                return call_at(when, firing, *args, **kwargs)
            frame = frame.f_back  # type: ignore[assignment]
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = recording  # type: ignore[method-assign]
    yield fired
    loop.call_at = call_at  # type: ignore[method-assign]


async def test_a_first_turn_attaches_first_asks_for_recent_messages_and_sets_no_timer(
        serve, client: ClientSession, broker: InMemoryBroker,
        timers: list[tuple[float, str]]) -> None:
    """The new session's attach asks for the newest earlier messages (Ably delivers them
    with the attach, so the input needs no history read); this backend ignores the hint,
    so history is read once the attach is done, bounded at the attach point."""
    gated = Gated(broker.channel("ai:test-session", client_id="agent"))
    attach_options: list[dict[str, Any]] = []
    runs_at_attach: list[int] = []
    attach = gated.attach

    async def recording(**options: Any) -> str | None:
        attach_options.append(options)
        runs_at_attach.append(len(served.endpoint.sessions.sessions["ai:test-session"].runs))
        return await attach(**options)

    gated.attach = recording  # type: ignore[method-assign]
    served = await serve(ScriptedAgent(), channel_factory=lambda name: gated)
    handle = await client.send("hi")  # in history by the time the agent attaches
    posting = asyncio.create_task(served.post(handle.invocation.to_json()))
    await gated.first_started.wait()
    assert gated.started == ["attach"], "no history read while attaching"
    assert attach_options == [{"serial": False, "recent": 10}]
    assert runs_at_attach == [0], "the ATTACH leaves before the request's run is made"
    gated.gate.set()
    response = await posting
    during = list(timers)

    assert response.status_code == 200
    assert gated.started == ["attach", "history until_attach=True"]
    assert response.json()["runId"] == (await handle.wait_started(timeout=5)).run_id
    assert [t for t in during if "/server/" in t[1] or "/transport/_session" in t[1]] == []


async def test_a_next_turn_with_its_input_live_answers_with_no_timer_and_no_read(
        serve, client: ClientSession, broker: InMemoryBroker,
        timers: list[tuple[float, str]]) -> None:
    served = await serve(ScriptedAgent())
    first = await client.send("hi")
    await served.post(first.invocation.to_json())
    await first.wait_ended(timeout=5)
    session = served.endpoint.sessions.sessions["ai:test-session"]
    seen = asyncio.Event()
    session.channel.subscribe(lambda m: seen.set() if m.name == "ai-input" else None)
    reads: list[object] = []
    history = session.channel.history
    session.channel.history = lambda **kw: reads.append(kw) or history(**kw)  # type: ignore[method-assign]
    timers.clear()

    handle = await client.send("and now?")
    await seen.wait()  # the agent's session has the input live
    response = await served.post(handle.invocation.to_json())
    during = list(timers)

    assert response.status_code == 200
    assert (await handle.wait_ended(timeout=5)).status == "complete"
    assert reads == [], "a live input needs no history read"
    assert [t for t in during if "/server/" in t[1] or "/transport/_session" in t[1]] == []


async def test_an_input_that_is_not_on_the_channel_gets_404_after_the_trigger_timeout(
        serve, broker: InMemoryBroker) -> None:
    served = await serve(ScriptedAgent(), session_options={"trigger_timeout": 0.05})
    body = {"inputEventId": "no-such-input", "sessionName": "ai:test-session"}

    response = await served.post(body)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == 104010
    assert served.endpoint.tasks == set(), "no agent was started"


class HeldInputs:
    """The agent's channel, holding back (or dropping) live ``ai-input`` deliveries."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.hold = False
        self.drop = False
        self.held: list[tuple[Any, Any]] = []
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def subscribe(self, listener: Any) -> Any:
        def filtered(message: Any) -> None:
            if message.name == "ai-input" and self.drop:
                return
            if message.name == "ai-input" and self.hold:
                self.held.append((listener, message))
                return
            listener(message)

        return self.inner.subscribe(filtered)

    def release(self) -> None:
        self.hold = False
        held, self.held = self.held, []
        for listener, message in held:
            listener(message)

    async def history(self, **options: Any) -> Any:
        self.reads += 1
        return await self.inner.history(**options)


async def _warm(serve: Any, client: ClientSession, broker: InMemoryBroker,
                **options: Any) -> tuple[Any, HeldInputs]:
    """An endpoint whose session is attached (a first turn done), its channel wrapped."""
    channel = HeldInputs(broker.channel("ai:test-session", client_id="agent"))
    served = await serve(ScriptedAgent(), channel_factory=lambda name: channel, **options)
    first = await client.send("hi")
    assert (await served.post(first.invocation.to_json())).status_code == 200
    await first.wait_ended(timeout=5)
    channel.reads = 0
    return served, channel


async def test_an_attached_session_waits_for_a_late_live_input_without_reading_history(
        serve, client: ClientSession, broker: InMemoryBroker,
        timers: list[tuple[float, str]]) -> None:
    """The POST arrives before its input (the usual race over a real network): the
    session is attached, so the input is on its way; no history read is started, and the
    bound on it never fires."""
    served, channel = await _warm(serve, client, broker)
    channel.hold = True
    handle = await client.send("and now?")
    session = served.endpoint.sessions.sessions["ai:test-session"]
    created = asyncio.Event()
    create_run = session.create_run

    def recording(*args: Any, **kwargs: Any) -> Any:
        created.set()  # the POST then looks for its input before it yields
        return create_run(*args, **kwargs)

    session.create_run = recording  # type: ignore[method-assign]
    timers.clear()
    posting = asyncio.create_task(served.post(handle.invocation.to_json()))
    await created.wait()
    assert session._inputs._waiters, "the POST waits for its input"
    channel.release()
    response = await posting

    assert response.status_code == 200
    assert (await handle.wait_ended(timeout=5)).status == "complete"
    assert channel.reads == 0, "no history read raced the live input"
    assert [t for t in timers if "/transport/_session" in t[1]] == []


async def test_an_attached_session_finds_an_input_from_before_its_attach_in_history(
        serve, client: ClientSession, broker: InMemoryBroker) -> None:
    """An input published before the session attached (and not delivered with the attach:
    this backend ignores ``recent``) is read from history once the short grace has passed,
    well within the trigger timeout."""
    channel = HeldInputs(broker.channel("ai:test-session", client_id="agent"))
    served = await serve(ScriptedAgent(), channel_factory=lambda name: channel)
    handle = await client.send("hi")  # before the agent's session exists
    served.endpoint.sessions.warm("ai:test-session")
    warming = served.endpoint.sessions._warmer
    assert warming is not None
    await warming
    await served.endpoint.sessions.sessions["ai:test-session"].connect()  # attached

    response = await served.post(handle.invocation.to_json())

    assert response.status_code == 200
    assert channel.reads == 1
    assert response.json()["runId"] == (await handle.wait_started(timeout=5)).run_id
