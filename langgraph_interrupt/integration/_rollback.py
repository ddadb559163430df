"""Rollback: a run's graph writes discarded, the thread as it was before the run.

Owns: :func:`thread_head` (what the thread was when a run began) and :func:`rollback_thread`.
Used when a newer input interrupts a run under the ``rollback`` multitask strategy
(LangGraph Platform's ``multitask_strategy="rollback"``): the interrupted run's partial
output stays on the channel, marked cancelled, but the checkpointer forgets it, input
included, so the next run sees the conversation as before it.

Checkpoints are append-only, so the rollback does not delete the run's checkpoints: it
writes a copy of the earlier head as the new head (LangGraph's ``__copy__`` update, a
fork), or deletes the thread if it had no checkpoint before the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["rollback_thread", "thread_head"]

logger = logging.getLogger("langgraph_interrupt.langgraph")


async def thread_head(graph: Any, config: Mapping[str, Any]) -> Any | None:
    """The thread's current state snapshot, or ``None`` without a checkpointer."""
    if getattr(graph, "checkpointer", None) is None:
        return None
    return await graph.aget_state(config)


def _checkpoint_id(snapshot: Any) -> str | None:
    configurable = (getattr(snapshot, "config", None) or {}).get("configurable") or {}
    checkpoint_id = configurable.get("checkpoint_id")
    return checkpoint_id if isinstance(checkpoint_id, str) else None


async def rollback_thread(graph: Any, config: Mapping[str, Any], before: Any) -> bool:
    """Make the thread's head equal ``before`` (a :func:`thread_head` snapshot); returns
    whether anything had to change."""
    head = await graph.aget_state(config)
    then = _checkpoint_id(before)
    if _checkpoint_id(head) == then:
        return False  # the run wrote nothing
    if then is None:  # the thread was empty: it is again
        thread_id = (config.get("configurable") or {}).get("thread_id")
        await graph.checkpointer.adelete_thread(thread_id)
        return True
    await graph.aupdate_state(before.config, None, as_node="__copy__")
    return True
