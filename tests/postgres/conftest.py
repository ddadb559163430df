"""Postgres fixtures: one throwaway cluster per test session, a saver per test, and a
session channel (so a LangGraph thread) of each test's own.

The cluster is started here (``initdb`` + ``pg_ctl`` in a temporary directory, a free port,
``fsync`` off) and always stopped and removed at the end of the session; the server binaries
come from ``bash scripts/setup_postgres.sh``, which the test command runs first. Missing
binaries are an error, never a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker
from langgraph_interrupt.testing._postgres import PostgresCluster, postgres_cluster

OpenSaver = Callable[[], AbstractAsyncContextManager[AsyncPostgresSaver]]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    with postgres_cluster(dbname="langgraph") as cluster:
        yield cluster


@pytest.fixture
def open_saver(postgres: PostgresCluster) -> OpenSaver:
    """A new ``AsyncPostgresSaver`` on a connection of its own, tables set up: what each
    worker process has. Call it again for another worker."""

    @asynccontextmanager
    async def open_one() -> AsyncIterator[AsyncPostgresSaver]:
        async with AsyncPostgresSaver.from_conn_string(postgres.conninfo) as saver:
            await saver.setup()  # idempotent: creates or migrates the tables
            yield saver

    return open_one


@pytest.fixture
def open_pooled_saver(postgres: PostgresCluster) -> OpenSaver:
    """A new ``AsyncPostgresSaver`` on a connection pool (the production setup)."""

    @asynccontextmanager
    async def open_one() -> AsyncIterator[AsyncPostgresSaver]:
        async with AsyncConnectionPool(
                postgres.conninfo, min_size=1, max_size=4, open=False,
                kwargs={"autocommit": True, "prepare_threshold": 0,
                        "row_factory": dict_row}) as pool:
            saver = AsyncPostgresSaver(pool)
            await saver.setup()
            yield saver

    return open_one


@pytest.fixture
async def saver(open_saver: OpenSaver) -> AsyncIterator[AsyncPostgresSaver]:
    async with open_saver() as opened:
        yield opened


@pytest.fixture
def session_name() -> str:
    """This test's session channel, hence its thread id: the database outlives the test."""
    return f"ai:pg-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def broker() -> InMemoryBroker:
    return InMemoryBroker(record=True)


@pytest.fixture
async def client(broker: InMemoryBroker, session_name: str) -> AsyncIterator[ClientSession]:
    session = ClientSession(broker.channel(session_name, client_id="user-abc"))
    await session.connect()
    yield session
    await session.close()


@pytest.fixture
async def agent(broker: InMemoryBroker, session_name: str) -> AsyncIterator[AgentSession]:
    session = AgentSession(broker.channel(session_name, client_id="agent"),
                           trigger_timeout=1.0)
    await session.connect()
    yield session
    await session.close()
