"""Workers watching each other over the real SDK and the offline broker's presence.

Worker A (its own ably-python connection) serves a run; its connection is cut off (the
broker's partition: no resume, as after ``kill -9``), its presence member leaves after the
broker's timeout, and worker B ends A's run: the client sees ``error`` 50300. A clean close
of A leaves B nothing to end. Across processes: ``tests/workers/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from ably import AblyRealtime

from langgraph_interrupt import AgentSession, ClientSession, WorkerRegistry
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.testing.ably_broker import AblyBroker
from tests.helpers import start_streaming

SESSION = "ai:workers-ably"
CONTROL = "ai-workers"


@pytest.fixture
async def broker() -> AsyncIterator[AblyBroker]:
    async with AblyBroker(presence_leave_timeout_ms=200) as broker:
        yield broker


async def test_a_cut_off_workers_run_is_ended_error_by_another_over_ably(
        broker: AblyBroker) -> None:
    clients = [AblyRealtime(**broker.python_client_options(client_id))
               for client_id in ("agent", "agent", "user-1")]
    worker_a, worker_b, user = clients
    try:
        registry_b = WorkerRegistry(AblyChannel(worker_b, CONTROL),
                                    lambda name: AblyChannel(worker_b, name), worker_id="b",
                                    backup_delay=0.0)
        await registry_b.start()
        registry_a = WorkerRegistry(AblyChannel(worker_a, CONTROL),
                                    lambda name: AblyChannel(worker_a, name), worker_id="a")
        await registry_a.start()
        agent_a = AgentSession(AblyChannel(worker_a, SESSION), workers=registry_a)
        client = ClientSession(AblyChannel(user, SESSION))
        await client.connect()
        told = asyncio.get_running_loop().create_future()
        registry_b.control.subscribe(  # after B's own listener: B has learnt it by then
            lambda m: m.name == "x-worker-runs" and not told.done() and told.set_result(None))
        run, _, _ = await start_streaming(client, agent_a)
        await asyncio.wait_for(told, 10)  # A told B it serves the run
        assert registry_b._runs[run.run_id][:2] == ("a", SESSION)
        connection = registry_a.control.connection_id  # type: ignore[attr-defined]

        broker.faults.partition(connection)  # A is gone; its member leaves in 200 ms

        info = await client.wait_run_ended(run.run_id, timeout=10)
        assert (info.status, info.error_code) == ("error", 50300)
        await asyncio.gather(*registry_b._tasks)  # B's end was acknowledged
        assert registry_b.orphans_ended == 1
        await client.close()
        await registry_b.close()
    finally:
        for ably in clients:
            await ably.close()
