"""LangChain callback events to Vercel UI-message chunks.

Owns: :class:`ChunkTranslator`, a pure state machine (no I/O, no locks) that turns what
LangChain reports through callbacks into the chunks :meth:`Run.write` publishes, and keeps
what a cancel needs afterwards: the partial text of every LLM call still streaming and the
tool calls that never got an answer.

Events come from callbacks, not from the app's stream, so they are the same whatever
``stream_mode`` (or ``ainvoke``) the app chose (research §3 pitfall 9). Mapping, per LLM call
(one step): ``start-step``; text and reasoning deltas as ``text-*``/``reasoning-*`` parts;
tool-call chunks accumulated by index (the id and name arrive only on the first chunk) as
``tool-input-start``/``-delta``, and ``tool-input-available`` with the parsed arguments at
the end; ``finish-step``. Tools: ``tool-output-available`` or ``tool-output-error``, once per
call and never for a call answered by the client; its ``output`` is the value the tool returned
(a dict stays an object: :mod:`._tool_output`), or the message content when that was text or
content blocks. Custom events: ``data-<name>`` parts. The message's ``start`` goes before its
first chunk of any kind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from .._abort import RunCancelled
from ._tool_output import MISSING, take_tool_output

__all__ = ["CANCELLED_MARK", "ChunkTranslator", "LLMCall", "is_cancelled_tool_message"]

Chunk = dict[str, Any]
CloseReason = Literal["complete", "cancelled", "error", "suspended"]

#: Set in a ToolMessage's ``additional_kwargs`` (and ``response_metadata``) when the tool
#: call was cancelled rather than answered, so code and the client can tell them apart.
CANCELLED_MARK = "langgraph_interrupt_cancelled"

_DATA_NAME = re.compile(r"[^A-Za-z0-9_.:-]+")


def is_cancelled_tool_message(message: Any) -> bool:
    """Whether a ToolMessage stands for a cancelled (never answered) tool call."""
    kwargs = getattr(message, "additional_kwargs", None)
    return isinstance(kwargs, Mapping) and bool(kwargs.get(CANCELLED_MARK))


@dataclass(slots=True)
class LLMCall:
    """One chat-model call as streamed so far."""

    node: str | None  # the graph node it runs in (root-level name for subgraphs)
    message_id: str | None = None
    text: list[str] = field(default_factory=list)
    text_id: str | None = None
    reasoning_id: str | None = None
    streamed: bool = False
    by_index: dict[Any, str] = field(default_factory=dict)  # chunk index -> tool call id
    names: dict[str, str] = field(default_factory=dict)  # tool call id -> name
    args: dict[str, list[str]] = field(default_factory=dict)  # tool call id -> arg deltas

    @property
    def partial_text(self) -> str:
        return "".join(self.text)


@dataclass(slots=True)
class _Call:
    name: str
    input: Any = None
    answered: bool = False
    started: bool = False  # its tool began to run (a tool callback said so)


class ChunkTranslator:
    """Callback events in, UI-message chunks out. One per run; not thread-safe (the
    handler serialises calls).

    Args:
        tool_outputs: where tools' original return values are recorded
            (:attr:`RunScope.tool_outputs`); without it results go out as message content.
    """

    def __init__(self, tool_outputs: dict[int, tuple[Any, Any]] | None = None) -> None:
        self._tool_outputs = tool_outputs if tool_outputs is not None else {}
        self._ids = itertools.count()
        self._llms: dict[UUID, LLMCall] = {}
        self._tool_runs: dict[UUID, str] = {}  # tool run id -> tool call id
        self._calls: dict[str, _Call] = {}  # every tool call seen, in order
        self._shown: list[Any] = []  # finished model messages and tool results, in order
        self._started = False

    # -- what a cancel needs ---------------------------------------------------------------
    def open_llm_calls(self) -> list[LLMCall]:
        """LLM calls that started and did not end (their text is partial)."""
        return list(self._llms.values())

    def shown_messages(self) -> list[Any]:
        """The finished model messages and tool results this run published, in order: what
        the client saw, for a repair to put into the thread where a cancel left it out."""
        return list(self._shown)

    def unanswered_calls(self) -> dict[str, str]:
        """Tool call id -> name for every call with input but no output yet."""
        return {cid: c.name for cid, c in self._calls.items() if not c.answered}

    def expect_call(self, call_id: str, name: str) -> None:
        """Know a tool call announced by an earlier run (a resumed ``interrupt()``), so its
        result answers the original tool part instead of announcing the call again."""
        self._calls.setdefault(call_id, _Call(name or "tool"))

    def answered_by_client(self, call_id: str, name: str) -> None:
        """Know a tool call whose result the client supplied (a ``tool-result`` input): its
        part already shows that result, so the agent never publishes one for it (the JS agent
        does not either; republishing would replace the client's object with our text)."""
        self._calls[call_id] = _Call(name or "tool", answered=True)

    # -- run -------------------------------------------------------------------------------
    def begin(self) -> list[Chunk]:
        if self._started:
            return []
        self._started = True
        return [{"type": "start"}]

    def next_message(self) -> list[Chunk]:
        """End the message at a clean boundary (no model call streaming, no tool call
        unanswered) so what follows starts a new one: its ``finish``, if it started."""
        out = self.close("complete")
        self._started = False
        return out

    def close(self, reason: CloseReason, error_text: str | None = None) -> list[Chunk]:
        """Chunks that end the message: pending tool calls are answered ``cancelled`` (or
        failed) so no client shows a spinner forever; a suspended run keeps them open."""
        out: list[Chunk] = []
        if reason in ("complete", "error", "suspended"):
            for call in list(self._llms):
                out += self.llm_end(call, None)
        if reason in ("cancelled", "error"):
            for call_id in self.unanswered_calls():
                when = "completed" if self._calls[call_id].started else "started"
                text = (f"Cancelled before it {when}." if reason == "cancelled"
                        else f"The run failed before this tool {when}.")
                out += self._answer(call_id, error=text, cancelled=reason == "cancelled")
        if reason == "error":
            out.append({"type": "error", "errorText": error_text or "the run failed"})
        if reason == "complete" and self._started:
            out.append({"type": "finish", "finishReason": "stop"})
        elif reason == "suspended" and self._started:
            # The turn is over until the client answers: UI streams (useChat) close on finish.
            out.append({"type": "finish", "finishReason": "tool-calls"})
        return out

    # -- LLM -------------------------------------------------------------------------------
    def llm_start(self, run_id: UUID, metadata: Mapping[str, Any] | None) -> list[Chunk]:
        self._llms[run_id] = LLMCall(node=_root_node(metadata))
        return [*self.begin(), {"type": "start-step"}]

    def llm_token(self, run_id: UUID, token: str, message: Any) -> list[Chunk]:
        call = self._llms.get(run_id)
        if call is None:  # a token without a start: a model outside our view; adopt it
            out = self.llm_start(run_id, None)
            call = self._llms[run_id]
        else:
            out = []
        call.streamed = True
        if message is not None and call.message_id is None:
            call.message_id = getattr(message, "id", None)
        texts, reasonings = _split_content(token, message)
        for delta in reasonings:
            if call.reasoning_id is None:
                call.reasoning_id = f"r{next(self._ids)}"
                out.append({"type": "reasoning-start", "id": call.reasoning_id})
            out.append({"type": "reasoning-delta", "id": call.reasoning_id, "delta": delta})
        for delta in texts:
            if call.reasoning_id is not None:  # reasoning is over once text starts
                out.append({"type": "reasoning-end", "id": call.reasoning_id})
                call.reasoning_id = None
            if call.text_id is None:
                call.text_id = f"t{next(self._ids)}"
                out.append({"type": "text-start", "id": call.text_id})
            call.text.append(delta)
            out.append({"type": "text-delta", "id": call.text_id, "delta": delta})
        for piece in getattr(message, "tool_call_chunks", None) or ():
            out += self._tool_chunk(call, piece)
        return out

    def _tool_chunk(self, call: LLMCall, piece: Mapping[str, Any]) -> list[Chunk]:
        index, call_id = piece.get("index"), piece.get("id")
        key = index if index is not None else call_id
        out: list[Chunk] = []
        known = call.by_index.get(key)
        if known is None:
            if not call_id:
                return out  # an argument delta for a call we never saw start: unusable
            name = piece.get("name") or "tool"
            call.by_index[key] = known = call_id
            call.names[call_id] = name
            call.args[call_id] = []
            self._calls[call_id] = _Call(name)
            out.append({"type": "tool-input-start", "toolCallId": call_id, "toolName": name})
        delta = piece.get("args")
        if isinstance(delta, str) and delta:
            call.args[known].append(delta)
            out.append({"type": "tool-input-delta", "toolCallId": known,
                        "inputTextDelta": delta})
        return out

    def llm_end(self, run_id: UUID, message: Any) -> list[Chunk]:
        call = self._llms.pop(run_id, None)
        if call is None:
            return []
        if getattr(message, "type", None) == "ai":
            self._shown.append(message)
        out: list[Chunk] = []
        if call.reasoning_id is not None:
            out.append({"type": "reasoning-end", "id": call.reasoning_id})
        if not call.streamed and message is not None:  # the model did not stream: all at once
            texts, reasonings = _split_content(None, message)
            if reasonings:
                rid = f"r{next(self._ids)}"
                out += [{"type": "reasoning-start", "id": rid},
                        {"type": "reasoning-delta", "id": rid, "delta": "".join(reasonings)},
                        {"type": "reasoning-end", "id": rid}]
            if "".join(texts):
                call.text_id = f"t{next(self._ids)}"
                out += [{"type": "text-start", "id": call.text_id},
                        {"type": "text-delta", "id": call.text_id, "delta": "".join(texts)}]
        if call.text_id is not None:
            out.append({"type": "text-end", "id": call.text_id})
        final = {tc.get("id"): tc for tc in getattr(message, "tool_calls", None) or ()}
        invalid = {tc.get("id"): tc for tc in getattr(message, "invalid_tool_calls", None) or ()}
        for call_id, name in call.names.items():
            if call_id in final:
                out.append(self._available(call_id, name, final.pop(call_id).get("args")))
            else:
                bad = invalid.get(call_id) or {}
                raw = "".join(call.args.get(call_id, ()))
                self._calls[call_id].answered = True  # an unparsable call is never executed
                out.append({"type": "tool-input-error", "toolCallId": call_id, "toolName": name,
                            "input": raw, "errorText": str(bad.get("error") or
                                                           "invalid tool call arguments")})
        for call_id, tc in final.items():  # calls that arrived whole (no streaming)
            if isinstance(call_id, str) and call_id:
                name = tc.get("name") or "tool"
                self._calls[call_id] = _Call(name)  # a new call, even if the id was seen before
                out.append(self._available(call_id, name, tc.get("args")))
        out.append({"type": "finish-step"})
        return out

    def _available(self, call_id: str, name: str, args: Any) -> Chunk:
        self._calls.setdefault(call_id, _Call(name)).input = args
        return {"type": "tool-input-available", "toolCallId": call_id, "toolName": name,
                "input": _jsonable(args if args is not None else {})}

    # -- tools -----------------------------------------------------------------------------
    def tool_start(self, run_id: UUID, name: str, tool_call_id: str | None,
                   inputs: Any) -> list[Chunk]:
        if not tool_call_id:
            return []  # a tool called outside a model's tool call: nothing to attach it to
        self._tool_runs[run_id] = tool_call_id
        known = self._calls.get(tool_call_id)
        if known is not None:
            known.started = True
            return []
        # Executed without a streamed model call (e.g. a graph that builds calls itself).
        out = [*self.begin(), self._available(tool_call_id, name or "tool", inputs)]
        self._calls[tool_call_id].started = True
        return out

    def tool_end(self, run_id: UUID, output: Any) -> list[Chunk]:
        call_id = self._tool_runs.pop(run_id, None)
        if call_id is None:
            return []
        return self._answer_with(call_id, output)

    def tool_error(self, run_id: UUID, error: BaseException) -> list[Chunk]:
        call_id = self._tool_runs.pop(run_id, None)
        if call_id is None or _is_interrupt(error):
            return []  # interrupt(): the call stays pending while the run is suspended
        if isinstance(error, RunCancelled | asyncio.CancelledError):
            return self._answer(call_id, error="Cancelled before it completed.", cancelled=True)
        return self._answer(call_id, error=str(error) or type(error).__name__)

    def node_output(self, outputs: Any) -> list[Chunk]:
        """Answer calls from ToolMessages a node returned (tool nodes that skip cancelled
        calls, or tools whose callbacks never fired)."""
        out: list[Chunk] = []
        for message in _tool_messages(outputs):
            call_id = getattr(message, "tool_call_id", None)
            call = self._calls.get(call_id) if isinstance(call_id, str) else None
            if call is not None and not call.answered:
                out += self._answer_with(call_id, message)  # type: ignore[arg-type]
        return out

    def _answer_with(self, call_id: str, output: Any) -> list[Chunk]:
        if getattr(output, "type", None) == "tool":
            call = self._calls.get(call_id)
            if call is not None and not call.answered:
                self._shown.append(output)
            if is_cancelled_tool_message(output):
                return self._answer(call_id, error=_text(output.content), cancelled=True)
            if getattr(output, "status", "success") == "error":
                return self._answer(call_id, error=_text(output.content))
            value = take_tool_output(self._tool_outputs, output)
            output = output.content if value is MISSING else value
        return self._answer(call_id, output=output)

    def _answer(self, call_id: str, *, output: Any = None, error: str | None = None,
                cancelled: bool = False) -> list[Chunk]:
        call = self._calls.get(call_id)
        if call is None or call.answered:
            return []
        call.answered = True
        if error is not None:
            if cancelled and not error.lower().startswith("cancel"):
                error = f"Cancelled: {error}"
            return [*self.begin(), {"type": "tool-output-error", "toolCallId": call_id,
                                    "errorText": error}]
        return [*self.begin(), {"type": "tool-output-available", "toolCallId": call_id,
                                "output": _jsonable(output)}]

    # -- custom ----------------------------------------------------------------------------
    def custom(self, name: str, data: Any) -> list[Chunk]:
        clean = _DATA_NAME.sub("-", name).strip("-") or "event"
        return [*self.begin(), {"type": f"data-{clean}", "data": _jsonable(data)}]


# -- helpers ---------------------------------------------------------------------------------
def _root_node(metadata: Mapping[str, Any] | None) -> str | None:
    if not metadata:
        return None
    ns = metadata.get("langgraph_checkpoint_ns")
    if isinstance(ns, str) and "|" in ns:  # inside a subgraph: the root node that holds it
        return ns.split("|", 1)[0].split(":", 1)[0]
    node = metadata.get("langgraph_node")
    return node if isinstance(node, str) else None


def _split_content(token: str | None, message: Any) -> tuple[list[str], list[str]]:
    """Text and reasoning deltas of one streamed chunk (or of a whole message)."""
    texts: list[str] = []
    reasonings: list[str] = []
    content = getattr(message, "content", None) if message is not None else None
    if isinstance(content, str):
        if content:
            texts.append(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, Mapping):
                kind = block.get("type")
                if kind in ("text", "text_delta") and isinstance(block.get("text"), str):
                    texts.append(block["text"])
                elif kind in ("reasoning", "thinking"):
                    value = block.get("reasoning", block.get("thinking"))
                    if isinstance(value, str):
                        reasonings.append(value)
                    for item in block.get("summary") or ():
                        if isinstance(item, Mapping) and isinstance(item.get("text"), str):
                            reasonings.append(item["text"])
    elif token:
        texts.append(token)
    extra = getattr(message, "additional_kwargs", None)
    if isinstance(extra, Mapping) and isinstance(extra.get("reasoning_content"), str):
        reasonings.insert(0, extra["reasoning_content"])
    return [t for t in texts if t], [r for r in reasonings if r]


def _tool_messages(value: Any, depth: int = 0) -> Iterable[Any]:
    if depth > 3:
        return
    if getattr(value, "type", None) == "tool" and hasattr(value, "tool_call_id"):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _tool_messages(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tool_messages(item, depth + 1)
    elif type(value).__name__ == "Command":  # a node or tool returned Command(update=...)
        yield from _tool_messages(getattr(value, "update", None), depth + 1)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content
                       if isinstance(b, str | Mapping))
    return str(content)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    if hasattr(value, "model_dump"):  # pydantic: its JSON form (dates as ISO strings, ...)
        try:
            return _jsonable(value.model_dump(mode="json"))
        except Exception:  # a broken model_dump must not lose the output
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return str(value)


def _is_interrupt(error: BaseException) -> bool:
    return type(error).__name__ in ("GraphInterrupt", "NodeInterrupt", "GraphBubbleUp")
