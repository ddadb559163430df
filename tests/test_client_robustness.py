"""The Python ClientSession under failure and odd input (regressions found splitting it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from langgraph_interrupt import (
    ClientSession,
    InMemoryBroker,
    OutboundMessage,
    SessionClosedError,
)
from langgraph_interrupt._wire import make_extras
from tests.conftest import SESSION


def lifecycle(name: str, **headers: str) -> OutboundMessage:
    return OutboundMessage(name, None, make_extras({k.replace("_", "-"): v
                                                    for k, v in headers.items()}))


async def test_a_run_end_with_an_unreadable_error_code_still_ends_the_run(
        broker: InMemoryBroker, client: ClientSession) -> None:
    agent = broker.channel(SESSION, client_id="agent")
    await agent.publish([lifecycle("ai-run-start", run_id="r1")])
    for code in ("²", "9" * 5000):
        await agent.publish([lifecycle("ai-run-end", run_id="r1", run_reason="error",
                                       error_code=code)])
        info = await client.wait_run_ended("r1", timeout=2)
        assert (info.status, info.error_code) == ("error", 104008)


async def test_a_connect_that_failed_can_be_retried(broker: InMemoryBroker) -> None:
    channel = broker.channel(SESSION, client_id="user")
    real = channel.attach
    calls = 0

    async def flaky(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("attach failed")
        return await real(**kwargs)

    channel.attach = flaky  # type: ignore[method-assign]
    client = ClientSession(channel)
    with pytest.raises(ConnectionError):
        await client.connect()
    await client.connect()
    await broker.channel(SESSION, client_id="agent").publish(
        [lifecycle("ai-run-start", run_id="r1")])
    run = await client.wait_for(lambda c: c.run("r1"), timeout=2)
    assert calls == 2 and run.status == "active"
    await client.close()


async def test_a_second_concurrent_connect_returns_after_history_was_read(
        broker: InMemoryBroker) -> None:
    await broker.channel(SESSION, client_id="agent").publish(
        [lifecycle("ai-run-start", run_id="r1")])
    channel = broker.channel(SESSION, client_id="user")
    real = channel.history
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow(**kwargs: Any) -> Any:
        reading.set()
        await release.wait()
        return await real(**kwargs)

    channel.history = slow  # type: ignore[method-assign]
    client = ClientSession(channel)
    first = asyncio.create_task(client.connect())
    await reading.wait()
    second = asyncio.create_task(client.connect())
    await asyncio.sleep(0)  # one loop turn: the second caller must still be waiting
    assert not second.done()
    release.set()
    await second
    assert [run.run_id for run in client.runs] == ["r1"]
    await first
    await client.close()


async def test_waiting_on_a_closed_session_fails_at_once(broker: InMemoryBroker) -> None:
    client = ClientSession(broker.channel(SESSION, client_id="user"))
    await client.connect()
    await client.close()
    with pytest.raises(SessionClosedError):
        await client.wait_run_ended("r1")  # no timeout: it must not hang


async def test_the_first_cancel_request_is_kept_when_a_run_is_cancelled_both_ways(
        broker: InMemoryBroker, client: ClientSession) -> None:
    handle = await client.send("hi")
    before_first = time.monotonic()
    await client.cancel("r1")  # the id the POST answered with, before the run-start
    before_second = time.monotonic()
    await handle.cancel()  # later, by input
    agent = broker.channel(SESSION, client_id="agent")
    await agent.publish([lifecycle("ai-run-start", run_id="r1",
                                   input_codec_message_id=handle.codec_message_id)])
    await agent.publish([lifecycle("ai-run-end", run_id="r1", run_reason="cancelled")])
    info = await client.wait_run_ended("r1", timeout=2)
    assert info.cancel_requested_at is not None
    assert before_first <= info.cancel_requested_at < before_second, "the first request"


async def test_a_flood_of_run_starts_keeps_the_client_bounded_and_its_own_runs(
        broker: InMemoryBroker, client: ClientSession) -> None:
    from langgraph_interrupt.transport._run_view import MAX_RUNS

    agent = broker.channel(SESSION, client_id="agent")
    await agent.publish([lifecycle("ai-run-start", run_id="mine")])
    forger = broker.channel(SESSION, client_id="mallory")
    for batch in range(0, MAX_RUNS + 500, 250):
        await forger.publish([lifecycle("ai-run-start", run_id=f"forged-{i}")
                              for i in range(batch, batch + 250)])
        await forger.publish([lifecycle("ai-run-end", run_id=f"forged-{i}",
                                        run_reason="complete")
                              for i in range(batch, batch + 200)])  # most of them end
    await client.wait_for(lambda c: c.run(f"forged-{MAX_RUNS + 499}") is not None, timeout=5)
    assert len(client.runs) <= MAX_RUNS
    mine = client.run("mine")
    assert mine is not None and mine.status == "active", "ended runs went first"
