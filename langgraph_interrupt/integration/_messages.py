"""The conversation on the channel, as LangChain messages.

Owns: :func:`load_conversation` (channel history folded by the codec's decoder) and
:func:`to_langchain` (UI messages to LangChain messages). Used when a graph has no
checkpointer (the channel is then the only memory) and to read the new input of a run.

Unlike the JS client's prompt builder, which drops a cancelled run *and the user input it
answered* (research §4.3), cancelled turns are kept: their partial text is what the user saw,
and every tool call without a result gets a cancelled ToolMessage, so the history is valid
for the strictest provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools.base import TOOL_MESSAGE_BLOCK_TYPES

from .._wire import ChannelMessage
from ..channels import Channel
from ..codec import DecodedMessage, UIMessageDecoder
from ._translate import CANCELLED_MARK

__all__ = ["load_conversation", "to_langchain"]


async def load_conversation(channel: Channel, *, page_size: int = 100, max_pages: int = 20,
                            ) -> tuple[list[DecodedMessage], list[ChannelMessage]]:
    """The session's messages, oldest first, from channel history (bounded), each with its
    codec-message-id (the id the run's trigger names its input by); and the raw channel
    messages, oldest first."""
    collected: list[ChannelMessage] = []
    page = await channel.history(limit=page_size, until_attach=False)
    for _ in range(max_pages):
        collected.extend(page.items)
        if not page.has_next():
            break
        page = await page.next()
    collected.reverse()  # history is newest first
    decoder = UIMessageDecoder()
    for message in collected:
        decoder.apply(message)
    return decoder.entries(), collected


def to_langchain(messages: Sequence[Mapping[str, Any]]) -> list[BaseMessage]:
    """Convert UI messages to LangChain messages (text, tool calls and results).

    Each assistant step (the parts between ``step-start`` parts) becomes one ``AIMessage``
    followed by the ``ToolMessage``s of its calls. Reasoning, data and source parts stay on
    the channel: providers do not take them back as history.
    """
    out: list[BaseMessage] = []
    for message in messages:
        role = message.get("role")
        parts = message.get("parts") or []
        if role == "user":
            text = "".join(p.get("text", "") for p in parts
                           if isinstance(p, Mapping) and p.get("type") == "text")
            if text:
                out.append(HumanMessage(text, id=_str(message.get("id"))))
        elif role == "assistant":
            out.extend(_assistant(message, parts))
    return out


def _assistant(message: Mapping[str, Any], parts: Sequence[Any]) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    steps: list[list[Mapping[str, Any]]] = [[]]
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "step-start" and steps[-1]:
            steps.append([])
        steps[-1].append(part)
    for index, step in enumerate(steps):
        text = "".join(p.get("text", "") for p in step if p.get("type") == "text")
        tools = [p for p in step if _is_tool(p)]
        calls = [{"name": _tool_name(p), "args": _args(p.get("input")), "id": p["toolCallId"],
                  "type": "tool_call"} for p in tools]
        if not text and not calls:
            continue
        msg_id = _str(message.get("id"))
        out.append(AIMessage(text, tool_calls=calls,
                             id=f"{msg_id}-{index}" if msg_id and index else msg_id))
        for part in tools:
            out.append(_result(part))
    return out


def _is_tool(part: Mapping[str, Any]) -> bool:
    kind = part.get("type")
    return (isinstance(kind, str) and (kind.startswith("tool-") or kind == "dynamic-tool")
            and isinstance(part.get("toolCallId"), str))


def _tool_name(part: Mapping[str, Any]) -> str:
    name = part.get("toolName")
    if isinstance(name, str) and name:
        return name
    kind = str(part.get("type", "tool-tool"))
    return kind[5:] if kind.startswith("tool-") else "tool"


def _result(part: Mapping[str, Any]) -> ToolMessage:
    call_id, name, state = part["toolCallId"], _tool_name(part), part.get("state")
    if state == "output-available":
        return ToolMessage(_content(part.get("output")), tool_call_id=call_id, name=name)
    if state == "output-error":
        text = str(part.get("errorText") or "the tool failed")
        cancelled = text.lower().startswith("cancel")
        kwargs = {CANCELLED_MARK: True} if cancelled else {}
        return ToolMessage(text, tool_call_id=call_id, name=name, status="error",
                           additional_kwargs=kwargs)
    if state == "output-denied":
        return ToolMessage("The user denied this tool call.", tool_call_id=call_id, name=name,
                           status="error")
    # No result ever came (the run was cancelled or failed): answer it so the history stays
    # valid, and say so, without claiming the call ran (the channel does not say).
    return ToolMessage("Cancelled with no result: it may not have started, or stopped "
                       "part-way.", tool_call_id=call_id, name=name, status="error",
                       additional_kwargs={CANCELLED_MARK: True})


def _content(output: Any) -> str | list[Any]:
    """A tool part's output as ToolMessage content, the way ``ToolNode`` made it: text and
    lists of content blocks as they are, any other value as its JSON text."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(
            isinstance(b, Mapping) and b.get("type") in TOOL_MESSAGE_BLOCK_TYPES
            for b in output):
        return [dict(b) for b in output]
    return json.dumps(output, ensure_ascii=False)


def _args(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"input": value}
        return parsed if isinstance(parsed, dict) else {"input": parsed}
    return {} if value is None else {"input": value}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
