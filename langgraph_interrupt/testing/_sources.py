"""Scripted chunk sources for tests and demos: deterministic, controllable streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

__all__ = ["ScriptedStream", "text_chunks"]


def text_chunks(tokens: Sequence[str], *, text_id: str = "txt-0",
                finish_reason: str = "stop") -> list[dict[str, Any]]:
    """The UI-message chunks of a one-step text answer made of ``tokens``."""
    return [
        {"type": "start"},
        {"type": "start-step"},
        {"type": "text-start", "id": text_id},
        *({"type": "text-delta", "id": text_id, "delta": t} for t in tokens),
        {"type": "text-end", "id": text_id},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": finish_reason},
    ]


class ScriptedStream:
    """An async chunk source that streams ``tokens`` as one text answer, like an LLM.

    Args:
        tokens: the text deltas.
        delay: seconds between deltas (0: none; tests should prefer ``hold_at``).
        hold_at: after this many deltas, stop and wait until :meth:`release` (or forever):
            lets a test cancel "mid-stream" at an exact point without sleeping.
        fail_at: after this many deltas, raise ``error`` (a failing model).

    Attributes:
        holding: set once the stream is waiting at ``hold_at``.
        finalised: set when the generator was closed or cancelled (the "LLM stopped").
        sent: how many deltas were yielded.
    """

    def __init__(self, tokens: Sequence[str], *, delay: float = 0.0, hold_at: int | None = None,
                 fail_at: int | None = None, error: Exception | None = None,
                 text_id: str = "txt-0", finish_reason: str = "stop") -> None:
        self.tokens = list(tokens)
        self.delay = delay
        self.hold_at = hold_at
        self.fail_at = fail_at
        self.error = error or RuntimeError("model provider exploded (429)")
        self.text_id = text_id
        self.finish_reason = finish_reason
        self.holding = asyncio.Event()
        self.finalised = asyncio.Event()
        self._released = asyncio.Event()
        self.sent = 0

    def release(self) -> None:
        """Let a held stream continue."""
        self._released.set()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._run()

    async def _run(self) -> AsyncIterator[dict[str, Any]]:
        chunks = text_chunks(self.tokens, text_id=self.text_id, finish_reason=self.finish_reason)
        try:
            for chunk in chunks:
                if chunk["type"] in ("text-delta", "text-end"):
                    if self.sent == self.hold_at:
                        self.holding.set()
                        await self._released.wait()
                    if self.sent == self.fail_at:
                        raise self.error
                if chunk["type"] == "text-delta":
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    self.sent += 1
                yield chunk
        finally:
            self.finalised.set()
