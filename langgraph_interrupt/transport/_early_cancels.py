"""Cancels that arrive before their run exists on this worker.

Owns: :class:`EarlyCancels`, the bounded buffer (count and age) of ``ai-cancel`` messages
naming an input (``input-codec-message-id``) that no run here has adopted yet: the client
pressed Stop before the POST reached us. The run takes its cancel when it adopts that
input; the oldest entries are dropped first, so a flood cannot grow the buffer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator

from .._cancel import CancelTarget

__all__ = ["EarlyCancels"]


class EarlyCancels:
    """Cancels by input id, for runs that do not exist yet (see the module notes)."""

    __slots__ = ("_entries", "_size", "_ttl")

    def __init__(self, size: int, ttl: float) -> None:
        self._size = size
        self._ttl = ttl
        self._entries: OrderedDict[str, tuple[CancelTarget, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        """The input ids kept, oldest first."""
        return iter(self._entries)

    def put(self, key: str, target: CancelTarget) -> None:
        """Keep ``target`` for the input ``key`` (the newest cancel for it wins)."""
        now = time.monotonic()
        entries = self._entries
        entries.pop(key, None)
        entries[key] = (target, now)
        while entries and (len(entries) > self._size
                           or now - next(iter(entries.values()))[1] > self._ttl):
            entries.popitem(last=False)

    def take(self, key: str) -> CancelTarget | None:
        """The cancel kept for input ``key``, if still fresh (removed either way)."""
        entry = self._entries.pop(key, None)
        if entry is None or time.monotonic() - entry[1] > self._ttl:
            return None
        return entry[0]

    def clear(self) -> None:
        self._entries.clear()
