"""Channel backends: the ``Channel`` protocol, the embedded in-memory broker, and Ably.

The Ably backend lives in ``channels/_ably.py`` (the only module that imports ``ably``). It
is imported on first use of ``AblyChannel``: the SDK costs about 70 ms of import time that
programs on the in-memory broker need not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._wire import PresenceEvent
from ._base import Channel, HistoryPage, Listener, PresenceChannel, PresenceListener
from ._memory import InMemoryBroker, InMemoryChannel, WireRecord

if TYPE_CHECKING:
    from ._ably import AblyChannel

__all__ = ["AblyChannel", "Channel", "HistoryPage", "InMemoryBroker", "InMemoryChannel",
           "Listener", "PresenceChannel", "PresenceEvent", "PresenceListener", "WireRecord"]


def __getattr__(name: str) -> object:
    if name == "AblyChannel":
        from ._ably import AblyChannel

        return AblyChannel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
