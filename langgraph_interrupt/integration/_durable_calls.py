"""Completed tool calls kept in the checkpoint, so a resume on any worker does not redo them.

Owns: :class:`StepCalls`, the record of one tool-node step's completed calls. When a step
makes several calls and one of them suspends the graph (``interrupt()``), LangGraph keeps
none of the node's output: the resume runs the whole node again, and a call that had
completed (charged the card) would run twice. Each completed call's answer is therefore
written as a pending write of the step's checkpoint (``aput_writes``, under the channel
:data:`CHANNEL`, which no graph reads), and a resumed step reads them back (one read per
step, only when LangGraph says it is resuming) and returns them instead of running the tool.

The record lives with the thread, so a resume served by another process, or after a
restart, finds it; a later step has a new checkpoint and its own record. Steps of one call
(the ``Send`` per call of ``create_agent``, whose sibling tasks LangGraph keeps itself) write
nothing. A checkpointer that fails to write or read is logged and the step goes on as
without the record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["CHANNEL", "StepCalls"]

logger = logging.getLogger("langgraph_interrupt.integration")

#: The pending-write channel holding ``(AIMessage id, tool call id, output)`` per call.
CHANNEL = "__langgraph_interrupt_completed_call__"
# LangGraph's own configurable keys (``langgraph._internal._constants``), read here only.
_CHECKPOINTER = "__pregel_checkpointer"
_RESUMING = "__pregel_resuming"


class StepCalls:
    """One tool-node step's completed calls, in its checkpoint (see the module notes)."""

    __slots__ = ("_config", "_loaded", "_record", "_resuming", "_saver")

    def __init__(self, saver: Any, config: dict[str, Any], *, record: bool,
                 resuming: bool) -> None:
        self._saver = saver
        self._config = config
        self._record = record
        self._resuming = resuming
        self._loaded: asyncio.Future[dict[tuple[str, str], Any]] | None = None

    @classmethod
    def of(cls, config: Mapping[str, Any], calls: int) -> StepCalls | None:
        """The record of the step running with ``config`` (a tool node's), making ``calls``
        calls; ``None`` without a checkpointer and a thread."""
        conf = config.get("configurable") or {}
        saver = conf.get(_CHECKPOINTER)
        thread_id = conf.get("thread_id")
        if saver is None or thread_id is None or not hasattr(saver, "aput_writes"):
            return None
        # The node runs in its own namespace ("tools:<task id>"); its step's checkpoint is
        # its parent's, whose id the checkpoint map holds.
        namespace = str(conf.get("checkpoint_ns") or "").rpartition("|")[0]
        checkpoint_id = (conf.get("checkpoint_map") or {}).get(namespace)
        if checkpoint_id is None:
            return None
        return cls(saver, {"configurable": {"thread_id": thread_id,
                                            "checkpoint_ns": namespace,
                                            "checkpoint_id": checkpoint_id}},
                   record=calls > 1, resuming=bool(conf.get(_RESUMING)))

    async def get(self, message_id: str, call_id: str) -> Any | None:
        """The output recorded for the call, on a resumed step; else ``None``."""
        if not self._resuming:
            return None
        if self._loaded is None:
            self._loaded = asyncio.ensure_future(self._load())
        return (await asyncio.shield(self._loaded)).get((message_id, call_id))

    async def _load(self) -> dict[tuple[str, str], Any]:
        try:
            found = await self._saver.aget_tuple(self._config)
        except Exception as exc:
            logger.warning("reading completed tool calls from the checkpoint failed: %r", exc)
            return {}
        calls: dict[tuple[str, str], Any] = {}
        for _, channel, value in (found.pending_writes or []) if found is not None else ():
            if channel == CHANNEL and isinstance(value, tuple | list) and len(value) == 3:
                calls[(str(value[0]), str(value[1]))] = value[2]
        return calls

    async def put(self, message_id: str, call_id: str, output: Any) -> None:
        """Record a completed call's output (steps of several calls only)."""
        if not self._record:
            return
        try:
            await self._saver.aput_writes(self._config, [(CHANNEL, (message_id, call_id,
                                                                   output))],
                                          task_id=f"langgraph_interrupt:{call_id}")
        except Exception as exc:
            logger.warning("recording tool call %s in the checkpoint failed: %r", call_id, exc)
