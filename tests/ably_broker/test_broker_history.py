"""REST history through ably-python: paging, aggregation, the untilAttach bound, time range."""

from __future__ import annotations

import itertools

from ably.types.message import Message, MessageAction

from langgraph_interrupt.testing.ably_broker import AblyBroker

from .helpers import attach_serial, attached


async def _all_pages(page):
    pages = [page]
    while page.has_next():
        page = await page.next()
        pages.append(page)
    return pages


async def test_history_pages_newest_first_following_link_headers(realtime):
    client = realtime("agent")
    channel = await attached(client, "ai:paging")
    for i in range(7):
        await channel.publish("m", str(i))

    pages = await _all_pages(await channel.history(limit=3))
    assert [[m.data for m in p.items] for p in pages] == [["6", "5", "4"], ["3", "2", "1"], ["0"]]
    assert pages[-1].is_last()

    forwards = await _all_pages(await channel.history(direction="forwards", limit=4))
    assert [[m.data for m in p.items] for p in forwards] == [["0", "1", "2", "3"], ["4", "5", "6"]]
    first = await forwards[1].first()
    assert [m.data for m in first.items] == ["0", "1", "2", "3"]


async def test_history_has_one_aggregated_item_per_message(realtime):
    client = realtime("agent")
    channel = await attached(client, "ai:aggregate")
    before = (await channel.publish("before", "x")).serials[0]
    serial = (await channel.publish("ai-output", "Hel")).serials[0]
    for fragment in ["lo", ", ", "world"]:
        await channel.append_message(Message(serial=serial, data=fragment))
    after = (await channel.publish("after", "y")).serials[0]

    items = (await channel.history()).items
    assert [m.serial for m in items] == [after, serial, before]  # original position
    assert items[1].action == MessageAction.MESSAGE_UPDATE
    assert items[1].data == "Hello, world"
    assert items[0].action == items[2].action == MessageAction.MESSAGE_CREATE


async def test_until_attach_bound_via_from_serial(realtime):
    """ably-python's history has no untilAttach: call REST with from_serial=<attach serial>."""
    agent = realtime("agent")
    agent_channel = await attached(agent, "ai:until")
    for i in range(3):
        await agent_channel.publish("old", str(i))

    user = realtime("user")
    user_channel = await attached(user, "ai:until")
    bound = attach_serial(user_channel)
    assert bound  # ATTACHED always carries a non-empty channelSerial
    await agent_channel.publish("new", "after-attach")

    response = await user.request(
        "GET",
        "/channels/ai:until/messages",
        version="5",
        params={"from_serial": bound, "limit": 2},
    )
    pages = await _all_pages(response)
    items = list(itertools.chain.from_iterable(p.items for p in pages))
    decoded = Message.from_encoded_array(items)
    assert [m.data for m in decoded] == ["2", "1", "0"]
    assert [len(p.items) for p in pages] == [2, 1]
    assert all(m.serial < bound for m in decoded)


async def test_history_time_range_with_injected_clock(realtime):
    now = [1_700_000_000_000]
    async with AblyBroker(clock=lambda: now[0]) as broker:
        client = realtime("agent", broker=broker)
        channel = await attached(client, "ai:time")
        for i in range(5):
            now[0] = 1_700_000_000_000 + i * 1000
            await channel.publish("m", str(i))

        response = await client.request(
            "GET",
            "/channels/ai:time/messages",
            version="5",
            params={"start": 1_700_000_001_000, "end": 1_700_000_003_000},
        )
        assert [m["data"] for m in response.items] == ["3", "2", "1"]
        assert [m["timestamp"] for m in response.items] == [
            1_700_000_003_000,
            1_700_000_002_000,
            1_700_000_001_000,
        ]


async def test_binary_history_reads_back_over_json_and_msgpack(realtime):
    writer = realtime("w", use_binary_protocol=True)
    channel = await attached(writer, "ai:bin")
    serial = (await channel.publish("b", b"\x00\x01")).serials[0]
    await channel.append_message(Message(serial=serial, data=b"\x02"))

    for binary in (True, False):
        reader = realtime("r", use_binary_protocol=binary)
        (item,) = (await reader.channels.get("ai:bin").history()).items
        assert bytes(item.data) == b"\x00\x01\x02"


async def test_unknown_channel_history_is_empty_and_bad_params_are_rejected(realtime):
    client = realtime("agent")
    assert (await client.channels.get("ai:nothing").history()).items == []
    response = await client.request(
        "GET", "/channels/ai:nothing/messages", version="5", params={"limit": "0"}
    )
    assert response.status_code == 400
    assert response.error_code == "40000"
