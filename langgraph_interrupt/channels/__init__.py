"""Channel backends: the ``Channel`` protocol and the embedded in-memory broker.

The Ably backend lives in ``channels/_ably.py`` (the only module that imports ``ably``).
"""

from ._base import Channel, HistoryPage, Listener
from ._memory import InMemoryBroker, InMemoryChannel, WireRecord

__all__ = ["Channel", "HistoryPage", "InMemoryBroker", "InMemoryChannel", "Listener", "WireRecord"]
