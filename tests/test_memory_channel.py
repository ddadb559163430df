"""The in-memory broker passes the channel conformance suite, plus its own fault injection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from langgraph_interrupt import (
    ChannelError,
    InMemoryBroker,
    InvalidArgumentError,
    MutableMessagesDisabledError,
    OutboundMessage,
)
from langgraph_interrupt.channels import Channel
from langgraph_interrupt.testing.conformance import ChannelConformance, OpenChannel


class TestInMemoryChannelConformance(ChannelConformance):
    @pytest.fixture
    async def open_channel(self) -> AsyncIterator[OpenChannel]:
        broker = InMemoryBroker()
        opened: list[Channel] = []

        async def open_(name: str, client_id: str | None) -> Channel:
            channel = broker.channel(name, client_id=client_id)
            opened.append(channel)
            return channel

        yield open_
        for channel in opened:
            await channel.detach()


async def test_injected_faults_fail_exactly_the_next_calls() -> None:
    broker = InMemoryBroker()
    channel = broker.channel("c", client_id="a")
    await channel.attach()
    broker.fail_next("publish", 2)
    for _ in range(2):
        with pytest.raises(ChannelError) as info:
            await channel.publish([OutboundMessage("m", "x")])
        assert info.value.retryable
    assert len(await channel.publish([OutboundMessage("m", "x")])) == 1


async def test_a_channel_without_mutable_messages_rejects_appends_with_93002() -> None:
    broker = InMemoryBroker(mutable_messages=False)
    channel = broker.channel("c", client_id="a")
    await channel.attach()
    (serial,) = await channel.publish([OutboundMessage("m", "")])
    with pytest.raises(MutableMessagesDisabledError) as info:
        await channel.append(serial, "x", {})
    assert info.value.code == 93002
    assert "mutable messages" in info.value.message


async def test_appending_to_an_unknown_serial_is_a_clear_error() -> None:
    channel = InMemoryBroker().channel("c")
    await channel.attach()
    with pytest.raises(ChannelError, match="no message with serial"):
        await channel.append("nope", "x", {})


async def test_published_values_are_copied_so_later_mutation_does_not_leak() -> None:
    broker = InMemoryBroker()
    channel = broker.channel("c")
    await channel.attach()
    data = {"k": ["v"]}
    await channel.publish([OutboundMessage("m", data)])
    data["k"].append("mutated")
    assert broker.history_of("c")[0].data == {"k": ["v"]}


def test_channel_names_must_be_non_empty_strings() -> None:
    with pytest.raises(InvalidArgumentError):
        InMemoryBroker().channel("")
