"""Authentication through ably-python: token requests, key auth, client ids, token renewal."""

from __future__ import annotations

import pytest
from ably import AblyRealtime
from ably.types.connectionstate import ConnectionState
from ably.util.exceptions import AblyException

from langgraph_interrupt.testing.ably_broker import AblyBroker

from .helpers import Collector, StateWatcher, attached, connection_id


async def test_token_auth_carries_client_id(realtime, ably_broker):
    agent = realtime("agent")
    observer = realtime("observer")
    inbox = Collector()
    await attached(observer, "ai:who", inbox)
    channel = await attached(agent, "ai:who")

    await channel.publish("hello", "x")

    (message,) = await inbox.wait_for(1)
    assert message.client_id == "agent"
    assert agent.auth.client_id == "agent"
    infos = {c.connection_id: c for c in ably_broker.connections()}
    assert infos[connection_id(agent)].client_id == "agent"
    assert infos[connection_id(agent)].channels == ("ai:who",)


async def test_key_auth_works_for_realtime_but_sdk_refuses_rest_over_http(realtime):
    client = realtime("keyed", token_auth=False)
    channel = await attached(client, "ai:keyed")
    result = await channel.publish("m", "x")
    assert result.serials
    with pytest.raises(AblyException) as refused:  # pitfall P2, raised inside ably-python
        await channel.history()
    assert refused.value.code == 40103


async def test_wrong_key_secret_fails_the_connection_with_40101(ably_broker):
    options = ably_broker.python_client_options(
        token_auth=False, key=ably_broker.key.split(":")[0] + ":wrong"
    )
    client = AblyRealtime(**options)
    watcher = StateWatcher(client)
    try:
        change = await watcher.wait_for(ConnectionState.FAILED)
        assert change.reason.code == 40101
    finally:
        await client.close()


async def test_auth_callback_with_a_broker_issued_token(ably_broker, realtime):
    calls = []

    async def auth_callback(token_params):
        calls.append(token_params)
        return ably_broker.issue_token("callback-user")

    options = ably_broker.python_client_options()
    del options["key"], options["use_token_auth"]
    client = AblyRealtime(auth_callback=auth_callback, **options)
    try:
        observer = realtime("observer")
        inbox = Collector()
        await attached(observer, "ai:cb", inbox)
        channel = await attached(client, "ai:cb")
        await channel.publish("m", "x")
        (message,) = await inbox.wait_for(1)
        assert message.client_id == "callback-user"
        assert calls
    finally:
        await client.close()


async def test_accept_any_token_maps_client_ids(realtime):
    broker = AblyBroker(accept_any_token=True, token_client_ids={"app-jwt": "jwt-user"})
    async with broker:
        options = broker.python_client_options()
        del options["key"], options["use_token_auth"]
        client = AblyRealtime(token="app-jwt", **options)
        try:
            channel = await attached(client, "ai:any")
            await channel.publish("m", "x")
            assert broker.history("ai:any")[0]["clientId"] == "jwt-user"
        finally:
            await client.close()


async def test_expired_token_is_renewed_and_the_connection_resumed(realtime):
    client = realtime("agent", default_token_params={"client_id": "agent", "ttl": 400})
    channel = await attached(client, "ai:ttl")
    first_id = connection_id(client)
    watcher = StateWatcher(client)

    disconnected = await watcher.wait_for(ConnectionState.DISCONNECTED)
    await watcher.wait_for(ConnectionState.CONNECTED, after=watcher.changes.index(disconnected))

    assert disconnected.reason.code == 40142
    assert connection_id(client) == first_id  # resumed, not a new connection
    result = await channel.publish("after-renewal", "x")
    assert result.serials


async def test_explicit_reauthorize_sends_auth_and_keeps_the_connection(realtime):
    client = realtime("agent")
    channel = await attached(client, "ai:reauth")
    first_id = connection_id(client)

    await client.auth.authorize()

    assert connection_id(client) == first_id
    assert (await channel.publish("m", "after-auth")).serials
