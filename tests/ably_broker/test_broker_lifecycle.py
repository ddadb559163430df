"""``[meta]channel.lifecycle`` through the real ably-python SDK: what a watcher of channel
activity (the agent endpoint's ``prewarm``) sees as clients come and go."""

from __future__ import annotations

import pytest
from ably.types.message import Message

from .helpers import Collector, attached

LIFECYCLE = "[meta]channel.lifecycle"


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_a_channel_opens_on_its_first_attachment_and_closes_after_its_last(
        realtime, binary):
    watcher = realtime("agent", use_binary_protocol=binary)
    events = Collector()
    await attached(watcher, LIFECYCLE, events)
    first, second = realtime("user-1"), realtime("user-2")

    one = await attached(first, "ai:chat-1")
    await attached(second, "ai:chat-1")  # already open: no event
    opened = (await events.wait_for(1))[0]
    assert opened.name == "channel.opened"
    assert opened.data["channelId"] == "ai:chat-1"
    assert opened.data["status"]["isActive"] is True
    assert opened.data["status"]["occupancy"]["metrics"]["connections"] == 1
    assert opened.client_id is None

    await one.detach()
    await second.close()  # the last holder gone for good
    closed = (await events.wait_for(2))[1]
    assert closed.name == "channel.closed"
    assert closed.data["channelId"] == "ai:chat-1"
    assert closed.data["status"]["isActive"] is False
    assert len(events.messages) == 2  # the first detach closed nothing


async def test_nobody_publishes_on_a_metachannel(realtime):
    client = realtime("mallory")
    channel = await attached(client, LIFECYCLE)
    with pytest.raises(Exception) as caught:
        await channel.publish(Message(name="channel.opened", data={"channelId": "ai:x"}))
    assert getattr(caught.value, "code", None) == 40160
