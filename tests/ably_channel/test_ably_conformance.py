"""AblyChannel passes the channel conformance suite through the real SDK and the broker."""

from __future__ import annotations

import pytest

from langgraph_interrupt.channels import Channel
from langgraph_interrupt.testing.conformance import ChannelConformance, OpenChannel
from tests.ably_channel.conftest import OpenAbly


class TestAblyChannelConformance(ChannelConformance):
    @pytest.fixture
    def open_channel(self, open_ably: OpenAbly) -> OpenChannel:
        async def open_(name: str, client_id: str | None) -> Channel:
            return await open_ably(name, client_id)

        return open_
