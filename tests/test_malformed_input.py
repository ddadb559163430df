"""Hostile channel traffic is skipped, never raised, and never disturbs a streaming run."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langgraph_interrupt import (
    AgentSession,
    ChannelMessage,
    ClientSession,
    InMemoryBroker,
    OutboundMessage,
)
from langgraph_interrupt.testing import ScriptedStream

SESSION = "ai:hostile"
NAMES = st.sampled_from(["ai-input", "ai-cancel", "ai-output", "ai-run-start", "ai-run-end",
                         "ai-step-start", "ai-run-suspend", "ai-unknown", "chat", ""])
HEADER_KEYS = st.sampled_from(["run-id", "event-id", "codec-message-id", "input-codec-message-id",
                               "role", "stream", "status", "stream-id", "run-reason",
                               "error-code", "kind", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                    st.binary(max_size=8))
HEADER_VALUES = st.one_of(SCALARS, st.just("x" * 70_000),
                          st.lists(st.text(max_size=3), max_size=2))
HEADERS = st.one_of(SCALARS, st.dictionaries(HEADER_KEYS, HEADER_VALUES, max_size=6),
                    st.dictionaries(HEADER_KEYS, st.text(max_size=12), max_size=6))
# The service only accepts an object (or nothing) as extras; everything inside is fair game.
EXTRAS = st.one_of(
    st.none(),
    st.fixed_dictionaries({"ai": st.one_of(SCALARS, st.fixed_dictionaries(
        {"transport": HEADERS}, optional={"codec": HEADERS}))}),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
)
BAD_MESSAGES = st.lists(st.builds(OutboundMessage, NAMES, st.one_of(SCALARS, HEADERS), EXTRAS),
                        min_size=200, max_size=300)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(bad=BAD_MESSAGES)
def test_hundreds_of_malformed_messages_while_a_run_streams_do_not_disturb_it(
        bad: list[OutboundMessage]) -> None:
    asyncio.run(_scenario(bad))


async def _scenario(bad: list[OutboundMessage]) -> None:
    broker = InMemoryBroker()
    client = ClientSession(broker.channel(SESSION, client_id="user"))
    await client.connect()
    hostile = broker.channel(SESSION, client_id="hostile")
    await hostile.attach()
    async with AgentSession(broker.channel(SESSION, client_id="agent")) as agent:
        handle = await client.send("hi")
        tokens = [f"t{i} " for i in range(40)]
        stream = ScriptedStream(tokens, hold_at=20)
        run = agent.create_run(handle.invocation)

        async def drive() -> Any:
            async with run:
                return await run.pipe(stream)

        task = asyncio.create_task(drive())
        await stream.holding.wait()
        for message in bad:  # mid-stream, interleaved with nothing else
            await hostile.publish([message])
        stream.release()
        result = await task
        # Backends differ in how they treat a raising listener: call ours directly too.
        for i, message in enumerate(bad):
            for action in ("message.create", "message.append", "message.update"):
                delivered = ChannelMessage(message.name, message.data, message.extras,  # type: ignore[arg-type]
                                           f"x{i:06d}", action, f"x{i:06d}", "hostile")
                agent._on_message(delivered)
                client._on_message(delivered)
    assert result.reason == "complete"
    info = await handle.wait_ended(timeout=5)
    assert info.status == "complete"
    text = [m for m in client.messages if m["id"] != client.messages[0]["id"]]
    assert any(p.get("text") == "".join(tokens) for m in text for p in m["parts"])
    await client.close()
