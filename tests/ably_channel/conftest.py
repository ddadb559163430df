"""Fixtures for AblyChannel tests: real ably-python connections to the offline broker.

``open_ably(name, client_id, **channel_kwargs)`` opens an :class:`AblyChannel` on its own
``AblyRealtime`` connection (one per participant, as in production); every client is closed
after the test. The broker itself is ``tests/ably_broker``'s ``ably_broker`` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from ably import AblyRealtime

from langgraph_interrupt import InMemoryBroker
from langgraph_interrupt.channels import AblyChannel, Channel
from langgraph_interrupt.testing.ably_broker import AblyBroker
from tests.ably_broker.conftest import ably_broker

__all__ = ["Backend", "OpenAbly", "ably_broker", "backend", "open_ably"]

OpenAbly = Callable[..., Awaitable[AblyChannel]]


@pytest.fixture
async def open_ably(ably_broker: AblyBroker) -> AsyncIterator[OpenAbly]:
    """Factory: ``await open_ably(name, client_id, **AblyChannel kwargs)``."""
    clients: list[AblyRealtime] = []

    async def open_(name: str, client_id: str | None = None, **kwargs: Any) -> AblyChannel:
        client = AblyRealtime(**ably_broker.python_client_options(client_id))
        clients.append(client)
        return AblyChannel(client, name, **kwargs)

    yield open_
    for client in clients:
        await client.close()


@dataclass(frozen=True)
class Backend:
    """A channel backend under test: ``await backend.open(name, client_id)``."""

    kind: str
    open: Callable[[str, str | None], Awaitable[Channel]]


@pytest.fixture(params=["memory", "ably"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test using it runs twice: on the in-memory broker, and on AblyChannel over the
    offline broker with one real SDK connection per participant."""
    if request.param == "memory":
        broker = InMemoryBroker()

        async def open_memory(name: str, client_id: str | None) -> Channel:
            return broker.channel(name, client_id=client_id)

        return Backend("memory", open_memory)
    open_real: OpenAbly = request.getfixturevalue("open_ably")

    async def open_ably_channel(name: str, client_id: str | None) -> Channel:
        return await open_real(name, client_id)

    return Backend("ably", open_ably_channel)
