"""Fixtures for the offline Ably broker: an in-process broker and real ably-python clients.

The broker runs in the test's event loop on 127.0.0.1 with an ephemeral port. Clients made with
the ``realtime`` factory are closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from ably import AblyRealtime, AblyRest

from langgraph_interrupt.testing.ably_broker import AblyBroker

RealtimeFactory = Callable[..., AblyRealtime]


@pytest.fixture
async def ably_broker() -> AsyncIterator[AblyBroker]:
    """A started broker, stopped (all connections dropped) after the test."""
    async with AblyBroker() as broker:
        yield broker


@pytest.fixture
async def realtime(ably_broker: AblyBroker) -> AsyncIterator[RealtimeFactory]:
    """Factory: ``realtime(client_id=None, **option_overrides)`` -> a connecting AblyRealtime."""
    clients: list[AblyRealtime] = []

    def make(
        client_id: str | None = None, broker: AblyBroker | None = None, **kw: Any
    ) -> AblyRealtime:
        options = (broker or ably_broker).python_client_options(client_id, **kw)
        client = AblyRealtime(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def rest(ably_broker: AblyBroker) -> AsyncIterator[Callable[..., AblyRest]]:
    """Factory for AblyRest clients (token auth, closed after the test)."""
    clients: list[AblyRest] = []

    def make(client_id: str | None = None, **kw: Any) -> AblyRest:
        client = AblyRest(**ably_broker.python_client_options(client_id, **kw))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
