"""``prewarm`` over the real ably-python SDK and the offline broker's
``[meta]channel.lifecycle``: the client opening its channel opens the agent's session, and
the first turn's POST is then answered without the agent attaching."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from ably import AblyRealtime

from langgraph_interrupt import ClientSession, Run
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.server import AgentRequest, create_agent_app
from langgraph_interrupt.testing.ably_broker import AblyBroker

SESSION = "ai:prewarm-ably"


async def answer() -> AsyncIterator[dict[str, Any]]:
    yield {"type": "start"}
    yield {"type": "text-start", "id": "t0"}
    yield {"type": "text-delta", "id": "t0", "delta": "hi"}
    yield {"type": "text-end", "id": "t0"}
    yield {"type": "finish", "finishReason": "stop"}


async def agent(run: Run, request: AgentRequest) -> None:
    await run.start()
    await run.end(await run.pipe(answer()))


async def test_a_client_opening_its_channel_prewarms_the_session_over_ably(
        ably_broker: AblyBroker) -> None:
    agent_ably = AblyRealtime(**ably_broker.python_client_options("agent"))
    user_ably = AblyRealtime(**ably_broker.python_client_options("user-1"))
    made: list[AblyChannel] = []
    opened = asyncio.Event()

    def factory(name: str) -> AblyChannel:
        channel = AblyChannel(agent_ably, name)
        made.append(channel)
        if name == SESSION:
            opened.set()
        return channel

    app = create_agent_app(agent, channel_factory=factory, prewarm=True)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as http:
            client = ClientSession(AblyChannel(user_ably, SESSION))
            await client.connect()  # the page loads
            await asyncio.wait_for(opened.wait(), 10)
            session = app.state.agent_endpoint.sessions.sessions[SESSION]
            seen = asyncio.Event()
            session.channel.subscribe(lambda m: seen.set() if m.name == "ai-input" else None)

            handle = await client.send("hello")
            await asyncio.wait_for(seen.wait(), 10)
            response = await http.post("/api/chat", json=handle.invocation.to_json())

            assert response.status_code == 200
            started = await handle.wait_started(timeout=10)
            assert response.json()["runId"] == started.run_id
            assert (await handle.wait_ended(timeout=10)).status == "complete"
            assert [c.name for c in made] == ["[meta]channel.lifecycle", SESSION]
            await client.close()
    finally:
        await agent_ably.close()
        await user_ably.close()
