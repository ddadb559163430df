"""Shared fixtures: an embedded broker, a connected client and agent on one session channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker

SESSION = "ai:test-session"


@pytest.fixture
def broker() -> InMemoryBroker:
    return InMemoryBroker(record=True)


@pytest.fixture
async def client(broker: InMemoryBroker) -> AsyncIterator[ClientSession]:
    session = ClientSession(broker.channel(SESSION, client_id="user-abc"))
    await session.connect()
    yield session
    await session.close()


@pytest.fixture
async def agent(broker: InMemoryBroker) -> AsyncIterator[AgentSession]:
    session = AgentSession(broker.channel(SESSION, client_id="agent"), trigger_timeout=1.0)
    await session.connect()
    yield session
    await session.close()
