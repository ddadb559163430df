"""Checkpoint repair: after any cancel, the thread is valid for the next turn.

Owns: :func:`repair_thread`. LangGraph leaves a cancelled thread broken (research §0.1-2):
an ``AIMessage`` whose tool calls have no ``ToolMessage`` (the next turn fails with the
providers' "tool_calls must be followed by tool messages" 400), and the partial answer the
user already saw is not in the checkpoint. The repair writes, through ``aupdate_state``:

1. what the client was shown and the thread lacks: finished model messages and tool results
   of a step that never committed (a model call inside a subgraph whose tools were running
   when Stop landed exists only in that subgraph's unfinished step), in the order they were
   published;
2. the partial text of every LLM call that was still streaming, as an ``AIMessage`` marked
   cancelled (``response_metadata["finish_reason"] == "cancelled"``), without the tool calls
   it had not finished;
3. a ``ToolMessage`` for every unanswered tool call: the real result when the tool had
   completed (recorded by :class:`CancellableToolNode`, or published to the client), else
   ``status="error"`` saying it was cancelled, marked machine-readably
   (:data:`CANCELLED_MARK`). What the text says is what is known: "before it started" for a
   call a :class:`CancellableToolNode` never started, "before it completed" for one it
   stopped, and "with no result" when nothing recorded whether it started (a plain
   ``ToolNode``, or a call whose step never began). A sync tool that a hard cancel left
   running on its thread (:class:`UnfinishedCall`) is waited for, briefly, so its own
   (cut-short) answer is kept.

It is idempotent and also runs before a new turn, which covers crashes and a new message sent
while a human-in-the-loop question was pending.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from ._toolnode import UnfinishedCall
from ._translate import CANCELLED_MARK, LLMCall, is_cancelled_tool_message

__all__ = ["RepairReport", "repair_thread", "unanswered_tool_calls"]

logger = logging.getLogger("langgraph_interrupt.langgraph")


@dataclass(frozen=True, slots=True)
class RepairReport:
    """What a repair wrote (empty lists when the thread was already valid)."""

    restored_messages: list[str] = field(default_factory=list)  # ids of shown, missing ones
    partial_messages: list[str] = field(default_factory=list)  # ids of saved partial answers
    completed_calls: list[str] = field(default_factory=list)  # answered with real results
    cancelled_calls: list[str] = field(default_factory=list)  # answered "cancelled"

    @property
    def changed(self) -> bool:
        return bool(self.restored_messages or self.partial_messages or self.completed_calls
                    or self.cancelled_calls)


def unanswered_tool_calls(messages: Sequence[BaseMessage]) -> dict[str, str]:
    """Tool call id -> tool name for every call (valid or invalid) with no ToolMessage."""
    pending: dict[str, str] = {}
    answered: set[str] = set()
    for message in messages:
        if isinstance(message, AIMessage):
            for call in [*message.tool_calls, *message.invalid_tool_calls]:
                call_id = call.get("id")
                if isinstance(call_id, str) and call_id:
                    pending[call_id] = str(call.get("name") or "tool")
        elif isinstance(message, ToolMessage):
            answered.add(message.tool_call_id)
    return {cid: name for cid, name in pending.items() if cid not in answered}


def _missing(shown: Sequence[BaseMessage], thread: Sequence[BaseMessage]) -> list[BaseMessage]:
    """What of ``shown`` the thread lacks, in order: model messages not there (by id), each
    with the results shown for its calls (a call of a message already in the thread is
    answered by the repair's last step, as before)."""
    present = {m.id for m in thread if getattr(m, "id", None)}
    restored_calls: set[str] = set()
    missing: list[BaseMessage] = []
    for message in shown:
        if isinstance(message, HumanMessage):
            if message.id and message.id not in present:
                missing.append(message)  # the run's input, when even it was not committed
                present.add(message.id)
        elif isinstance(message, AIMessage):
            if message.id and message.id not in present:
                missing.append(message)
                present.add(message.id)
                restored_calls.update(str(call.get("id")) for call in message.tool_calls)
        elif isinstance(message, ToolMessage) and message.tool_call_id in restored_calls:
            missing.append(message)
            restored_calls.discard(message.tool_call_id)  # once
    return missing


def _cancelled_tool_message(call_id: str, name: str, reason: str,
                            started: bool | None = None) -> ToolMessage:
    """The answer to a call that has none; ``started``: whether it is known to have started
    (``None``: not known, so the text claims neither)."""
    if started is None:
        text = f"Cancelled with no result: {reason}. It may not have started, or stopped " \
               "part-way."
    elif started:
        text = f"Cancelled before it completed: {reason}."
    else:  # as CancellableToolNode says it on the wire
        text = f"Cancelled before it started: {reason}"
    return ToolMessage(text, tool_call_id=call_id, name=name, status="error",
                       additional_kwargs={CANCELLED_MARK: True},
                       response_metadata={CANCELLED_MARK: True})


async def repair_thread(graph: Any, config: Mapping[str, Any], *,
                        partial: Sequence[LLMCall] = (),
                        shown: Sequence[BaseMessage] = (),
                        tool_results: Mapping[str, Any] | None = None,
                        reason: str = "cancelled", messages_key: str = "messages",
                        tool_node: str | None = None) -> RepairReport:
    """Make the checkpoint of ``config``'s thread valid; see the module docstring.

    A graph without a checkpointer, or whose state has no list under ``messages_key``, has
    nothing to repair (the channel is its memory, and :func:`to_langchain` answers dangling
    calls when it rebuilds the conversation).
    """
    if getattr(graph, "checkpointer", None) is None:
        return RepairReport()
    state = await graph.aget_state(config)
    values = getattr(state, "values", None)
    messages = values.get(messages_key) if isinstance(values, Mapping) else None
    if messages is None and shown and messages_key in (getattr(graph, "channels", None) or {}):
        messages = []  # cancelled before the first checkpoint was written: nothing there yet
    if not isinstance(messages, list):
        return RepairReport()
    nodes = set(getattr(graph, "nodes", {}) or {})
    report = RepairReport()
    if shown:
        restored = _missing(shown, await _committed_messages(graph, config, messages_key)
                            or messages)
        if restored:
            await graph.aupdate_state(config, {messages_key: restored},
                                      as_node=_fallback_node(nodes, tool_node))
            report.restored_messages.extend(str(m.id) for m in restored)
            state = await graph.aget_state(config)
            messages = state.values.get(messages_key) or restored
    known_ids = {m.id for m in messages if getattr(m, "id", None)}

    for call in partial:
        text = call.partial_text
        if not text.strip():
            continue
        message_id = call.message_id or f"cancelled-{uuid.uuid4()}"
        if message_id in known_ids:
            continue  # the message made it into the checkpoint after all
        node = call.node if call.node in nodes else _fallback_node(nodes, tool_node)
        saved = AIMessage(text, id=message_id,
                          response_metadata={"finish_reason": "cancelled", CANCELLED_MARK: True},
                          additional_kwargs={CANCELLED_MARK: True})
        await graph.aupdate_state(config, {messages_key: [saved]}, as_node=node)
        report.partial_messages.append(message_id)

    # aupdate_state writes on top of the *committed* checkpoint and drops the pending writes
    # of the interrupted step; aget_state's values include them. So what is unanswered is
    # read from the committed values, and answers found only in pending writes (a Send task
    # that finished before the cancel) are written again, for real.
    committed = await _committed_messages(graph, config, messages_key)
    dangling = unanswered_tool_calls(committed if committed is not None else messages)
    if dangling:
        answers = await _answers(dangling, tool_results or {}, messages, shown, reason)
        for call_id, answer in answers.items():
            (report.cancelled_calls if is_cancelled_tool_message(answer)
             else report.completed_calls).append(call_id)
        node = tool_node if tool_node in nodes else (
            "tools" if "tools" in nodes else _fallback_node(nodes, None))
        await graph.aupdate_state(config, {messages_key: list(answers.values())}, as_node=node)
    if report.changed:
        logger.info("repaired thread %s: %s", config.get("configurable", {}).get("thread_id"),
                    report)
    return report


async def _answers(dangling: Mapping[str, str], tool_results: Mapping[str, Any],
                   messages: Sequence[BaseMessage], shown: Sequence[BaseMessage],
                   reason: str) -> dict[str, ToolMessage]:
    """An answer for every dangling call, in order: its real result (recorded by the tool
    node, in the interrupted step's pending writes, or published to the client), else what
    a hard cancel left of it (a sync tool still on its thread is waited for), else a
    cancelled answer saying what is known."""
    found: dict[str, ToolMessage] = {}
    for source in (tool_results.values(), messages, shown):
        for message in source:
            if isinstance(message, ToolMessage) and message.tool_call_id in dangling:
                found.setdefault(message.tool_call_id, message)
    unfinished = {call_id: value for call_id, value in tool_results.items()
                  if call_id in dangling and call_id not in found
                  and isinstance(value, UnfinishedCall)}
    late = await asyncio.gather(*(value.answer(call_id)
                                  for call_id, value in unfinished.items()))
    for call_id, answer in zip(unfinished, late, strict=True):
        if answer is not None:
            found[call_id] = answer
    answers: dict[str, ToolMessage] = {}
    for call_id, name in dangling.items():
        marker = unfinished.get(call_id)
        answers[call_id] = found.get(call_id) or _cancelled_tool_message(
            call_id, name, reason, None if marker is None else marker.started)
    return answers


async def _committed_messages(graph: Any, config: Mapping[str, Any],
                              key: str) -> list[BaseMessage] | None:
    checkpointer = getattr(graph, "checkpointer", None)
    try:
        saved = await checkpointer.aget_tuple(config)  # type: ignore[union-attr]
    except Exception:  # a checkpointer without async support: fall back to the state view
        return None
    if saved is None:
        return None
    values = saved.checkpoint.get("channel_values", {})
    messages = values.get(key) if isinstance(values, Mapping) else None
    return messages if isinstance(messages, list) else None


def _fallback_node(nodes: set[str], preferred: str | None) -> str | None:
    if preferred and preferred in nodes:
        return preferred
    for name in ("agent", "model", "chatbot", "llm"):
        if name in nodes:
            return name
    candidates = sorted(n for n in nodes if not n.startswith("__"))
    return candidates[0] if candidates else None
