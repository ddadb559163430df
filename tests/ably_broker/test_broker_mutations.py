"""Update/delete/append delivery semantics through the real ably-python SDK."""

from __future__ import annotations

import asyncio

import pytest
from ably.types.message import Message, MessageAction
from ably.types.operations import MessageOperation
from ably.util.exceptions import AblyException

from langgraph_interrupt.testing.ably_broker import AblyBroker

from .helpers import Collector, attached


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_append_is_delivered_as_fragment_with_new_version(realtime, binary):
    agent = realtime("agent", use_binary_protocol=binary)
    user = realtime("user", use_binary_protocol=not binary)
    user_inbox, agent_inbox = Collector(), Collector()
    await attached(user, "ai:append", user_inbox)
    channel = await attached(agent, "ai:append", agent_inbox)

    created = await channel.publish(
        Message(name="ai-output", data="Hel", extras={"s": "streaming"})
    )
    serial = created.serials[0]
    first = await channel.append_message(
        Message(serial=serial, data="lo", extras={"s": "streaming"}),
        MessageOperation(description="delta", metadata={"k": "v"}),
    )
    second = await channel.append_message(Message(serial=serial, data="!", extras={"s": "done"}))

    for inbox in (user_inbox, agent_inbox):  # the publisher gets its own appends back too
        create, append1, append2 = await inbox.wait_for(3)
        assert create.action == MessageAction.MESSAGE_CREATE
        assert (create.data, create.serial, create.version.serial) == ("Hel", serial, serial)
        assert [append1.action, append2.action] == [MessageAction.MESSAGE_APPEND] * 2
        assert [append1.data, append2.data] == ["lo", "!"]  # the fragment only
        assert append1.serial == append2.serial == serial
        assert append1.version.serial == first.version_serial
        assert append2.version.serial == second.version_serial
        assert serial < append1.version.serial < append2.version.serial
        assert append1.version.description == "delta"
        assert append1.version.metadata == {"k": "v"}
        assert append1.version.client_id == "agent"
        assert append2.extras == {"s": "done"}
        assert append1.name == "ai-output"  # the real service repeats the original's name
        assert append1.client_id == "agent"

    history = await channel.history()
    (only,) = history.items
    assert only.action == MessageAction.MESSAGE_UPDATE
    assert (only.data, only.name, only.serial) == ("Hello!", "ai-output", serial)
    assert only.version.serial == second.version_serial
    assert only.extras == {"s": "done"}


async def test_append_name_can_be_omitted(realtime):
    async with AblyBroker(append_name="omit") as broker:
        client = realtime("agent", broker=broker)
        inbox = Collector()
        channel = await attached(client, "ai:noname", inbox)
        serial = (await channel.publish("ai-output", "a")).serials[0]
        await channel.append_message(Message(serial=serial, data="b"))
        _, append = await inbox.wait_for(2)
        assert append.action == MessageAction.MESSAGE_APPEND
        assert append.name is None
        assert append.data == "b"


async def test_late_joiner_gets_full_update_then_fragments(realtime):
    agent = realtime("agent")
    channel = await attached(agent, "ai:late")
    serial = (await channel.publish("ai-output", "The quick")).serials[0]
    await channel.append_message(Message(serial=serial, data=" brown"))

    late = realtime("late")
    inbox = Collector()
    await attached(late, "ai:late", inbox)
    v1 = await channel.append_message(Message(serial=serial, data=" fox"))
    v2 = await channel.append_message(Message(serial=serial, data=" jumps"))
    fresh = (await channel.publish("ai-output", "new")).serials[0]
    await channel.append_message(Message(serial=fresh, data="er"))

    first, second, third, fourth = await inbox.wait_for(4)
    assert first.action == MessageAction.MESSAGE_UPDATE
    assert first.data == "The quick brown fox"  # full contents on first contact
    assert first.version.serial == v1.version_serial
    assert (second.action, second.data) == (MessageAction.MESSAGE_APPEND, " jumps")
    assert second.version.serial == v2.version_serial
    # a message created after the attach is delivered normally
    assert (third.action, third.data) == (MessageAction.MESSAGE_CREATE, "new")
    assert (fourth.action, fourth.data) == (MessageAction.MESSAGE_APPEND, "er")


async def test_update_and_delete_keep_serial_and_record_versions(realtime):
    client = realtime("agent")
    inbox = Collector()
    channel = await attached(client, "ai:update", inbox)
    serial = (
        await channel.publish(Message(name="note", data={"v": 1}, extras={"headers": {"a": "1"}}))
    ).serials[0]
    await channel.append_message(Message(serial=serial, data=None))  # appends are not versions
    updated = await channel.update_message(
        Message(serial=serial, data={"v": 2}), MessageOperation(description="edit")
    )
    deleted = await channel.delete_message(Message(serial=serial))

    create, _, update, delete = await inbox.wait_for(4)
    assert update.action == MessageAction.MESSAGE_UPDATE
    assert (update.serial, update.name, update.data) == (serial, "note", {"v": 2})
    assert update.extras == {"headers": {"a": "1"}}  # not given: kept
    assert update.timestamp == create.timestamp
    assert update.version.serial == updated.version_serial
    assert update.version.description == "edit"
    assert delete.action == MessageAction.MESSAGE_DELETE
    assert delete.version.serial == deleted.version_serial

    latest = await channel.get_message(serial)
    assert latest.action == MessageAction.MESSAGE_DELETE
    versions = await channel.get_message_versions(serial, {"direction": "forwards"})
    assert [v.action for v in versions.items] == [
        MessageAction.MESSAGE_CREATE,
        MessageAction.MESSAGE_UPDATE,
        MessageAction.MESSAGE_DELETE,
    ]


async def test_pipelined_appends_arrive_in_order(realtime):
    agent, user = realtime("agent"), realtime("user")
    inbox = Collector()
    await attached(user, "ai:pipeline", inbox)
    channel = await attached(agent, "ai:pipeline")
    serial = (await channel.publish("ai-output", "")).serials[0]
    fragments = [f"t{i} " for i in range(60)]

    results = await asyncio.gather(
        *(channel.append_message(Message(serial=serial, data=f)) for f in fragments)
    )

    versions = [r.version_serial for r in results]
    assert versions == sorted(versions)
    got = await inbox.wait_for(61)
    assert [m.data for m in got[1:]] == fragments
    assert (await channel.get_message(serial)).data == "".join(fragments)


async def test_mutation_errors_are_nacked_with_ably_codes(realtime):
    client = realtime("agent")
    channel = await attached(client, "ai:errors")
    text = (await channel.publish("t", "text")).serials[0]

    with pytest.raises(AblyException) as unknown:
        await channel.append_message(Message(serial=text[:-1] + "9", data="x"))
    assert unknown.value.code == 40400
    with pytest.raises(AblyException) as mismatch:
        await channel.append_message(Message(serial=text, data=b"\x00"))
    assert mismatch.value.code == 40013
    # the channel is still usable afterwards
    await channel.append_message(Message(serial=text, data="!"))
    assert (await channel.get_message(text)).data == "text!"


async def test_rest_patch_append_and_update(rest, realtime):
    subscriber = realtime("s")
    inbox = Collector()
    await attached(subscriber, "ai:rest-patch", inbox)
    channel = rest("writer").channels.get("ai:rest-patch")
    serial = (await channel.publish("ai-output", "a")).serials[0]

    appended = await channel.append_message(Message(serial=serial, data="b"))
    updated = await channel.update_message(Message(serial=serial, data="ab!"))

    create, append, update = await inbox.wait_for(3)
    assert (append.action, append.data) == (MessageAction.MESSAGE_APPEND, "b")
    assert append.version.serial == appended.version_serial
    assert (update.action, update.data) == (MessageAction.MESSAGE_UPDATE, "ab!")
    assert update.version.serial == updated.version_serial
    assert create.serial == serial
