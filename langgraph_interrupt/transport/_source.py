"""What :meth:`Run.pipe` consumes and what it returns.

Owns: :class:`PipeResult`, adapting a sync or async chunk source without hiding the
caller's iterator (closing ours closes theirs: a cancelled LLM stream must be finalised),
closing an abandoned source quietly, and turning a source's exception into the error a run
reports.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass

from .._abort import CancelReason
from .._errors import AITransportError, StreamError, unable_to
from .._wire import RunEndReason
from ..codec import Chunk
from ._progress import Interruption

__all__ = ["PipeResult", "as_error", "chunks_of", "close_quietly"]

logger = logging.getLogger("langgraph_interrupt.transport")


@dataclass(frozen=True, slots=True)
class PipeResult:
    """How a :meth:`Run.pipe` ended.

    Attributes:
        reason: ``complete`` (the source ended), ``cancelled`` (the run's signal fired) or
            ``error`` (the source raised or the channel failed; see ``error``).
        error: the error for ``reason == "error"``.
        cancel_reason: why, for ``reason == "cancelled"``.
        finish_reason: the ``finishReason`` of the source's ``finish`` chunk, if any.
        interruption: for ``reason == "cancelled"``, the cancel's timeline (received →
            aborted → stopped → terminal sequence acknowledged), as ``Run.interruption``.
    """

    reason: RunEndReason
    error: AITransportError | None = None
    cancel_reason: CancelReason | None = None
    finish_reason: str | None = None
    interruption: Interruption | None = None

    @property
    def suspend_requested(self) -> bool:
        """True when the model stopped to wait for a client tool or approval (§7)."""
        return self.reason == "complete" and self.finish_reason == "tool-calls"


async def _from_sync(source: Iterable[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in source:
        yield chunk


def chunks_of(source: AsyncIterable[Chunk] | Iterable[Chunk]) -> AsyncIterator[Chunk]:
    """An async iterator over ``source``: the caller's own for an async source, so that
    closing ours closes theirs."""
    if isinstance(source, AsyncIterable):
        return aiter(source)
    return _from_sync(source)


def as_error(exc: BaseException) -> AITransportError:
    """The package error for what a source (or a hook) raised (the original as cause)."""
    if isinstance(exc, AITransportError):
        return exc
    error = StreamError(unable_to("complete run", exc))
    error.__cause__ = exc
    return error


async def close_quietly(iterator: AsyncIterator[Chunk]) -> None:
    """Close an abandoned source, best effort."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # best effort: the source is being abandoned
        logger.debug("closing the piped source raised", exc_info=True)
