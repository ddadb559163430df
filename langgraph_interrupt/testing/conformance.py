"""A conformance suite every ``Channel`` backend must pass.

Subclass :class:`ChannelConformance` in a test module and provide the ``open_channel``
fixture: an async callable ``(name, client_id) -> Channel`` returning a new participant on
that channel (and cleaning up after the test). Every check below is one promise of the
``Channel`` protocol (see ``langgraph_interrupt.channels._base``)::

    class TestMyBackend(ChannelConformance):
        @pytest.fixture
        async def open_channel(self):
            async def open_(name, client_id):
                return MyChannel(name, client_id=client_id)
            yield open_

Requires pytest and pytest-asyncio (``asyncio_mode = "auto"``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .._errors import ChannelError
from .._wire import (
    EVENT_CHANNEL_CLOSED,
    LIFECYCLE_CHANNEL,
    ChannelMessage,
    OutboundMessage,
    batch_ids,
    opened_channel,
)
from ..channels import Channel, HistoryPage
from ._inbox import Inbox

__all__ = ["ChannelConformance", "OpenChannel"]

OpenChannel = Callable[[str, "str | None"], Awaitable[Channel]]


def _extras(**transport: str) -> dict[str, Any]:
    return {"ai": {"transport": transport}}


async def _all_history(channel: Channel, limit: int = 100) -> list[ChannelMessage]:
    page: HistoryPage = await channel.history(limit=limit, until_attach=True)
    items = list(page.items)
    while page.has_next():
        page = await page.next()
        items.extend(page.items)
    return items


class ChannelConformance:
    """The promises of the ``Channel`` protocol, as tests. See the module docstring.

    Set ``announces_lifecycle = False`` for a backend without Ably's
    ``[meta]channel.lifecycle`` events; the agent endpoint's ``prewarm`` needs them.
    """

    announces_lifecycle = True

    @pytest.fixture
    def channel_name(self) -> str:
        return f"conformance-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def open_channel(self) -> OpenChannel:
        raise NotImplementedError("provide an open_channel fixture for your backend")

    async def _pair(self, open_channel: OpenChannel, name: str) -> tuple[Channel, Inbox,
                                                                          Channel, Inbox]:
        a, b = await open_channel(name, "alice"), await open_channel(name, "bob")
        inbox_a, inbox_b = Inbox(), Inbox()
        a.subscribe(inbox_a)
        b.subscribe(inbox_b)
        await a.attach()
        await b.attach()
        return a, inbox_a, b, inbox_b

    async def test_publish_returns_one_increasing_serial_per_message(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _, _ = await self._pair(open_channel, channel_name)
        first = await a.publish([OutboundMessage("m", "1")])
        batch = await a.publish([OutboundMessage("m", "2"), OutboundMessage("m", "3")])
        serials = first + batch
        assert len(serials) == 3
        assert serials == sorted(serials) and len(set(serials)) == 3

    async def test_a_batch_with_ids_needs_one_base_and_positions_as_ably_requires(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        """Ably refuses (40031) several messages in one publish whose client-supplied ids
        are not ``<base>:<index>``; the whole publish, as it is atomic."""
        a, inbox_a, _, _ = await self._pair(open_channel, channel_name)
        free = [OutboundMessage("m", "1", None, f"{channel_name}-a"),
                OutboundMessage("m", "2", None, f"{channel_name}-b")]
        with pytest.raises(ChannelError) as refused:
            await a.publish(free)
        assert refused.value.code == 40031
        serials = await a.publish(batch_ids(free, channel_name))
        got = await inbox_a.wait_count(lambda m: m.name == "m", 2)
        assert [m.data for m in got] == ["1", "2"] and [m.serial for m in got] == serials
        assert [m.id for m in got] == [f"{channel_name}:0", f"{channel_name}:1"]
        single = await a.publish([OutboundMessage("m", "3", None, f"{channel_name}-c")])
        assert len(single) == 1, "one message keeps any id"

    async def test_every_participant_receives_publishes_in_order_with_echo(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, inbox_a, _, inbox_b = await self._pair(open_channel, channel_name)
        await a.publish([OutboundMessage("m", str(i), _extras(i=str(i))) for i in range(5)])
        for inbox in (inbox_a, inbox_b):
            got = await inbox.wait_count(lambda m: m.name == "m", 5)
            assert [m.data for m in got] == ["0", "1", "2", "3", "4"]
            assert all(m.action == "message.create" and m.client_id == "alice" for m in got)
            assert all(m.version_serial in ("", m.serial) for m in got)
            assert got[0].extras == _extras(i="0")

    async def test_append_is_delivered_as_a_nameless_fragment_with_a_newer_version(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _, inbox_b = await self._pair(open_channel, channel_name)
        (serial,) = await a.publish([OutboundMessage("ai-output", "", _extras(stream="true"))])
        await a.append(serial, "Hel", _extras(stream="true", status="streaming"))
        await a.append(serial, "lo", _extras(stream="true", status="complete"))
        appends = await inbox_b.wait_count(lambda m: m.action == "message.append", 2)
        assert [m.data for m in appends] == ["Hel", "lo"]
        assert all(m.serial == serial and not m.name for m in appends)
        assert serial < appends[0].version_serial < appends[1].version_serial
        assert appends[1].extras == _extras(stream="true", status="complete")

    async def test_update_is_delivered_with_full_contents(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _, inbox_b = await self._pair(open_channel, channel_name)
        (serial,) = await a.publish([OutboundMessage("ai-output", "draft", _extras(v="1"))])
        await a.update(serial, "final", _extras(v="2"))
        update = await inbox_b.wait_for(lambda m: m.action == "message.update")
        assert (update.serial, update.data, update.extras) == (serial, "final", _extras(v="2"))
        assert update.version_serial > serial

    async def test_history_returns_one_aggregated_latest_version_per_message_newest_first(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, inbox_a, _, _ = await self._pair(open_channel, channel_name)
        await a.publish([OutboundMessage("first", "x")])
        (serial,) = await a.publish([OutboundMessage("ai-output", "", _extras(s="streaming"))])
        for piece in ("a", "b", "c"):
            await a.append(serial, piece, _extras(s="streaming"))
        await a.append(serial, "", _extras(s="complete"))
        await inbox_a.wait_count(lambda m: m.action == "message.append", 4)
        late = await open_channel(a.name, "carol")
        await late.attach()
        items = await _all_history(late)
        assert [m.name for m in items] == ["ai-output", "first"]
        aggregated = items[0]
        assert aggregated.serial == serial and aggregated.data == "abc"
        assert aggregated.extras == _extras(s="complete")
        assert aggregated.version_serial > serial

    async def test_history_pages_with_a_limit(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _, _ = await self._pair(open_channel, channel_name)
        for i in range(7):
            await a.publish([OutboundMessage("m", str(i))])
        late = await open_channel(a.name, "carol")
        await late.attach()
        page = await late.history(limit=3, until_attach=True)
        seen = [m.data for m in page.items]
        assert seen == ["6", "5", "4"]
        while page.has_next():
            page = await page.next()
            seen.extend(m.data for m in page.items)
        assert seen == ["6", "5", "4", "3", "2", "1", "0"]

    async def test_history_until_attach_excludes_later_messages(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _b, inbox_b = await self._pair(open_channel, channel_name)
        await a.publish([OutboundMessage("before", "1")])
        late = await open_channel(a.name, "carol")
        attach_serial = await late.attach()
        await a.publish([OutboundMessage("after", "2")])
        await inbox_b.wait_for(lambda m: m.name == "after")
        items = await _all_history(late)
        assert [m.name for m in items] == ["before"]
        assert attach_serial == items[0].serial == late.attach_serial

    async def test_attach_without_the_serial_bounds_history_all_the_same(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _b, inbox_b = await self._pair(open_channel, channel_name)
        await a.publish([OutboundMessage("before", "1")])
        late = await open_channel(a.name, "carol")
        await late.attach(serial=False)
        await a.publish([OutboundMessage("after", "2")])
        await inbox_b.wait_for(lambda m: m.name == "after")
        items = await _all_history(late)
        assert [m.name for m in items] == ["before"]
        assert await late.attach() == items[0].serial == late.attach_serial

    async def test_attach_serial_of_an_empty_channel_is_none(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        fresh = await open_channel(channel_name, "alice")
        assert await fresh.attach() is None
        assert await _all_history(fresh) == []

    async def test_late_joiner_first_contact_with_an_older_message_is_a_full_update(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _, _ = await self._pair(open_channel, channel_name)
        (serial,) = await a.publish([OutboundMessage("ai-output", "", _extras(s="streaming"))])
        await a.append(serial, "Hello", _extras(s="streaming"))
        late = await open_channel(a.name, "carol")
        inbox = Inbox()
        late.subscribe(inbox)
        await late.attach()
        await a.append(serial, " world", _extras(s="streaming"))
        await a.append(serial, "!", _extras(s="complete"))
        first, second = await inbox.wait_count(lambda m: m.serial == serial, 2)
        assert (first.action, first.data) == ("message.update", "Hello world")
        assert first.name == "ai-output"
        assert (second.action, second.data) == ("message.append", "!")

    async def test_ephemeral_messages_are_delivered_but_not_kept(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _, inbox_b = await self._pair(open_channel, channel_name)
        await a.publish([OutboundMessage("e", "gone", {**_extras(), "ephemeral": True})])
        await a.publish([OutboundMessage("kept", "here")])
        await inbox_b.wait_for(lambda m: m.name == "kept")
        assert any(m.name == "e" for m in inbox_b.messages)
        late = await open_channel(a.name, "carol")
        await late.attach()
        assert [m.name for m in await _all_history(late)] == ["kept"]

    async def test_a_repeated_publish_id_is_acknowledged_without_a_duplicate(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, _, inbox_b = await self._pair(open_channel, channel_name)
        first = await a.publish([OutboundMessage("once", "1", id="idem-1")])
        again = await a.publish([OutboundMessage("once", "1", id="idem-1")])
        await a.publish([OutboundMessage("marker", "2")])
        await inbox_b.wait_for(lambda m: m.name == "marker")
        assert first == again
        assert sum(1 for m in inbox_b.messages if m.name == "once") == 1

    async def test_unsubscribe_stops_delivery_to_that_listener_only(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        a, _, b, inbox_b = await self._pair(open_channel, channel_name)
        removed = Inbox()
        unsubscribe = b.subscribe(removed)
        unsubscribe()
        await a.publish([OutboundMessage("m", "1")])
        await inbox_b.wait_for(lambda m: m.name == "m")
        assert removed.messages == []

    async def test_a_channel_opening_and_closing_is_announced_on_the_lifecycle_channel(
            self, open_channel: OpenChannel, channel_name: str) -> None:
        """As Ably: ``channel.opened`` at a channel's first attachment, ``channel.closed``
        once nobody holds it; nobody publishes on the metachannel (40160)."""
        if not self.announces_lifecycle:
            pytest.skip("this backend does not announce channel lifecycle events")
        watcher = await open_channel(LIFECYCLE_CHANNEL, "agent")
        events = Inbox()
        watcher.subscribe(events)
        await watcher.attach(serial=False)
        a, _, b, _ = await self._pair(open_channel, channel_name)
        opened = await events.wait_for(lambda m: opened_channel(m) == channel_name)
        assert opened.client_id is None and opened.data["status"]["isActive"] is True
        await a.detach()
        await b.detach()
        closed = await events.wait_for(lambda m: m.name == EVENT_CHANNEL_CLOSED
                                       and m.data.get("channelId") == channel_name)
        assert closed.data["status"]["isActive"] is False
        ours = [m for m in events.messages if isinstance(m.data, dict)
                and m.data.get("channelId") == channel_name]
        assert [m.name for m in ours] == ["channel.opened", "channel.closed"]
        with pytest.raises(ChannelError) as refused:
            await watcher.publish([OutboundMessage("channel.opened", {"channelId": "x"})])
        assert refused.value.code == 40160
