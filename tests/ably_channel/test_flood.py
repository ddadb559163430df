"""A hostile participant floods the session channel while a real run streams.

10,000 seeded malformed or forged messages (every protocol name, garbage and oversized
headers, forged lifecycle and outputs naming the live run) on the in-memory broker, and the
same through the offline broker with the real ably-python SDK. The agent lets only a run's
owner cancel it (an ``on_cancel`` hook, as docs/frontend.md's server does). The run must end
as it should in the live view and for a late joiner, nothing may raise, and the library's
own indexes must stay bounded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    Channel,
    ChannelError,
    ClientSession,
    InMemoryBroker,
    OutboundMessage,
)
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.testing import ScriptedStream
from langgraph_interrupt.testing.ably_broker import AblyBroker

SESSION = "ai:flood"
FLOOD = 10_000
TOKENS = [f"t{i} " for i in range(12)]
NAMES = ["ai-input", "ai-cancel", "ai-output", "ai-run-start", "ai-run-resume", "ai-run-end",
         "ai-run-suspend", "ai-step-start", "ai-step-end", "ai-unknown", "chat", ""]
KEYS = ["run-id", "event-id", "codec-message-id", "input-codec-message-id", "role", "stream",
        "status", "stream-id", "run-reason", "error-code", "step-id", "invocation-id", "x"]


def hostile(rng: random.Random, run_id: str, input_id: str) -> OutboundMessage:
    """One malformed or forged message; about a third name the live run."""
    def value() -> Any:
        return rng.choice([None, True, 7, -1, "", "x" * rng.randint(1, 40), run_id, input_id,
                           ["a"], {"nested": {"deep": 1}}, "x" * 2_000])

    headers: Any = {rng.choice(KEYS): value() for _ in range(rng.randint(0, 6))}
    if rng.random() < 0.35:
        headers.update({"run-id": run_id, "input-codec-message-id": input_id,
                        "run-reason": rng.choice(["complete", "error", "cancelled", "?"])})
    extras: Any = rng.choice([
        None, {"ai": {"transport": headers}},
        {"ai": {"transport": headers, "codec": {rng.choice(KEYS): value(), "kind": value()}}},
        {"ai": value()}, {"ai": {"transport": value()}}, {"other": value()}])
    data = rng.choice([None, "", "x" * rng.randint(1, 40), run_id, {"nested": value()},
                       [value()], "x" * 2_000])  # what Ably takes as data: text, JSON, nothing
    return OutboundMessage(rng.choice(NAMES), data, extras)


async def flood_during_a_run(open_channel: Callable[[str], Awaitable[Channel]],
                             batch: int) -> tuple[AgentSession, ClientSession, str, str]:
    # Only the run's owner may stop it: without a hook every cancel is accepted (by design),
    # and the flood's forged ai-cancel messages would (rightly) stop the run.
    agent = AgentSession(await open_channel("agent"),
                         on_cancel=lambda request: request.client_id == request.run.run_client_id)
    client = ClientSession(await open_channel("user-abc"), agents={"agent"})
    await agent.connect()
    await client.connect()
    handle = await client.send("tell me")
    run = agent.create_run(handle.invocation)
    await run.start()
    stream = ScriptedStream(TOKENS, hold_at=4)
    pipe_task = asyncio.create_task(run.pipe(stream))
    await stream.holding.wait()

    mallory = await open_channel("mallory")
    await mallory.attach()
    rng = random.Random(20261206)
    messages = [hostile(rng, run.run_id, handle.codec_message_id) for _ in range(FLOOD)]
    refused = 0
    for start in range(0, FLOOD, batch):
        try:
            await mallory.publish(messages[start:start + batch])
        except ChannelError:  # the service refuses some (size limits): fine, keep going
            refused += 1
    assert refused < FLOOD // batch, "most of the flood reached the channel"
    stream.release()
    result = await pipe_task
    await run.end(result)
    assert result.reason == "complete"
    await mallory.detach()
    return agent, client, run.run_id, handle.codec_message_id


def assert_run_intact(client: ClientSession, run_id: str) -> None:
    info = client.run(run_id)
    assert info is not None and info.status == "complete", info
    texts = [part.get("text") for message in client.messages if message["role"] == "assistant"
             for part in message["parts"] if part.get("type") == "text"]
    assert "".join(TOKENS) in texts, "the run's answer, whole, in the view"


async def check(open_channel: Callable[[str], Awaitable[Channel]], batch: int) -> None:
    agent, client, run_id, _ = await flood_during_a_run(open_channel, batch)
    await client.wait_run_ended(run_id, timeout=30)
    assert_run_intact(client, run_id)
    # A late joiner folds the flood from history (it reads past the 10,000 messages).
    late = ClientSession(await open_channel("late"), max_history_pages=150)
    await late.connect()
    assert_run_intact(late, run_id)
    # The library's own structures stay bounded whatever the flood indexed or buffered.
    assert len(agent._inputs) <= 1000 and len(agent._early) <= 200 and not agent._runs
    assert len(client._forgers) <= 1000 and len(client.received) <= 1000
    for session in (agent, client, late):
        await session.close()


async def test_a_flood_on_the_in_memory_broker_changes_nothing_for_a_live_run() -> None:
    broker = InMemoryBroker()

    async def open_channel(client_id: str) -> Channel:
        return broker.channel(SESSION, client_id=client_id)

    await check(open_channel, batch=1)


@pytest.mark.timeout(120)
async def test_a_flood_through_the_real_sdk_changes_nothing_for_a_live_run() -> None:
    from ably import AblyRealtime

    clients: list[Any] = []
    # The offline broker keeps 10,000 messages a channel by default (Ably keeps them for
    # hours): the flood would evict the run's own stream message, and its appends fail.
    async with AblyBroker(history_limit=50_000) as broker:

        async def open_channel(client_id: str) -> Channel:
            client = AblyRealtime(**broker.python_client_options(client_id))
            clients.append(client)
            return AblyChannel(client, SESSION)

        try:
            await check(open_channel, batch=10)
        finally:
            for client in clients:
                await client.close()
