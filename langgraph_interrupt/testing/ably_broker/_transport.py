"""One websocket's outbound side.

Owns: the per-socket ordered frame queue drained by a single writer task (so frames never
reorder and the broadcast path never awaits), delayed frames for fault injection, the bound on
queued frames (a client that stops reading is disconnected rather than growing memory), and
graceful close versus abort (a network drop: TCP closed with no close frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any, Final

from aiohttp import web

from ._protocol import Format, encode_frame

__all__ = ["Transport"]

log = logging.getLogger(__name__)

_CLOSE: Final = object()
"""Queue sentinel: close the socket gracefully once everything before it is written."""


class Transport:
    """The outbound queue and lifecycle of one accepted websocket."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        fmt: Format,
        *,
        max_queued_frames: int,
    ) -> None:
        self.ws = ws
        self.format: Format = fmt
        self._request = request
        self._max_queued = max_queued_frames
        self._queue: deque[tuple[object, float, bool]] = deque()
        self._unbounded = 0  # queued frames exempt from the bound
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.closing = False
        self.aborted = False
        self._close_queued = False
        self.writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.writer = asyncio.create_task(self._run_writer(), name="ably-broker-writer")

    # ------------------------------------------------------------------ enqueueing

    def send(self, message: dict[str, Any]) -> None:
        """Encode and queue one protocol message."""
        if self.closing:
            return
        self.send_frame(encode_frame(message, self.format))

    def send_frame(self, frame: str | bytes, delay_ms: int = 0, *, bounded: bool = True) -> None:
        """Queue an encoded frame, optionally held back ``delay_ms`` (later frames wait too).

        ``bounded=False`` is for bursts the broker generates itself in one go (a resume replay,
        already capped by the channel's event log); they must not count as a slow reader.
        """
        if self.closing:
            return
        if bounded and len(self._queue) - self._unbounded >= self._max_queued:
            log.warning(
                "ably broker: %d frames queued for a client that is not reading; dropping it",
                len(self._queue),
            )
            self.abort()
            return
        not_before = self._loop.time() + delay_ms / 1000 if delay_ms > 0 else 0.0
        self._queue.append((frame, not_before, bounded))
        if not bounded:
            self._unbounded += 1
        self._wake.set()

    def close_after_flush(self) -> None:
        """Close gracefully (close frame) after the queued frames are written."""
        if self.closing:
            return
        self._queue.append((_CLOSE, 0.0, True))
        self._close_queued = True
        self.closing = True
        self._wake.set()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame (a network failure)."""
        if self.aborted:
            return
        self.aborted = True
        self.closing = True
        self._queue.clear()
        self._unbounded = 0
        tcp = self._request.transport
        if tcp is not None:
            tcp.abort()
        self._wake.set()

    # ------------------------------------------------------------------ writing

    async def _run_writer(self) -> None:
        try:
            while not self.aborted:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item, not_before, bounded = self._queue.popleft()
                if not bounded:
                    self._unbounded -= 1
                if item is _CLOSE:
                    await self.ws.close()
                    return
                if not_before:
                    delay = not_before - self._loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        if self._is_aborted():  # aborted while the frame was held back
                            return
                if isinstance(item, str):
                    await self.ws.send_str(item)
                elif isinstance(item, bytes):
                    await self.ws.send_bytes(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away mid-write
            log.debug("ably broker: write failed (%r); dropping the connection", exc)
            self.abort()

    def _is_aborted(self) -> bool:
        return self.aborted

    async def finish(self) -> None:
        """Stop the writer and make sure the socket is closed (called once the reader ends)."""
        self.closing = True
        writer = self.writer
        if writer is not None and not writer.done():
            if self._close_queued and not self.aborted:
                # let a pending graceful close (and the frames before it) go out
                self._wake.set()
                await asyncio.wait({writer}, timeout=1.0)
            if not writer.done():
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        if not self.ws.closed and not self.aborted:
            with contextlib.suppress(Exception):
                await self.ws.close()
