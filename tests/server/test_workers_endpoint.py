"""Two agent endpoints (workers) on one broker: ``create_agent_app(workers=...)``.

A run served by worker A ends ``error`` (50300) for the client when A dies; when A shuts
down cleanly (SIGTERM) its run ends ``cancelled`` and B has nothing to end. Across real
processes on the offline broker: ``tests/workers/``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph_interrupt import InMemoryBroker

from .conftest import ScriptedAgent


def _factory(broker: InMemoryBroker, handles: list[Any]) -> Any:
    def make(name: str) -> Any:
        handle = broker.channel(name, client_id="agent")
        handles.append(handle)
        return handle
    return make


async def test_a_run_of_a_worker_that_dies_ends_error_for_the_client(
        serve, client, broker) -> None:
    handles_a: list[Any] = []
    agent_a = ScriptedAgent(hold_at=1)
    served_a = await serve(agent_a, channel_factory=_factory(broker, handles_a),
                           workers="ai-workers", drain_timeout=0.05)
    served_b = await serve(ScriptedAgent(), workers="ai-workers")
    registry_b = served_b.endpoint.workers
    assert registry_b is not None and served_a.endpoint.workers is not None

    handle = await client.send("hi")
    run_id = (await served_a.post(handle.invocation.to_json())).json()["runId"]
    await agent_a.held()
    for channel in handles_a:  # kill -9: A publishes nothing more, its presence leaves
        channel.crash()

    info = await handle.wait_ended(timeout=5)
    assert (info.run_id, info.status, info.error_code) == (run_id, "error", 50300)
    assert registry_b.orphans_ended == 1


async def test_a_worker_shutting_down_leaves_nothing_for_the_others_to_end(
        serve, client, broker) -> None:
    agent_a = ScriptedAgent(hold_at=1)
    served_a = await serve(agent_a, workers="ai-workers", drain_timeout=0.05)
    served_b = await serve(ScriptedAgent(), workers="ai-workers")
    registry_b = served_b.endpoint.workers
    assert registry_b is not None
    left = asyncio.get_running_loop().create_future()
    registry_b.control.subscribe_presence(  # type: ignore[attr-defined]
        lambda event: event.action == "leave" and not left.done() and left.set_result(None))
    handle = await client.send("hi")
    await served_a.post(handle.invocation.to_json())
    await agent_a.held()

    await served_a.shutdown()
    await left  # B saw A go (after A's runs ended and A told it so)

    info = await handle.wait_ended(timeout=5)
    assert (info.status, info.cancel_reason) == ("cancelled", "shutdown")
    await asyncio.gather(*registry_b._tasks)
    assert registry_b.orphans_ended == 0 and not registry_b._runs
