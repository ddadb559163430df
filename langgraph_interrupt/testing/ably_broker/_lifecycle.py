"""Channel lifecycle events on ``[meta]channel.lifecycle``, as Ably publishes them.

Owns: when a channel is active, and the ``channel.opened`` / ``channel.closed`` messages
whose data is Ably's ``ChannelDetails`` (``{"channelId", "status": {"isActive",
"occupancy": {"metrics": {...}}}}``).

A channel is active from its first attachment until the last connection holding it detaches
or is gone for good. A connection whose socket dropped still holds its channels while it can
resume, as on Ably. Ably closes a channel some time after its last attachment goes; this
broker closes it at once. Every holding connection counts as a publisher and a subscriber in
the metrics; presence counts are not kept. Metachannels themselves have no lifecycle events,
and nobody may publish on one (40160, as Ably).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..._wire import META_PREFIX, channel_details

__all__ = ["Lifecycle"]

#: ``(event name, ChannelDetails)``: publishes one event on the lifecycle metachannel.
Announce = Callable[[str, dict[str, Any]], None]


class Lifecycle:
    """Which connections hold which channels; announces the first and the last."""

    def __init__(self, announce: Announce) -> None:
        self._announce = announce
        self._holders: dict[str, set[str]] = {}

    def hold(self, channel: str, connection_id: str) -> None:
        """``connection_id`` attached ``channel``: ``channel.opened`` if it is the first."""
        if channel.startswith(META_PREFIX):
            return
        holders = self._holders.setdefault(channel, set())
        if connection_id in holders:
            return
        holders.add(connection_id)
        if len(holders) == 1:
            self._announce("channel.opened", channel_details(channel, 1))

    def release(self, channel: str, connection_id: str) -> None:
        """``connection_id`` let ``channel`` go: ``channel.closed`` if it was the last."""
        holders = self._holders.get(channel)
        if not holders or connection_id not in holders:
            return
        holders.discard(connection_id)
        if not holders:
            del self._holders[channel]
            self._announce("channel.closed", channel_details(channel, 0))

    def clear(self) -> None:
        self._holders.clear()
