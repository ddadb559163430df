"""Steers into a running graph: the user's follow-up in view of the next model call.

Owns: turning a run's drained steers (:attr:`Run.steers`) into human messages, and the two
moments ``run_graph`` hands them to the graph:

* **Mid-run** (a checkpointer is needed): when a steer is pending, the graph is asked to
  stop at the end of the step it is in (LangGraph's drain); if the thread is then at a
  clean boundary (no tool call left unanswered, so an AI message is never split from its
  tool results) and more steps are due, the graph resumes with the steers appended to the
  thread (``Command(update=...)``, so the steps that were due run next, whatever the graph's
  node names): the next model call sees them. A steer that
  lands during a long tool is seen right after that tool. At a boundary that is not clean,
  the graph resumes without them and stops again at the next one.
* **At the end**: a graph that finished while steers were pending goes round once more
  with them as the input (with a checkpointer, just the steers; without, the whole
  conversation from the channel, steers included), as the JS agent's
  ``while (run.hasInput())`` loop does. Not after a cancel.

The answer that follows carries the steers' ids (``steer-codec-message-ids``), so each
client's steer outcome reads ``consumed``. A steer whose content cannot be read off the
channel is given back (not drained), so it is never reported consumed unseen. For graphs
driven by the app (the drop-in handler), :func:`take_steers` hands the steers to a model
node (see ``steering_middleware`` for ``create_agent``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from ..transport import Run, Steer
from ._messages import load_conversation, to_langchain
from ._repair import unanswered_tool_calls
from ._signal import current_scope

__all__ = ["steer_messages", "steer_round_input", "take_in_steers_mid_run", "take_steers"]

logger = logging.getLogger("langgraph_interrupt.langgraph")


async def steer_messages(run: Run, steers: Sequence[Steer] | None = None
                         ) -> list[BaseMessage]:
    """The drained steers (or ``steers``) as LangChain messages, in the order they came."""
    steers = run.steers if steers is None else steers
    if not steers:
        return []
    entries, _ = await load_conversation(run.channel)
    by_id = {entry.codec_message_id: entry.message for entry in entries}
    found = [by_id[s.codec_message_id] for s in steers if s.codec_message_id in by_id]
    missing = [s.codec_message_id for s in steers if s.codec_message_id not in by_id]
    if missing:
        logger.warning("run %s: %d steer(s) not readable from the channel yet; kept for "
                       "later", run.run_id, len(missing))
        run._steering.undrain(missing)
    return to_langchain(found)


async def take_in_steers_mid_run(graph: Any, run: Run, cfg: RunnableConfig,
                                 messages_key: str,
                                 before_drain: Callable[[], Awaitable[None]]
                                 ) -> tuple[bool, Any]:
    """The graph stopped at a step boundary for a steer. Returns ``(resume, input)``:
    whether it has steps left, and the input that resumes it (the steers, if the thread is
    clean there; else ``None``, to stop again at the next boundary). ``before_drain`` runs
    first at a clean boundary (the runner finishes the assistant message there, so the
    answer to the steer is a new message, after it)."""
    state = await graph.aget_state(cfg)
    if not state.next:
        return False, None  # it had finished: the end-of-graph round takes them in
    messages = (state.values or {}).get(messages_key) or []
    if unanswered_tool_calls(messages) or not run._steering.pending:
        return True, None
    await before_drain()
    if run.has_input():
        steers = await steer_messages(run)
        if steers:
            return True, Command(update={messages_key: steers})
    return True, None


async def steer_round_input(graph: Any, run: Run, cfg: RunnableConfig, handler: Any,
                            messages_key: str, tool_node: str | None, before: Any,
                            auto_input: Callable[..., Awaitable[Any]]) -> Any:
    """The input of one more round for steers that came while the graph finished (the
    assistant message is finished first, then they are drained); ``None`` if none can be
    read yet."""
    await handler.next_message()
    if not run.has_input():
        return None
    steers = await steer_messages(run)
    if not steers:
        return None
    if getattr(graph, "checkpointer", None) is not None:
        return {messages_key: steers}
    return await auto_input(graph, run, cfg, handler, messages_key, tool_node, before)


async def take_steers() -> list[BaseMessage]:
    """In a model node (or a ``before_model`` hook): the steers that arrived since the last
    call, as human messages, drained (the answer that follows takes them in).

    For graphs run by your own code with the drop-in :class:`RunCallbackHandler` (with
    ``run_graph`` steers arrive by themselves, and this returns ``[]``). Put them before
    the model call and in the node's update, so the thread keeps them in order::

        async def agent(state):
            steers = await take_steers()
            reply = await model.ainvoke([*state["messages"], *steers])
            return {"messages": [*steers, reply]}

    A model node runs after the tool results of the previous model call, so this never
    splits an AI message from its tool results. Outside a run: ``[]``.
    """
    scope = current_scope()
    run = scope.run if scope is not None else None
    if not isinstance(run, Run) or run.cancelled:
        return []
    drained = run._steering.drain_new()
    return await steer_messages(run, drained) if drained else []
