"""Realtime basics through the real ably-python SDK: connect, attach, publish/ACK, deliver."""

from __future__ import annotations

import json

import pytest
from ably.types.connectionstate import ConnectionState
from ably.types.message import Message

from langgraph_interrupt.testing.ably_broker import AblyBroker

from .helpers import Collector, StateWatcher, attach_serial, attached, connection_id

FORMATS = [pytest.param(True, id="msgpack"), pytest.param(False, id="json")]


@pytest.mark.parametrize("binary", FORMATS)
async def test_publish_is_acked_with_serials_and_delivered(realtime, ably_broker, binary):
    publisher = realtime("agent", use_binary_protocol=binary)
    subscriber = realtime("user", use_binary_protocol=not binary)
    inbox = Collector()
    sub_channel = await attached(subscriber, "ai:basic", inbox)
    pub_channel = await attached(publisher, "ai:basic")

    result = await pub_channel.publish(
        [
            Message(name="text", data="hello"),
            Message(name="bytes", data=b"\x00\x01\xff"),
            Message(name="json", data={"k": [1, 2]}, extras={"headers": {"h": "v"}}),
        ]
    )

    assert len(result.serials) == 3
    assert result.serials == sorted(result.serials)
    assert len(set(result.serials)) == 3
    # every serial is later than the subscriber's attach point
    assert all(s > attach_serial(sub_channel) for s in result.serials)
    got = await inbox.wait_for(3)
    assert [m.name for m in got] == ["text", "bytes", "json"]
    assert got[0].data == "hello"
    assert bytes(got[1].data) == b"\x00\x01\xff"
    assert got[2].data == {"k": [1, 2]}
    assert got[2].extras == {"headers": {"h": "v"}}
    assert [m.serial for m in got] == result.serials
    assert all(int(m.action) == 0 for m in got)  # message.create
    assert all(m.client_id == "agent" for m in got)
    assert all(m.connection_id == connection_id(publisher) for m in got)
    assert all(m.version.serial == m.serial for m in got)


async def test_serials_increase_across_publishes_and_attaches(realtime):
    client = realtime("agent")
    channel = await attached(client, "ai:order")
    serials = [(await channel.publish("n", str(i))).serials[0] for i in range(20)]
    assert serials == sorted(serials)
    assert len(set(serials)) == 20
    assert attach_serial(channel) < serials[0]


async def test_publisher_receives_its_own_messages_unless_echo_is_off(realtime):
    echoing = realtime("a")
    quiet = realtime("b", transport_params={"echo": "false"})
    echo_inbox, quiet_inbox = Collector(), Collector()
    echo_channel = await attached(echoing, "ai:echo", echo_inbox)
    quiet_channel = await attached(quiet, "ai:echo", quiet_inbox)

    await quiet_channel.publish("from-quiet", "x")
    await echo_channel.publish("from-echo", "y")

    await echo_inbox.wait_for(2)
    await quiet_inbox.wait_for(1)
    assert [m.name for m in quiet_inbox.messages] == ["from-echo"]
    assert sorted(m.name for m in echo_inbox.messages) == ["from-echo", "from-quiet"]


async def test_repeated_message_id_is_acked_once_without_duplicate(realtime, ably_broker):
    client = realtime("agent")
    inbox = Collector()
    channel = await attached(client, "ai:idem", inbox)

    first = await channel.publish(Message(name="n", data="once", id="client-chosen-id"))
    second = await channel.publish(Message(name="n", data="once", id="client-chosen-id"))
    await channel.publish("sentinel", "")

    assert first.serials == second.serials
    await inbox.wait_for_name("sentinel")
    assert [m.name for m in inbox.messages] == ["n", "sentinel"]
    stored = ably_broker.history("ai:idem")
    assert [m["name"] for m in stored] == ["n", "sentinel"]
    assert stored[0]["id"] == "client-chosen-id"


async def test_ephemeral_messages_are_delivered_but_not_kept(realtime, ably_broker):
    client = realtime("agent")
    inbox = Collector()
    channel = await attached(client, "ai:ephemeral", inbox)

    await channel.publish(Message(name="typing", data="...", extras={"ephemeral": True}))
    await channel.publish("kept", "k")

    await inbox.wait_for(2)
    assert [m.name for m in inbox.messages] == ["typing", "kept"]
    history = await channel.history()
    assert [m.name for m in history.items] == ["kept"]


async def test_detach_stops_delivery_and_ping_works(realtime):
    publisher, subscriber = realtime("p"), realtime("s")
    inbox = Collector()
    sub_channel = await attached(subscriber, "ai:detach", inbox)
    pub_channel = await attached(publisher, "ai:detach")
    await pub_channel.publish("one", "1")
    await inbox.wait_for(1)

    await sub_channel.detach()
    await pub_channel.publish("two", "2")
    assert await subscriber.connection.ping() >= 0  # a round trip after "two" was published
    assert [m.name for m in inbox.messages] == ["one"]


async def test_rewind_delivers_recent_messages_on_attach(realtime):
    publisher = realtime("p")
    pub_channel = await attached(publisher, "ai:rewind")
    for i in range(4):
        await pub_channel.publish("m", str(i))

    late = realtime("late")
    inbox = Collector()
    await attached(late, "ai:rewind", inbox, params={"rewind": "2"})
    got = await inbox.wait_for(2)
    assert [m.data for m in got] == ["2", "3"]


async def test_rest_publish_and_status(rest, realtime):
    subscriber = realtime("s")
    inbox = Collector()
    await attached(subscriber, "ai:rest-pub", inbox)
    client = rest("rest-user")
    channel = client.channels.get("ai:rest-pub")

    result = await channel.publish("via-rest", {"a": 1})
    await channel.publish(Message(name="via-rest", data="dup", id="rest-id"))
    await channel.publish(Message(name="via-rest", data="dup", id="rest-id"))

    got = await inbox.wait_for(2)
    assert got[0].data == {"a": 1}
    assert got[0].serial == result.serials[0]
    status = await channel.status()
    assert status.channel_id == "ai:rest-pub"
    history = await channel.history()
    assert [m.data for m in history.items] == ["dup", {"a": 1}]


async def test_reset_forgets_state_and_clients_reconnect(realtime, ably_broker):
    client = realtime("agent")
    watcher = StateWatcher(client)
    channel = await attached(client, "ai:reset")
    await channel.publish("before", "x")
    first_id = connection_id(client)

    ably_broker.reset()

    reconnected = await watcher.wait_for(ConnectionState.CONNECTED, after=len(watcher.changes))
    assert reconnected.reason is not None and reconnected.reason.code == 80008
    assert connection_id(client) != first_id
    assert ably_broker.history("ai:reset") == []
    await channel.publish("after", "y")
    assert [m["name"] for m in ably_broker.history("ai:reset")] == ["after"]


async def test_server_heartbeats_are_sent(ably_broker):
    import aiohttp

    async with AblyBroker(heartbeat_interval_ms=20) as broker, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{broker.port}/?key={broker.key}")
        actions = []
        while actions.count(0) < 2:
            actions.append(json.loads((await ws.receive(timeout=5)).data)["action"])
        assert actions[0] == 4  # CONNECTED first, then HEARTBEATs
        await ws.close()
