"""AblyChannel's own promises: the error boundary, retries, idempotent ids, tolerant
subscriptions and lifecycle, through the real SDK and the offline broker."""

from __future__ import annotations

import asyncio

import pytest
from ably import AblyRealtime
from ably.types.connectionstate import ConnectionState
from ably.types.message import Message
from ably.util.exceptions import AblyException

from langgraph_interrupt import (
    AgentSession,
    ChannelError,
    ChannelMessage,
    ClientSession,
    InvalidArgumentError,
    MutableMessagesDisabledError,
    OutboundMessage,
)
from langgraph_interrupt.channels import AblyChannel, Channel
from langgraph_interrupt.channels._ably import (
    MUTABLE_MESSAGES_RULE,
    _maybe_applied,
    translate_error,
)
from langgraph_interrupt.testing import Inbox
from langgraph_interrupt.testing.ably_broker import AblyBroker
from tests.ably_broker.helpers import attached
from tests.ably_channel.conftest import OpenAbly

NAME = "ai:unit"


async def test_it_is_a_channel_and_names_its_client_identity(open_ably: OpenAbly) -> None:
    channel = await open_ably(NAME, "agent")
    assert isinstance(channel, Channel)
    assert (channel.name, channel.client_id) == (NAME, "agent")
    assert await channel.attach() is None and channel.attach_serial is None


async def test_93002_is_translated_into_one_error_that_names_the_rule(
        open_ably: OpenAbly, ably_broker: AblyBroker) -> None:
    channel = await open_ably(NAME, "agent")
    await channel.attach()
    (serial,) = await channel.publish([OutboundMessage("ai-output", "")])
    rule = ably_broker.faults.reject_mutations(channel=NAME)
    for operation in (channel.append, channel.update):
        with pytest.raises(MutableMessagesDisabledError) as info:
            await operation(serial, "x", {})
        assert info.value.code == 93002 and not info.value.retryable
        assert MUTABLE_MESSAGES_RULE in info.value.message and NAME in info.value.message
        assert isinstance(info.value.__cause__, AblyException)
    assert rule.fired == 2, "93002 is not retried"


async def test_an_unknown_serial_is_a_channel_error_that_is_not_retried(
        open_ably: OpenAbly) -> None:
    channel = await open_ably(NAME, "agent", retry_initial=0.001)
    await channel.attach()
    with pytest.raises(ChannelError) as info:
        await channel.append("00000000000000-000000001@nowhere:000", "x", {})
    assert info.value.code == 40400 and not info.value.retryable


async def test_transient_publish_failures_are_retried_until_one_succeeds(
        open_ably: OpenAbly, ably_broker: AblyBroker) -> None:
    channel = await open_ably(NAME, "agent", retry_attempts=3, retry_initial=0.001)
    await channel.attach()
    nack = ably_broker.faults.nack_next(2, channel=NAME)
    serials = await channel.publish([OutboundMessage("m", "kept")])
    assert nack.fired == 2
    assert [m["serial"] for m in ably_broker.history(NAME)] == serials


async def test_failures_beyond_the_attempts_raise_a_retryable_channel_error(
        open_ably: OpenAbly, ably_broker: AblyBroker) -> None:
    channel = await open_ably(NAME, "agent", retry_attempts=3, retry_initial=0.001)
    await channel.attach()
    nack = ably_broker.faults.nack_next(5, channel=NAME, code=50003, status_code=504)
    with pytest.raises(ChannelError) as info:
        await channel.publish([OutboundMessage("m", "lost")])
    assert (info.value.code, info.value.retryable, nack.fired) == (50003, True, 3)
    assert ably_broker.history(NAME) == []


async def test_an_append_in_flight_when_its_connection_fails_is_not_retried_but_a_publish_is(
        open_ably: OpenAbly, ably_broker: AblyBroker) -> None:
    """The service applied the append, but its ACK never came: appending again would
    duplicate the fragment, so the append fails (the transport repairs the stream). The
    publish in flight beside it is retried, safely, under its message id."""
    channel = await open_ably(NAME, "agent", retry_initial=0.001)
    await channel.attach()
    applied = Inbox()
    observer = await open_ably(NAME, "observer")
    observer.subscribe(applied)
    await observer.attach()
    (serial,) = await channel.publish([OutboundMessage("ai-output", "")])
    ably_broker.faults.delay_delivery(60_000, channel=NAME, connection_id=channel.connection_id)
    append = asyncio.ensure_future(channel.append(serial, "x", {}))
    publish = asyncio.ensure_future(channel.publish([OutboundMessage("m", "y")]))
    await applied.wait_for(lambda m: m.name == "m")  # the broker has both, no ACK came back
    await channel.client.close()  # the connection fails with both in flight
    with pytest.raises(ChannelError) as append_error:
        await append
    with pytest.raises(ChannelError) as publish_error:
        await publish
    assert append_error.value.retryable and append_error.value.code != 40001, "not retried"
    assert publish_error.value.code == 40001, "retried, then refused: the connection is closed"
    stored = {m["serial"]: m["data"] for m in ably_broker.history(NAME)}
    assert stored[serial] == "x", "the fragment is there once"


async def test_a_batch_without_ids_gets_idempotent_ids_with_one_base(
        open_ably: OpenAbly, ably_broker: AblyBroker) -> None:
    channel = await open_ably(NAME, "user")
    await channel.attach()
    await channel.publish([OutboundMessage("ai-input", "a"), OutboundMessage("ai-input", "b")])
    await channel.publish([OutboundMessage("ai-input", "c", id="mine")])
    ids = [m["id"] for m in ably_broker.history(NAME)]
    base = ids[0].rsplit(":", 1)[0]
    assert ids == [f"{base}:0", f"{base}:1", "mine"] and len(base) >= 16


async def test_bad_arguments_are_refused_before_anything_is_sent(
        open_ably: OpenAbly, ably_broker: AblyBroker) -> None:
    channel = await open_ably(NAME, "agent")
    await channel.attach()
    with pytest.raises(InvalidArgumentError):
        await channel.publish([OutboundMessage("m", "1"),
                               OutboundMessage("m", "2", ["not", "a", "map"])])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        await channel.append("s", 42, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        await channel.history(limit=0)
    assert ably_broker.history(NAME) == [], "the batch is atomic"


async def test_malformed_messages_reach_listeners_and_a_raising_listener_harms_no_one(
        open_ably: OpenAbly, ably_broker: AblyBroker) -> None:
    channel = await open_ably(NAME, "agent")
    calls: list[ChannelMessage] = []

    def broken(message: ChannelMessage) -> None:
        calls.append(message)
        raise RuntimeError("a buggy listener")

    inbox = Inbox()
    channel.subscribe(broken)
    channel.subscribe(inbox)
    await channel.attach()
    hostile = AblyRealtime(**ably_broker.python_client_options("hostile"))
    try:
        raw = await attached(hostile, NAME)
        await raw.publish([Message(name="ai-input", data="x", extras={"ai": "not a map"}),
                           Message(name="ai-cancel", data=b"\x00\xff", extras={"ai": {
                               "transport": {"run-id": 7}}}),
                           Message(name=None, data={"json": ["ok"]}),
                           Message(name="done", data="")])
        await inbox.wait_for(lambda m: m.name == "done")
    finally:
        await hostile.close()
    got = [(m.name, m.data, m.extras) for m in inbox.messages]
    assert got == [("ai-input", "x", {"ai": "not a map"}),
                   ("ai-cancel", bytearray(b"\x00\xff"), {"ai": {"transport": {"run-id": 7}}}),
                   (None, {"json": ["ok"]}, None),
                   ("done", "", None)]
    assert all(m.client_id == "hostile" and m.serial for m in inbox.messages)
    assert len(calls) == 4, "the raising listener was called for every message"


async def test_handles_sharing_one_connection_each_see_everything_once(
        ably_broker: AblyBroker) -> None:
    """Two per-request sessions of one worker use one realtime client: the second handle
    joins the SDK's existing attachment. What was published in between is in its history,
    what comes later reaches it live, and detaching the first leaves the second attached."""
    client = AblyRealtime(**ably_broker.python_client_options("agent"))
    publisher = AblyRealtime(**ably_broker.python_client_options("user"))
    try:
        first, second = AblyChannel(client, NAME), AblyChannel(client, NAME)
        first_inbox, second_inbox = Inbox(), Inbox()
        first.subscribe(first_inbox)
        second.subscribe(second_inbox)
        await first.attach()
        raw = await attached(publisher, NAME)
        await raw.publish("between", "1")
        await first_inbox.wait_for(lambda m: m.name == "between")
        await second.attach()
        page = await second.history()
        assert [m.name for m in page.items] == ["between"]
        assert second.attach_serial == page.items[0].serial
        await first.detach()
        await raw.publish("after", "2")
        await second_inbox.wait_for(lambda m: m.name == "after")
        assert [m.name for m in second_inbox.messages] == ["after"]
        assert [m.name for m in first_inbox.messages] == ["between"]
        await second.detach()
        assert [c.channels for c in ably_broker.connections()
                if c.client_id == "agent"] == [()], "the last handle detached the channel"
    finally:
        await client.close()
        await publisher.close()


async def test_history_until_attach_needs_an_attached_channel(open_ably: OpenAbly) -> None:
    channel = await open_ably(NAME, "agent")
    with pytest.raises(ChannelError) as info:
        await channel.history()
    assert info.value.code == 104007


async def test_detach_is_idempotent_and_quiet_once_the_connection_is_closed(
        open_ably: OpenAbly) -> None:
    channel = await open_ably(NAME, "agent")
    inbox = Inbox()
    channel.subscribe(inbox)
    await channel.attach()
    await channel.detach()
    await channel.detach()
    await channel.client.close()
    assert channel.client.connection.state == ConnectionState.CLOSED
    await channel.detach()


async def test_from_options_owns_its_client_and_closes_it(ably_broker: AblyBroker) -> None:
    async with AblyChannel.from_options(
            NAME, **ably_broker.python_client_options("agent")) as channel:
        await channel.attach()
        (serial,) = await channel.publish([OutboundMessage("m", "x")])
    assert channel.client.connection.state == ConnectionState.CLOSED
    assert ably_broker.history(NAME)[0]["serial"] == serial


@pytest.mark.parametrize(("code", "status", "retryable"), [
    (50000, 500, True), (50003, 504, True), (42910, 429, True), (90007, 408, True),
    (80002, 400, True), (40160, 401, False), (40400, 404, False), (40009, 400, False),
    (90001, 400, False)])
def test_ably_errors_are_retryable_only_when_trying_again_can_help(
        code: int, status: int, retryable: bool) -> None:
    error = translate_error("publish", NAME, AblyException("boom", status, code))
    assert (type(error), error.code, error.retryable) == (ChannelError, code, retryable)
    assert error.message == f"unable to publish; boom (Ably {code}, channel {NAME!r})"


def test_foreign_exceptions_become_channel_errors() -> None:
    assert translate_error("read history", NAME, OSError("reset")).retryable
    assert not translate_error("publish", NAME, TypeError("bug")).retryable
    same = ChannelError("already ours")
    assert translate_error("publish", NAME, same) is same


@pytest.mark.parametrize(("code", "status", "maybe_applied"), [
    (80002, 400, True), (80003, 400, True), (80017, 400, True),  # lost with the connection
    (500, 80000, True),  # ably-python 3.1.4's "Connection failed", status and code swapped
    (50000, 500, False), (42910, 429, False), (40001, 400, False)])  # refused or never sent
def test_only_an_append_lost_with_its_connection_counts_as_possibly_applied(
        code: int, status: int, maybe_applied: bool) -> None:
    """Appends are not idempotent: they are retried after a NACK (the service said no) but
    not after a connection failure with the append in flight; that stream is repaired at its
    end by one full-text update instead."""
    assert _maybe_applied(AblyException("x", status, code)) is maybe_applied


async def test_a_history_read_with_a_valid_token_sends_no_auth_on_the_connection(
        open_ably: OpenAbly, ably_broker: AblyBroker) -> None:
    """ably-python re-authenticates the realtime connection (AUTH, wait for CONNECTED, then
    re-attach every channel) before each REST request of a token-auth client: a round trip
    per history page. With a valid token the channel sends its bearer header itself."""
    channel = await open_ably(NAME, "agent")
    await channel.publish([OutboundMessage("note", "hello")])
    await channel.attach(serial=False)

    for _ in range(3):
        page = await channel.history()
        assert [m.data for m in page.items] == ["hello"]

    [connection] = [c for c in ably_broker.connections()
                    if c.connection_id == channel.connection_id]
    assert connection.auths == 0


async def test_a_new_agent_session_finds_a_just_published_input_without_reading_history(
        open_ably: OpenAbly) -> None:
    """The session's attach asks for the newest earlier messages (``rewind``): the input a
    POST names arrives with the attach, so locating it costs the attach's round trip only."""
    user = ClientSession(await open_ably(NAME, "user-abc"))
    await user.connect()
    handle = await user.send("hi")
    agent_channel = await open_ably(NAME, "agent")
    reads: list[object] = []
    history = agent_channel.history
    agent_channel.history = lambda **kw: reads.append(kw) or history(**kw)  # type: ignore[method-assign]
    session = AgentSession(agent_channel)

    run = session.create_run(handle.invocation)
    trigger = await run.locate()

    assert trigger.event_id == handle.invocation.input_event_id
    assert reads == []
    await session.close()
    await user.close()
