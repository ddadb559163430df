"""Scripted chat models and a provider-history oracle, for testing cancellation offline.

Why: the integration must be exercised mid-token, mid-tool-call and across turns without a
provider key. LangChain's ``GenericFakeChatModel`` cannot sleep between tokens, has no
``_astream`` and emits no ``tool_call_chunks``, and no fake rejects the histories real providers
reject. So:

* :class:`FakeStreamingChatModel` streams a scripted answer the way a provider does: content
  blocks (reasoning first, when scripted) token by token, then OpenAI-style tool-call chunks,
  then one final ``chunk_position="last"`` chunk carrying ``finish_reason``. Every path
  (``invoke``, ``ainvoke``, ``stream``, ``astream``, LangGraph ``stream_mode="messages"``) is
  built from the same chunks, so they all end in the same ``AIMessage``.
* :class:`StrictFakeChatModel` first checks the prompt with :func:`find_history_errors` and raises
  :class:`ProviderHistoryError` with the providers' 400 text.
* :func:`find_history_errors` is a pure oracle over ``BaseMessage`` lists (e.g. a checkpoint's
  ``messages``); it deliberately shares no code with ``langgraph_interrupt.integration``.

Representation (langchain-core 1.7): string content streams as string chunks ("Hello",
" world"). List content streams block by block, each delta a one-block list carrying the
block's position as ``index`` (``[{"type": "reasoning", "reasoning": "<delta>", "index": 0}]``),
so chunk merging rebuilds the blocks and ``content_blocks`` shows the reasoning; the final
message keeps those ``index`` keys, as streamed Anthropic messages do. Message ids are left to
LangChain unless the scripted message has one (LangChain uses ``lc_run--<run id>`` when
streaming and ``lc_run--<run id>-0`` otherwise).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr, SkipValidation, model_validator

__all__ = [
    "FakeStreamingChatModel",
    "ProviderHistoryError",
    "Responder",
    "ScriptExhaustedError",
    "ScriptItem",
    "StreamOutcome",
    "StrictFakeChatModel",
    "find_history_errors",
    "split_words",
    "validate_provider_history",
]

Responder = Callable[[list[BaseMessage]], AIMessage | str]
"""Computes a reply from the prompt (e.g. to answer a tool result or to raise a 429)."""
ScriptItem = str | AIMessage | Responder
"""One scripted reply: plain text, a full ``AIMessage``, or a :data:`Responder` for one call."""
StreamOutcome = Literal["complete", "cancelled", "closed", "error"]
"""How one model call ended: all chunks sent, ``CancelledError``, generator closed early, raised."""

_WORDS = re.compile(r"\s*\S+|\s+")


def split_words(text: str) -> list[str]:
    """Split ``text`` into word tokens that keep their leading whitespace.

    ``"Hello world"`` gives ``["Hello", " world"]``; joining the tokens gives ``text`` back.
    """
    return _WORDS.findall(text)


class ScriptExhaustedError(RuntimeError):
    """A fake model was called more often than it was scripted for (a test-setup error)."""


class ProviderHistoryError(ValueError):
    """A strict fake model refused a prompt the way a provider answers HTTP 400.

    Attributes:
        errors: every problem :func:`find_history_errors` found, in message order.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("Error code: 400 - " + " | ".join(self.errors))


# The providers' own texts (OpenAI chat completions; Anthropic messages API).
_MISSING = ("An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: ")
_ORPHAN = ("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
           "message with 'tool_calls'.")
_EMPTY = "all messages must have non-empty content except for the optional final assistant message"
_DUPLICATE = ("each tool_use must have a single result. "
              "Found multiple `tool_result` blocks with id: ")


def _blank(message: BaseMessage) -> bool:
    """No non-whitespace text and no other payload (an image counts; reasoning does not)."""
    if isinstance(message.content, str):
        return not message.content.strip()
    for block in message.content:
        if isinstance(block, str):
            text = block
        elif block.get("type") == "text":
            text = str(block.get("text", ""))
        elif block.get("type") in ("reasoning", "thinking"):
            continue
        else:
            return False
        if text.strip():
            return False
    return True


def find_history_errors(messages: Sequence[BaseMessage]) -> list[str]:
    """Everything the strictest providers would reject in ``messages``; ``[]`` when valid.

    Call it on a prompt or on a checkpoint's ``messages`` to prove the next turn will be
    accepted. Each error is ``"messages[<i>]: <provider text>"``. The rules:

    * an assistant message's tool calls (``tool_calls`` and ``invalid_tool_calls``, which
      LangChain also sends) must each be answered by a ``ToolMessage`` in the run of tool
      messages directly after it (OpenAI's "must be followed by tool messages" error; a message
      in between, or the end of the history, leaves them unanswered);
    * a ``ToolMessage`` must answer a call of that assistant message (OpenAI), and only once
      (Anthropic);
    * assistant messages without tool calls and human messages must not be blank: some
      non-whitespace text or another block such as an image; reasoning alone does not count
      (Anthropic and Gemini reject empty turns; this oracle also rejects an empty *final*
      assistant message, which Anthropic would accept as a prefill).
    """
    errors: list[str] = []
    open_at = -1  # index of the assistant message whose tool calls are being answered
    pending: list[str] = []
    answered: set[str] = set()

    def close() -> None:
        if pending:
            errors.append(f"messages[{open_at}]: {_MISSING}{', '.join(pending)}")
        pending.clear()
        answered.clear()

    for i, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            call_id = message.tool_call_id
            if call_id in pending:
                pending.remove(call_id)
                answered.add(call_id)
            elif call_id in answered:
                errors.append(f"messages[{i}]: {_DUPLICATE}{call_id}")
            else:
                errors.append(f"messages[{i}]: {_ORPHAN}")
            continue
        close()
        if isinstance(message, AIMessage):
            ids = [str(c.get("id")) for c in (*message.tool_calls, *message.invalid_tool_calls)]
            if ids:
                open_at, pending[:] = i, ids
            elif _blank(message):
                errors.append(f"messages[{i}]: {_EMPTY}")
        elif isinstance(message, HumanMessage) and _blank(message):
            errors.append(f"messages[{i}]: {_EMPTY}")
    close()
    return errors


def validate_provider_history(messages: Sequence[BaseMessage]) -> None:
    """Raise :class:`ProviderHistoryError` if :func:`find_history_errors` finds anything."""
    if errors := find_history_errors(messages):
        raise ProviderHistoryError(errors)


class FakeStreamingChatModel(BaseChatModel):
    """A chat model that streams scripted replies with a per-token delay, for tests.

    Use it wherever the app expects a real chat model (``create_react_agent``, ``create_agent``,
    a hand-built node) to drive streaming, tool calls and cancellation offline and
    deterministically. Pass ``responses`` (consumed one per call, in order, across all calls)
    or one ``responder`` used for every call::

        model = FakeStreamingChatModel([
            AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "c1"}]),
            lambda messages: f"It is {messages[-1].text}.",
        ], token_delay=0.01)

    Each call streams, with ``token_delay`` seconds before every chunk (``asyncio.sleep`` in
    ``_astream`` so a cancel lands mid-stream; ``time.sleep`` in ``_stream``, which stops as soon
    as its consumer stops iterating): the content (list content block by block, in order, so
    script reasoning first), then each tool call OpenAI-style (a first chunk with ``id``,
    ``name``, ``index`` and empty ``args``, then ``args_pieces`` chunks with only ``index`` and
    an ``args`` delta), then a final ``chunk_position="last"`` chunk with ``finish_reason``
    (``"tool_calls"`` or ``"stop"``), ``model_name`` and the scripted metadata. ``invoke`` and
    ``ainvoke`` run the same stream and merge it. A tool call without an id gets
    ``call_<call number>_<index>``.

    Recorded, for assertions: :attr:`calls` (each prompt), :attr:`call_kwargs` (the bound
    ``tools`` etc.), :attr:`outcomes` and :attr:`chunks_generated`.
    """

    # Not validated by pydantic: AIMessage's validator crashes on a callable in the union.
    responses: SkipValidation[list[ScriptItem]] = Field(default_factory=list)
    """Replies consumed in order, one per call; running out raises :class:`ScriptExhaustedError`."""
    responder: Responder | None = None
    """Used for every call instead of ``responses``."""
    token_delay: float = 0.0
    """Seconds before each chunk. At 0 the async stream still yields to the loop per chunk."""
    chunk_size: int | None = None
    """Split text into pieces of this many characters instead of :func:`split_words` tokens."""
    args_pieces: int = 3
    """How many ``args`` deltas each tool call's JSON is split into (fewer if it is shorter)."""
    model: str = "fake-streaming-chat-model"
    """Reported as ``response_metadata["model_name"]``."""

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _call_kwargs: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _outcomes: list[StreamOutcome] = PrivateAttr(default_factory=list)
    _chunks: int = PrivateAttr(default=0)
    _used: int = PrivateAttr(default=0)

    def __init__(self, responses: Sequence[ScriptItem] | None = None, /, **kwargs: Any) -> None:
        """Allow the script as the one positional argument."""
        if responses is not None:
            kwargs["responses"] = list(responses)
        super().__init__(**kwargs)

    @model_validator(mode="after")
    def _one_script(self) -> FakeStreamingChatModel:
        if self.responder is not None and self.responses:
            raise ValueError("pass either responses or responder, not both")
        for item in self.responses:
            if not isinstance(item, str | AIMessage) and not callable(item):
                raise TypeError(f"a scripted response must be str, AIMessage or callable: {item!r}")
        if self.args_pieces < 1 or (self.chunk_size is not None and self.chunk_size < 1):
            raise ValueError("args_pieces and chunk_size must be at least 1")
        return self

    @property
    def _llm_type(self) -> str:
        return "fake-streaming-chat-model"

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """The messages of every call, in call order (including calls that then failed)."""
        return self._calls

    @property
    def call_kwargs(self) -> list[dict[str, Any]]:
        """The keyword arguments of every call (``tools``, ``tool_choice`` from binding)."""
        return self._call_kwargs

    @property
    def outcomes(self) -> list[StreamOutcome]:
        """How each call's stream ended, in the order they ended."""
        return self._outcomes

    @property
    def chunks_generated(self) -> int:
        """How many chunks all calls have produced so far (a stopped stream stops counting)."""
        return self._chunks

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind OpenAI-format tool schemas, as agent factories expect; the script ignores them."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _check_history(self, messages: list[BaseMessage]) -> None:
        """Hook run before each reply; :class:`StrictFakeChatModel` validates here."""

    def _begin(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> Iterator[AIMessageChunk]:
        with self._lock:
            self._calls.append(list(messages))
            self._call_kwargs.append(dict(kwargs))
            number = len(self._calls)
        self._check_history(messages)
        if self.responder is not None:
            item: ScriptItem = self.responder
        else:
            with self._lock:
                if self._used >= len(self.responses):
                    raise ScriptExhaustedError(
                        f"{type(self).__name__} was called {number} times but only "
                        f"{len(self.responses)} responses were scripted: add responses or pass "
                        "responder=...")
                item = self.responses[self._used]
                self._used += 1
        reply = item if isinstance(item, str | AIMessage) else item(list(messages))
        message = AIMessage(content=reply) if isinstance(reply, str) else reply
        return self._plan(message, number)

    def _tokens(self, text: str) -> list[str]:
        if self.chunk_size is None:
            return split_words(text)
        return [text[i:i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]

    def _plan(self, message: AIMessage, number: int) -> Iterator[AIMessageChunk]:
        """The chunks one reply streams as, built lazily; merging them gives the reply back."""
        mid = message.id
        empty: str | list[str | dict[str, Any]]
        if isinstance(message.content, str):
            empty = ""
            for token in self._tokens(message.content):
                yield AIMessageChunk(content=token, id=mid)
        else:
            empty = []
            for index, raw in enumerate(message.content):
                block = {"type": "text", "text": raw} if isinstance(raw, str) else dict(raw)
                kind = str(block.get("type"))
                value = block.get(kind) if kind in ("text", "reasoning") else None
                if not isinstance(value, str):  # an image or other whole block: one chunk
                    yield AIMessageChunk(content=[{**block, "index": index}], id=mid)
                    continue
                extra = {k: v for k, v in block.items() if k not in ("type", kind, "index")}
                for n, delta in enumerate(self._tokens(value) or [""]):
                    part = {"type": kind, kind: delta, **(extra if n == 0 else {}), "index": index}
                    yield AIMessageChunk(content=[part], id=mid)
        for index, call in enumerate(message.tool_calls):
            call_id = call.get("id") or f"call_{number}_{index}"
            start = tool_call_chunk(name=call["name"], args="", id=call_id, index=index)
            yield AIMessageChunk(content=empty, id=mid, tool_call_chunks=[start])
            args = json.dumps(call["args"])
            n = min(self.args_pieces, len(args))
            for k in range(n):
                part_args = args[len(args) * k // n:len(args) * (k + 1) // n]
                piece = tool_call_chunk(args=part_args, index=index)
                yield AIMessageChunk(content=empty, id=mid, tool_call_chunks=[piece])
        metadata = {"finish_reason": "tool_calls" if message.tool_calls else "stop",
                    "model_name": self.model, **message.response_metadata}
        yield AIMessageChunk(
            content=empty, id=mid, chunk_position="last", response_metadata=metadata,
            usage_metadata=message.usage_metadata, additional_kwargs=message.additional_kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Stream one reply, sleeping ``token_delay`` before each chunk (blocking)."""
        outcome: StreamOutcome = "error"
        try:
            for chunk in self._begin(messages, kwargs):
                if self.token_delay:
                    time.sleep(self.token_delay)
                self._chunks += 1
                outcome = "closed"
                yield ChatGenerationChunk(message=chunk)
                outcome = "error"
            outcome = "complete"
        finally:
            self._outcomes.append(outcome)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Stream one reply, awaiting ``asyncio.sleep(token_delay)`` before each chunk."""
        outcome: StreamOutcome = "error"
        try:
            for chunk in self._begin(messages, kwargs):
                outcome = "cancelled"
                await asyncio.sleep(self.token_delay)
                self._chunks += 1
                outcome = "closed"
                yield ChatGenerationChunk(message=chunk)
                outcome = "error"
            outcome = "complete"
        finally:
            self._outcomes.append(outcome)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Run the same stream (same delays) and merge it, so invoke equals stream."""
        return generate_from_stream(self._stream(messages, stop, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Run the async stream on the loop (cancellable, unlike the default executor path)."""
        chunks = [chunk async for chunk in self._astream(messages, stop, **kwargs)]
        return generate_from_stream(iter(chunks))


class StrictFakeChatModel(FakeStreamingChatModel):
    """A :class:`FakeStreamingChatModel` that refuses invalid histories like a provider.

    Use it for the turn *after* a cancel or a crash: if the checkpoint still holds an
    unanswered tool call, an orphan or duplicate tool result, or an empty turn, the call raises
    :class:`ProviderHistoryError` (OpenAI's / Anthropic's 400 text) before any chunk is streamed
    and without using up a scripted response. The refused prompt is still in :attr:`calls`.
    """

    def _check_history(self, messages: list[BaseMessage]) -> None:
        validate_provider_history(messages)
