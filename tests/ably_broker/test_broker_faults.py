"""Fault injection seen through the real ably-python SDK."""

from __future__ import annotations

import asyncio

import pytest
from ably.types.connectionstate import ConnectionState
from ably.types.message import Message
from ably.util.exceptions import AblyException

from langgraph_interrupt.testing.ably_broker import AblyBroker

from .helpers import Collector, StateWatcher, attached, connection_id


async def test_nack_next_publish_raises_with_the_injected_code(realtime, ably_broker):
    client = realtime("agent")
    channel = await attached(client, "ai:nack")
    rule = ably_broker.faults.nack_next(code=50003, status_code=504, message="injected timeout")

    with pytest.raises(AblyException) as nacked:
        await channel.publish("m", "lost")
    assert nacked.value.code == 50003
    assert nacked.value.status_code == 504
    assert rule.fired == 1

    assert (await channel.publish("m", "kept")).serials  # the rule disarmed itself
    assert [m["data"] for m in ably_broker.history("ai:nack")] == ["kept"]


async def test_nack_only_appends_on_one_channel(realtime, ably_broker):
    client = realtime("agent")
    channel = await attached(client, "ai:nack-appends")
    other = await attached(client, "ai:other")
    ably_broker.faults.nack_next(2, channel="ai:nack-*", appends_only=True)
    serial = (await channel.publish("ai-output", "a")).serials[0]  # creates pass
    other_serial = (await other.publish("ai-output", "a")).serials[0]
    await other.append_message(Message(serial=other_serial, data="b"))  # other channel passes

    for _ in range(2):
        with pytest.raises(AblyException) as nacked:
            await channel.append_message(Message(serial=serial, data="b"))
        assert nacked.value.code == 50000
    await channel.append_message(Message(serial=serial, data="c"))
    assert (await channel.get_message(serial)).data == "ac"


async def test_reject_mutations_with_93002_per_channel(realtime, ably_broker):
    client = realtime("agent")
    locked = await attached(client, "ai:locked")
    mutable = await attached(client, "ai:mutable")
    rule = ably_broker.faults.reject_mutations(channel="ai:locked")
    serial = (await locked.publish("ai-output", "a")).serials[0]  # publishing still works

    for operation in (locked.append_message, locked.update_message):
        with pytest.raises(AblyException) as rejected:
            await operation(Message(serial=serial, data="b"))
        assert rejected.value.code == 93002
    other = (await mutable.publish("ai-output", "a")).serials[0]
    await mutable.append_message(Message(serial=other, data="b"))
    assert rule.fired == 2

    rule.cancel()
    await locked.append_message(Message(serial=serial, data="b"))


async def test_nack_after_apply_publishes_yet_reports_failure_and_ids_dedupe_the_retry(
    realtime, ably_broker
):
    """A lost ACK: the client is told the publish failed, but the service has it. Retrying
    with the same message id is acknowledged with the original serial, not published again."""
    publisher, subscriber = realtime("p"), realtime("s")
    inbox = Collector()
    await attached(subscriber, "ai:lost-ack", inbox)
    channel = await attached(publisher, "ai:lost-ack")
    rule = ably_broker.faults.nack_next(after_apply=True)

    with pytest.raises(AblyException) as nacked:
        await channel.publish(Message(name="m", data="once", id="idem:0"))
    assert nacked.value.code == 50000 and rule.fired == 1
    assert [m.data for m in await inbox.wait_for(1)] == ["once"]  # applied all the same
    retried = await channel.publish(Message(name="m", data="once", id="idem:0"))
    await channel.publish("sentinel", "")

    await inbox.wait_for_name("sentinel")
    assert [m.data for m in inbox.messages] == ["once", ""]
    assert retried.serials == [inbox.messages[0].serial]
    assert [m["data"] for m in ably_broker.history("ai:lost-ack")] == ["once", ""]


async def test_reject_mutations_can_model_a_persistent_service_fault(realtime, ably_broker):
    client = realtime("agent")
    channel = await attached(client, "ai:faulty")
    rule = ably_broker.faults.reject_mutations(code=50000, status_code=500, message="down")
    serial = (await channel.publish("ai-output", "a")).serials[0]  # creates still pass

    for operation in (channel.append_message, channel.update_message):
        with pytest.raises(AblyException) as rejected:
            await operation(Message(serial=serial, data="b"))
        assert (rejected.value.code, rejected.value.status_code) == (50000, 500)
        assert rejected.value.message == "down"
    assert rule.fired == 2


async def test_delayed_delivery(realtime, ably_broker):
    publisher, subscriber = realtime("p"), realtime("s")
    inbox = Collector()
    await attached(subscriber, "ai:slow", inbox)
    channel = await attached(publisher, "ai:slow")
    ably_broker.faults.delay_delivery(
        300, channel="ai:slow", connection_id=connection_id(subscriber)
    )
    loop = asyncio.get_running_loop()

    await channel.publish("m", "x")
    acked = loop.time()
    await inbox.wait_for(1)
    assert loop.time() - acked >= 0.25


async def test_dropped_subscriber_resumes_without_loss_or_duplicates(realtime, ably_broker):
    publisher, subscriber = realtime("p"), realtime("s")
    inbox = Collector()
    await attached(subscriber, "ai:drop", inbox)
    channel = await attached(publisher, "ai:drop")
    await channel.publish("m", "0")
    await inbox.wait_for(1)
    watcher = StateWatcher(subscriber)
    original_id = connection_id(subscriber)

    assert ably_broker.faults.drop_connections(original_id) == 1
    for i in range(1, 6):  # published while the subscriber is away
        await channel.publish("m", str(i))
    await channel.publish("sentinel", "")

    await inbox.wait_for_name("sentinel", timeout=10)
    assert [m.data for m in inbox.messages] == ["0", "1", "2", "3", "4", "5", ""]
    assert any(c.current == ConnectionState.DISCONNECTED for c in watcher.changes)
    assert connection_id(subscriber) == original_id  # resumed, same connection


async def test_dropped_publisher_resends_unacked_publishes_exactly_once(realtime, ably_broker):
    """ACKs lost with the socket: the SDK resends the same msgSerials after resuming and the
    broker acknowledges them again without publishing twice."""
    publisher, subscriber = realtime("p"), realtime("s")
    inbox = Collector()
    await attached(subscriber, "ai:resend", inbox)
    channel = await attached(publisher, "ai:resend")
    # hold the publisher's own echoes, and so its ACKs queued behind them
    hold = ably_broker.faults.delay_delivery(
        60_000, channel="ai:resend", connection_id=connection_id(publisher)
    )
    pending = [asyncio.ensure_future(channel.publish("m", str(i))) for i in range(5)]
    await inbox.wait_for(5)  # the broker published all five
    assert not any(p.done() for p in pending)

    hold.cancel()
    ably_broker.faults.drop_connections(connection_id(publisher))
    results = await asyncio.wait_for(asyncio.gather(*pending), 10)

    assert [r.serials[0] for r in results] == [m.serial for m in inbox.messages[:5]]
    await channel.publish("sentinel", "")
    await inbox.wait_for_name("sentinel")
    assert [m.data for m in inbox.messages] == ["0", "1", "2", "3", "4", ""]
    assert len(ably_broker.history("ai:resend")) == 6


async def test_drop_all_connections(realtime, ably_broker):
    clients = [realtime(f"c{i}") for i in range(3)]
    for client in clients:
        await attached(client, "ai:all")
    watchers = [StateWatcher(c) for c in clients]

    assert ably_broker.faults.drop_connections() == 3
    for watcher in watchers:
        reconnected = await watcher.wait_for(ConnectionState.CONNECTED)
        assert reconnected is not None


async def test_a_client_that_falls_behind_is_dropped_then_catches_up(realtime):
    """The per-connection outbound queue is bounded: overflow drops the socket; the SDK resumes
    and the missed messages are replayed once."""
    async with AblyBroker(max_queued_frames=10) as broker:
        publisher, slow = realtime("p", broker=broker), realtime("slow", broker=broker)
        inbox = Collector()
        await attached(slow, "ai:slow-reader", inbox)
        channel = await attached(publisher, "ai:slow-reader")
        watcher = StateWatcher(slow)
        stall = broker.faults.delay_delivery(60_000, connection_id=connection_id(slow))

        for i in range(15):
            await channel.publish("m", str(i))
        await watcher.wait_for(ConnectionState.DISCONNECTED)
        stall.cancel()

        await inbox.wait_until(lambda ms: len(ms) >= 15, timeout=10)
        await channel.publish("sentinel", "")
        await inbox.wait_for_name("sentinel")
        assert [m.data for m in inbox.messages] == [str(i) for i in range(15)] + [""]
