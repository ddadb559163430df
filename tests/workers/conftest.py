"""Fixtures for the multi-process worker tests: one offline broker process (presence leave
timeout :data:`LEAVE_TIMEOUT_MS`, so a SIGKILLed worker is noticed quickly; Ably's is 15 s)
and one throwaway Postgres cluster for the whole session; each module starts its own
deployment of worker processes (``worker_app.py``) on a control channel of its own; each
test connects users (ably-python ``AblyRealtime`` + ``AblyChannel`` + ``ClientSession``)
with tokens limited as a browser's would be.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from ably import AblyRealtime  # type: ignore[import-untyped]
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from langgraph_interrupt import ClientSession, SendHandle
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.testing._postgres import PostgresCluster

from .processes import CHECKPOINTS, BrokerProcess, WorkerProcess, database

#: The broker's presence leave timeout for a lost connection, in milliseconds.
LEAVE_TIMEOUT_MS = 1000
#: What a browser's token allows (docs/deployment.md): its sessions, nothing on the
#: control channel.
USER_CAPABILITY = {"ai:*": ["subscribe", "publish", "history"]}

Connect = Callable[..., Awaitable[ClientSession]]


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="session")
def broker(logs: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(LEAVE_TIMEOUT_MS, logs).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    with database() as cluster:
        yield cluster


@pytest.fixture
def session_name() -> str:
    return f"ai:w-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def connect(broker: BrokerProcess) -> AsyncIterator[Connect]:
    """``await connect(session, client_id="user-1", capability=None)``: a connected
    ``ClientSession`` of that user on that session channel, over the user's own realtime
    connection (one per user id); all closed at the end of the test."""
    clients: dict[str, AblyRealtime] = {}
    sessions: list[ClientSession] = []

    async def open_session(session: str, client_id: str = "user-1", *,
                           capability: dict[str, list[str]] | None = None) -> ClientSession:
        if client_id not in clients:
            clients[client_id] = AblyRealtime(**broker.client_options(
                client_id, capability=capability or USER_CAPABILITY))
        client = ClientSession(AblyChannel(clients[client_id], session))
        await client.connect()
        sessions.append(client)
        return client

    yield open_session
    for client in sessions:
        await client.close()
    for realtime in clients.values():
        await realtime.close()


def ticks(client: ClientSession) -> int:
    """How many ``data-tick`` parts (``slow_job``'s progress) the client has folded."""
    return sum(1 for m in client.messages for p in m["parts"] if p["type"] == "data-tick")


async def start_slow_job(worker: WorkerProcess, client: ClientSession) -> SendHandle:
    """Ask for the slow job, POST it to ``worker`` and wait until its tool has ticked once
    (the run is mid-tool there); the handle knows its run id."""
    handle = await client.send("slow job please")
    assert (await worker.post(handle.invocation.to_json())).status_code == 200
    await client.wait_for(lambda s: ticks(s) >= 1, timeout=10)
    assert handle.run_id is not None
    return handle


def last_text(client: ClientSession) -> str:
    texts = [p["text"] for p in client.messages[-1]["parts"] if p["type"] == "text"]
    return texts[-1] if texts else ""


async def committed(cluster: PostgresCluster, thread: str) -> list[BaseMessage]:
    """The thread's messages as committed to Postgres, read on a connection of its own."""
    async with AsyncPostgresSaver.from_conn_string(cluster.conninfo) as saver:
        saved = await saver.aget_tuple({"configurable": {"thread_id": thread}})
    if saved is None:
        return []
    messages: list[BaseMessage] = saved.checkpoint["channel_values"].get("messages", [])
    return messages


async def wait_committed(cluster: PostgresCluster, thread: str,
                         predicate: Callable[[list[BaseMessage]], bool], *,
                         timeout: float = 10.0) -> list[BaseMessage]:
    """The thread's committed messages once ``predicate`` holds for them: checked now and
    at every checkpoint committed for the thread (LISTEN, before the first check)."""
    async with await psycopg.AsyncConnection.connect(cluster.conninfo,
                                                     autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHECKPOINTS}")
        async with asyncio.timeout(timeout):
            while not predicate(messages := await committed(cluster, thread)):
                async for notice in conn.notifies():
                    if notice.payload == thread:
                        break
    return messages
