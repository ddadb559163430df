"""Realtime presence through the broker, driven by the real ably-python SDK.

Enter/update/leave reach presence subscribers, ``presence.get()`` waits for the SYNC that
follows ATTACHED, detach and close leave at once, and the broker (not the client) decides who a
member is: capability, clientId and connection rules are enforced server side.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import msgpack
import pytest
from ably.types.presence import PresenceAction
from ably.util.exceptions import AblyException

from langgraph_interrupt.testing.ably_broker import AblyBroker

from .helpers import Collector, attached, connection_id

HEARTBEAT, ACK, NACK, ATTACH, PRESENCE, SYNC = 0, 1, 2, 10, 14, 16
HAS_PRESENCE = 1


async def subscribed(client: Any, name: str) -> tuple[Any, Collector]:
    """Attach ``name`` with a presence listener; returns the channel and its collector."""
    channel = client.channels.get(name)
    events = Collector()
    await channel.presence.subscribe(events.add)
    return channel, events


def summary(events: list[Any]) -> list[tuple[int, str, Any]]:
    return [(e.action, e.client_id, e.data) for e in events]


async def send_raw_presence(client: Any, name: str, *messages: dict[str, Any]) -> None:
    """A PRESENCE protocol message the SDK would refuse to build, sent on its real connection
    (the SDK still numbers it and waits for the broker's ACK or NACK)."""
    manager = client.connection.connection_manager
    await manager.send_protocol_message(
        {"action": PRESENCE, "channel": name, "presence": list(messages)}
    )


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_enter_update_leave_reach_subscribers_and_get(realtime, ably_broker, binary):
    agent = realtime("agent", use_binary_protocol=binary)
    watcher = realtime("web", use_binary_protocol=not binary)
    watch, events = await subscribed(watcher, "ai:room")
    assert await watch.presence.get() == []

    room = await attached(agent, "ai:room")
    await room.presence.enter({"role": "agent", "run": 1})
    await events.wait_for(1)
    entered = events.messages[0]
    agent_id = connection_id(agent)
    assert (entered.action, entered.client_id, entered.connection_id) == (
        PresenceAction.ENTER,
        "agent",
        agent_id,
    )
    assert entered.data == {"role": "agent", "run": 1}
    assert entered.timestamp is not None
    conn, msg_serial, index = entered.id.split(":")
    assert conn == agent_id and msg_serial.isdigit() and index == "0"

    members = await watch.presence.get()
    assert [(m.client_id, m.connection_id, m.data) for m in members] == [
        ("agent", agent_id, {"role": "agent", "run": 1})
    ]
    assert [m.client_id for m in await room.presence.get()] == ["agent"]  # its own echo

    await room.presence.update("busy")
    await room.presence.leave()
    await events.wait_for(3)
    assert summary(events.messages) == [
        (PresenceAction.ENTER, "agent", {"role": "agent", "run": 1}),
        (PresenceAction.UPDATE, "agent", "busy"),
        (PresenceAction.LEAVE, "agent", "busy"),  # a leave without data carries the member's
    ]
    assert await watch.presence.get() == []
    assert ably_broker.presence("ai:room") == []


async def test_the_broker_decides_enter_or_update(realtime):
    agent, watcher = realtime("agent"), realtime("web")
    _, events = await subscribed(watcher, "ai:decide")
    room = await attached(agent, "ai:decide")
    await room.presence.update("first")  # not present yet: an enter
    await room.presence.enter("again")  # already present: an update
    await events.wait_for(2)
    assert summary(events.messages) == [
        (PresenceAction.ENTER, "agent", "first"),
        (PresenceAction.UPDATE, "agent", "again"),
    ]


async def test_a_late_attacher_gets_the_members_through_sync(realtime, ably_broker):
    agent, helper = realtime("agent"), realtime("helper")
    await (await attached(agent, "ai:late")).presence.enter("a")
    await (await attached(helper, "ai:late")).presence.enter(b"\x00\xff")

    late = realtime("late", use_binary_protocol=False)
    channel, events = await subscribed(late, "ai:late")
    members = await channel.presence.get()  # waits for the SYNC that follows ATTACHED
    assert sorted((m.client_id, m.data) for m in members) == [
        ("agent", "a"),
        ("helper", b"\x00\xff"),
    ]
    await events.wait_for(2)
    assert {e.action for e in events.messages} == {PresenceAction.PRESENT}
    assert {e.connection_id for e in events.messages} == {
        connection_id(agent),
        connection_id(helper),
    }
    assert [m["clientId"] for m in ably_broker.presence("ai:late")] == ["agent", "helper"]


async def test_a_big_presence_set_is_synced_in_pages(realtime):
    """150 members (a wildcard client entering on behalf of others): two SYNC frames."""
    crowd = realtime(None, token_auth=False)  # key auth without clientId: wildcard
    room = await attached(crowd, "ai:crowd")
    await asyncio.gather(*(room.presence.enter_client(f"user-{i}", str(i)) for i in range(150)))
    late = realtime("late")
    members = await late.channels.get("ai:crowd").presence.get()
    assert sorted(int(m.data) for m in members) == list(range(150))


async def test_member_limit(realtime):
    async with AblyBroker(max_presence_members=2) as broker:
        crowd = realtime(None, broker=broker, token_auth=False)
        room = await attached(crowd, "ai:full")
        await room.presence.enter_client("one")
        await room.presence.enter_client("two")
        with pytest.raises(AblyException) as refused:
            await room.presence.enter_client("three")
        assert refused.value.code == 91003
        await room.presence.enter_client("two", "an update is not a new member")


async def test_detach_and_close_leave_at_once(realtime):
    watcher, leaver, closer = realtime("web"), realtime("leaver"), realtime("closer")
    _, events = await subscribed(watcher, "ai:bye")
    leaving = await attached(leaver, "ai:bye")
    await leaving.presence.enter("l")
    await (await attached(closer, "ai:bye")).presence.enter("c")
    await events.wait_for(2)
    ids = {"leaver": connection_id(leaver), "closer": connection_id(closer)}

    await leaving.detach()
    await events.wait_for(3)
    await closer.close()
    await events.wait_for(4)
    leaves = events.messages[2:]
    assert summary(leaves) == [
        (PresenceAction.LEAVE, "leaver", "l"),
        (PresenceAction.LEAVE, "closer", "c"),
    ]
    for leave in leaves:  # synthesized by the broker: ordered by timestamp, not by id
        assert leave.connection_id == ids[leave.client_id]
        assert not leave.id.startswith(leave.connection_id + ":")


async def test_presence_is_not_history_and_nack_faults_leave_it_alone(realtime, ably_broker):
    agent = realtime("agent")
    room = await attached(agent, "ai:quiet")
    rule = ably_broker.faults.nack_next(channel="ai:quiet", code=50003, status_code=500)
    await room.presence.enter("here")  # not a publish: the armed NACK is not spent on it
    await room.presence.leave()
    with pytest.raises(AblyException) as refused:
        await room.publish("m", "x")
    assert refused.value.code == 50003 and rule.fired == 1
    await room.publish("m", "y")
    assert [m["data"] for m in ably_broker.history("ai:quiet")] == ["y"]
    assert [m.data for m in (await room.history()).items] == ["y"]


async def test_delivery_delays_hold_presence_too(realtime, ably_broker):
    agent, watcher = realtime("agent"), realtime("web")
    _, events = await subscribed(watcher, "ai:slow")
    room = await attached(agent, "ai:slow")
    ably_broker.faults.delay_delivery(300, channel="ai:slow", connection_id=connection_id(watcher))
    loop = asyncio.get_running_loop()
    await room.presence.enter()
    acked = loop.time()
    await events.wait_for(1)
    assert loop.time() - acked >= 0.25


# ---------------------------------------------------------------------------- refusals


async def test_a_token_without_presence_capability_cannot_enter(realtime, ably_broker):
    capability = json.dumps({"ai:*": ["publish", "subscribe"], "lobby": ["presence"]})
    guest = realtime("guest", default_token_params={"client_id": "guest", "capability": capability})
    watcher = realtime("web")
    _, events = await subscribed(watcher, "ai:locked")

    room = await attached(guest, "ai:locked")
    with pytest.raises(AblyException) as refused:
        await room.presence.enter("hi")
    assert (refused.value.code, refused.value.status_code) == (40160, 401)
    await room.publish("m", "publishing is still allowed")

    lobby = await attached(guest, "lobby")
    await lobby.presence.enter("allowed here")
    assert [m["clientId"] for m in ably_broker.presence("lobby")] == ["guest"]
    assert ably_broker.presence("ai:locked") == [] and events.messages == []


async def test_a_client_cannot_enter_as_another_client_id(realtime, ably_broker):
    mallory = realtime("mallory")
    await attached(mallory, "ai:forge")
    with pytest.raises(AblyException) as refused:
        await send_raw_presence(mallory, "ai:forge", {"action": 2, "clientId": "agent"})
    assert refused.value.code == 40012
    with pytest.raises(AblyException) as wildcard:
        await send_raw_presence(mallory, "ai:forge", {"action": 2, "clientId": "*"})
    assert wildcard.value.code == 40012
    # a connectionId in the message is ignored: the broker stamps the sender's own
    await send_raw_presence(
        mallory, "ai:forge", {"action": 2, "connectionId": "someone-else", "data": "x"}
    )
    assert [(m["clientId"], m["connectionId"]) for m in ably_broker.presence("ai:forge")] == [
        ("mallory", connection_id(mallory))
    ]


async def test_an_anonymous_client_cannot_enter(realtime, ably_broker):
    anonymous = realtime(None)  # a token without clientId
    room = await attached(anonymous, "ai:anon")
    with pytest.raises(AblyException) as sdk:
        await room.presence.enter()  # the SDK refuses first (RTP8j)
    assert sdk.value.code == 40012
    with pytest.raises(AblyException) as broker_side:
        await send_raw_presence(anonymous, "ai:anon", {"action": 2})
    assert (broker_side.value.code, broker_side.value.status_code) == (91000, 400)
    with pytest.raises(AblyException) as named:
        await send_raw_presence(anonymous, "ai:anon", {"action": 2, "clientId": "agent"})
    assert named.value.code == 40012
    assert ably_broker.presence("ai:anon") == []


async def test_presence_needs_an_attached_channel(realtime):
    agent = realtime("agent")
    await attached(agent, "ai:elsewhere")
    with pytest.raises(AblyException) as refused:
        await send_raw_presence(agent, "ai:never-attached", {"action": 2})
    assert refused.value.code == 91001


async def test_a_forged_leave_does_not_remove_another_connections_member(realtime, ably_broker):
    """The member key is connectionId + clientId: nobody can make the agent leave."""
    agent, watcher = realtime("agent"), realtime("web")
    mallory = realtime("mallory")
    wildcard = realtime(None, token_auth=False)  # may act as any clientId, on its own connection
    _, events = await subscribed(watcher, "ai:target")
    room = await attached(agent, "ai:target")
    await room.presence.enter("working")
    await events.wait_for(1)

    await attached(mallory, "ai:target")
    with pytest.raises(AblyException) as refused:
        await send_raw_presence(mallory, "ai:target", {"action": 3, "clientId": "agent"})
    assert refused.value.code == 40012

    other = await attached(wildcard, "ai:target")
    await other.presence.leave_client("agent")  # acknowledged: nothing of its own to remove
    await other.presence.enter_client("agent", "an impostor")  # its own member, not the agent's
    await other.presence.leave_client("agent")
    await room.presence.update("still working")  # ordered after anything the forgeries caused

    await events.wait_for(4)
    agent_events = [
        (e.action, e.data) for e in events.messages if e.connection_id == connection_id(agent)
    ]
    assert agent_events == [
        (PresenceAction.ENTER, "working"),
        (PresenceAction.UPDATE, "still working"),
    ]
    assert summary(events.messages[1:3]) == [
        (PresenceAction.ENTER, "agent", "an impostor"),
        (PresenceAction.LEAVE, "agent", "an impostor"),
    ]
    assert [m["connectionId"] for m in ably_broker.presence("ai:target")] == [
        connection_id(agent)
    ]


# ---------------------------------------------------------------------------- REST


async def test_rest_presence_lists_the_members(realtime, rest):
    agent, helper = realtime("agent"), realtime("helper")
    await (await attached(agent, "ai:rest")).presence.enter({"n": 1})
    await (await attached(helper, "ai:rest")).presence.enter("h")

    channel = rest("reader").channels.get("ai:rest")
    page = await channel.presence.get(limit=1)
    first = page.items
    assert page.has_next()
    second = (await page.next()).items
    members = first + second
    assert [(m.client_id, m.action, m.data) for m in members] == [
        ("agent", PresenceAction.PRESENT, {"n": 1}),
        ("helper", PresenceAction.PRESENT, "h"),
    ]
    assert members[0].connection_id == connection_id(agent)

    status = await channel.status()
    metrics = status.status.occupancy.metrics
    assert (metrics.presence_members, metrics.presence_connections) == (2, 2)


# ---------------------------------------------------------------------------- the wire


async def test_wire_frames_and_hostile_presence_input(ably_broker):
    """What the SDKs rely on, frame by frame; bad presence gets a NACK, never a closed socket."""
    url = f"ws://127.0.0.1:{ably_broker.port}/?key={ably_broker.key}&format=msgpack"
    async with aiohttp.ClientSession() as http:
        agent = await http.ws_connect(url + "&clientId=agent")
        watcher = await http.ws_connect(url + "&clientId=web")

        async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
            while True:
                frame = msgpack.unpackb((await ws.receive(timeout=5)).data)
                if frame["action"] != HEARTBEAT:
                    return frame

        async def send(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
            await ws.send_bytes(msgpack.packb(frame, use_bin_type=True))

        agent_id = (await receive(agent))["connectionId"]
        await receive(watcher)
        await send(agent, {"action": ATTACH, "channel": "ai:wire"})
        assert not (await receive(agent))["flags"] & HAS_PRESENCE  # nobody present yet

        bad = [
            {"presence": []},
            {"presence": "x"},
            {"presence": [{"action": 1}]},  # PRESENT is the server's
            {"presence": [{"action": "enter"}]},
            {"presence": [{"action": 2, "data": {"an": "object"}}]},
            {"presence": [{"action": 2, "id": "x" * 5000}]},
            {"presence": [{"action": 2, "data": "x" * 70_000}]},
        ]
        for serial, fields in enumerate(bad):
            frame = {"action": PRESENCE, "msgSerial": serial, "channel": "ai:wire"}
            await send(agent, frame | fields)
            reply = await receive(agent)
            assert (reply["action"], reply["msgSerial"]) == (NACK, serial), fields
            assert reply["error"]["code"] in (40000, 40009, 40013), reply

        enter = {"action": 2, "data": "hi", "clientId": "agent", "timestamp": 1}
        await send(
            agent, {"action": PRESENCE, "msgSerial": 7, "channel": "ai:wire", "presence": [enter]}
        )
        echo = await receive(agent)
        assert (echo["action"], echo["id"]) == (PRESENCE, f"{agent_id}:7")
        assert echo["connectionId"] == agent_id
        [member] = echo["presence"]
        assert member["id"] == f"{agent_id}:7:0" and member["timestamp"] > 1
        assert (member["action"], member["clientId"], member["connectionId"], member["data"]) == (
            2,
            "agent",
            agent_id,
            "hi",
        )
        assert await receive(agent) == {"action": ACK, "msgSerial": 7, "count": 1}

        await send(watcher, {"action": ATTACH, "channel": "ai:wire"})
        attached_frame = await receive(watcher)
        assert attached_frame["flags"] & HAS_PRESENCE
        sync = await receive(watcher)
        assert sync["action"] == SYNC and sync["channelSerial"].endswith(":")
        assert [{**m, "action": 2} for m in sync["presence"]] == [member]
        assert sync["presence"][0]["action"] == 1

        await send(watcher, {"action": SYNC, "channel": "ai:wire"})  # ably-js channel.sync()
        again = await receive(watcher)
        assert again["action"] == SYNC and again["presence"] == sync["presence"]
        await agent.close()
        await watcher.close()


async def test_echo_off_still_delivers_the_senders_own_presence(realtime):
    """``echo=false`` is about messages: the SDK keeps its own members from the echo (RTP17)."""
    agent = realtime("agent", transport_params={"echo": "false"})
    room = await attached(agent, "ai:echo")
    await room.presence.enter("me")
    assert [(m.client_id, m.data) for m in await room.presence.get()] == [("agent", "me")]
