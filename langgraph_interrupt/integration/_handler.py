"""The drop-in callback handler: any LangGraph app's output, streamed as run events.

Owns: :class:`RunCallbackHandler`. Hooks only translate and enqueue; one publisher task per
run drains the queue into :meth:`Run.write` in order, so a slow channel never slows the
graph and token order holds (research §3 pitfall 7).

Why the hooks are plain ``def`` although the class is an ``AsyncCallbackHandler``: with
``run_inline = True`` LangChain calls a sync hook inline from both its async and its sync
callback managers. A coroutine hook would make sync ``graph.stream()`` start a new event loop
for every callback (12x slower, research §2.b); a sync hook just appends to a deque, from
whichever thread LangChain calls it (sync tools run on worker threads).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler

from .._abort import RunCancelledError
from .._errors import AITransportError, RunLifecycleError
from ..transport import Run
from ._repair import RepairReport, repair_thread
from ._signal import RunScope
from ._tool_output import install_output_capture
from ._translate import Chunk, ChunkTranslator

__all__ = ["RunCallbackHandler"]

logger = logging.getLogger("langgraph_interrupt.langgraph")

T = TypeVar("T")


class _QuietDropInCancel(logging.Filter):
    """LangChain logs a WARNING before re-raising any callback exception; our deliberate
    RunCancelledError (a Stop in drop-in mode) is an outcome, not an error worth a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) == 3
                    and args[0] == "RunCallbackHandler"
                    and isinstance(args[2], str) and args[2].startswith("RunCancelledError("))


logging.getLogger("langchain_core.callbacks.manager").addFilter(_QuietDropInCancel())
# Tools' return values as the tools returned them (a dict stays an object on the wire).
install_output_capture()


class RunCallbackHandler(AsyncCallbackHandler):
    """Stream a LangGraph (or any LangChain) run's output into a :class:`Run`.

    Drop-in: add one line to an existing app::

        async with session.create_run(invocation) as run:
            await graph.ainvoke(inputs, config={"callbacks": [RunCallbackHandler(run)]})

    Tokens stream whatever ``stream_mode`` the app uses (even ``ainvoke``): the handler
    implements LangChain's streaming-handler protocol, which makes chat models stream.

    Args:
        run: the run to write into (started or not; writes wait for nothing).
        stop_on_cancel: when the run's abort signal fires, raise :class:`RunCancelledError` at the
            next token or start of an LLM, tool or node, so generation stops even though
            nothing else in the app knows about the run. ``async with run`` treats that as
            the run ending ``cancelled``. :func:`run_graph` turns this off and cancels the
            graph itself (drain or immediate).
    """

    run_inline = True
    # Only RunCancelledError ever leaves a hook (translation errors are caught and logged);
    # LangChain swallows callback exceptions unless raise_error is set.
    raise_error = True

    def __init__(self, run: Run, *, stop_on_cancel: bool = True,
                 scope: RunScope | None = None) -> None:
        super().__init__()
        self.run = run
        #: Found by :func:`get_abort_signal` through the runnable config in drop-in mode.
        self.run_scope = scope or RunScope(run.signal, run)
        self.stop_on_cancel = stop_on_cancel
        self.translator = ChunkTranslator(self.run_scope.tool_outputs)
        self._lock = threading.Lock()  # hooks arrive from worker threads too
        self._queue: deque[Chunk] = deque()
        self._closed = False
        self._loop = run.loop
        self._wakeup: asyncio.Event | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        self._wake_pending = False
        self.dropped = 0  #: chunks refused because they arrived after the run ended
        self._drain_step: int | None = None  # the LangGraph step running when cancelled
        #: Called once when the next LangGraph node starts (``run_graph`` stops the graph
        #: after that step to take a steer in). Any thread.
        self.on_node_start: Callable[[], object] | None = None
        run.signal.add_callback(self._on_cancel)
        run.add_finalizer(self._finalize)
        trigger = run.trigger
        if trigger is not None and trigger.tool_call_id and trigger.kind in (
                "tool-result", "tool-result-error"):
            # The client's result is final: its tool part keeps exactly what it sent.
            self.translator.answered_by_client(trigger.tool_call_id, "")

    # -- the streaming-handler protocol (langchain_core.tracers._streaming) ----------------
    # Its presence makes BaseChatModel stream for ainvoke / "values" / "updates" too.
    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return output

    # -- hooks (sync on purpose: see the module docstring) ---------------------------------
    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], *,  # type: ignore[override]
                            run_id: UUID, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        self._stop_if_cancelled(boundary=True, step=_step_of(metadata))
        self.run.progress.model_calls += 1
        self._emit(self.translator.llm_start, run_id, metadata)

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *,  # type: ignore[override]
                     run_id: UUID, metadata: dict[str, Any] | None = None,
                     **kwargs: Any) -> None:
        self._stop_if_cancelled(boundary=True, step=_step_of(metadata))
        self.run.progress.model_calls += 1
        self._emit(self.translator.llm_start, run_id, metadata)

    def on_llm_new_token(self, token: str, *, run_id: UUID, chunk: Any = None,  # type: ignore[override]
                         **kwargs: Any) -> None:
        self._stop_if_cancelled()
        message = getattr(chunk, "message", None)
        self._emit(self.translator.llm_token, run_id, token, message)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:  # type: ignore[override]
        self._model_done()
        self._emit(self.translator.llm_end, run_id, _final_message(response))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:  # type: ignore[override]
        self._model_done()
        self._emit(self.translator.llm_end, run_id, None)

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID,  # type: ignore[override]
                      inputs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._stop_if_cancelled(boundary=True, step=_step_of(kwargs.get("metadata")))
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        self._emit(self.translator.tool_start, run_id, name, kwargs.get("tool_call_id"),
                   inputs if inputs is not None else input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:  # type: ignore[override]
        self._emit(self.translator.tool_end, run_id, output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:  # type: ignore[override]
        self._emit(self.translator.tool_error, run_id, error)

    def on_chain_start(self, serialized: dict[str, Any], inputs: Any, *, run_id: UUID,  # type: ignore[override]
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        step = None
        if metadata:  # inside a LangGraph node: which one, for on_cancel decisions
            node = metadata.get("langgraph_node")
            step = metadata.get("langgraph_step")
            if isinstance(node, str):
                progress = self.run.progress
                progress.node = node
                progress.step = step if isinstance(step, int) else None
                hook, self.on_node_start = self.on_node_start, None
                if hook is not None:
                    hook()
        self._stop_if_cancelled(boundary=True, step=step if isinstance(step, int) else None)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:  # type: ignore[override]
        if kwargs.get("parent_run_id") is not None:  # a node: it may carry ToolMessages
            self._emit(self.translator.node_output, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:  # type: ignore[override]
        self._emit(self.translator.custom, name, data)

    # The remaining hooks are no-ops, but must be sync too (a base coroutine would start an
    # event loop per call on the sync path).
    def on_text(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    def on_retry(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    def on_agent_action(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    def on_agent_finish(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    def on_retriever_start(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    def on_retriever_end(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    def on_retriever_error(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    # -- queueing --------------------------------------------------------------------------
    def _on_cancel(self, reason: Any) -> None:
        self._drain_step = self.run.progress.step

    def _model_done(self) -> None:
        progress = self.run.progress
        if progress.model_calls > 0:
            progress.model_calls -= 1

    def _stop_if_cancelled(self, *, boundary: bool = False, step: int | None = None) -> None:
        """Raise :class:`RunCancelledError` once the run is cancelled. A ``drain`` cancel
        (``on_cancel`` answered "drain") lets the current step finish: it raises only at
        the start of a later LangGraph step, or outside a graph at the next model, tool
        or chain start, never at a token."""
        if not (self.stop_on_cancel and self.run.cancelled and not self._closed):
            return
        reason = self.run.signal.reason
        assert reason is not None
        if reason.drain:
            if not boundary:
                return
            if step is not None and self._drain_step is not None and step <= self._drain_step:
                return  # still the step that was running when the cancel came
        raise RunCancelledError(reason)

    def _emit(self, translate: Any, *args: Any) -> None:
        with self._lock:
            if self._closed:
                self.dropped += 1  # late events (a sync tool finishing after the end)
                return
            try:
                chunks: Sequence[Chunk] = translate(*args)
            except Exception:  # a surprising event shape must not break the app's run
                logger.warning("run %s: could not translate a callback event", self.run.run_id,
                               exc_info=True)
                return
            if not chunks:
                return
            self._queue.extend(chunks)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._wake()

    def _wake(self) -> None:
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._start_or_wake()
        else:
            try:
                self._loop.call_soon_threadsafe(self._start_or_wake)
            except RuntimeError:  # the run's loop is gone: nothing can be published
                with self._lock:
                    self._queue.clear()

    def _start_or_wake(self) -> None:
        if self._publisher is None:
            self._wakeup = asyncio.Event()
            self._publisher = self._loop.create_task(self._publish_forever())
        assert self._wakeup is not None
        self._wakeup.set()

    async def _publish_forever(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._drain()

    async def _drain(self) -> None:
        async with self._writing:
            while True:
                with self._lock:
                    self._wake_pending = False
                    if not self._queue:
                        return
                    batch = _coalesce(self._queue)
                    self._queue.clear()
                for chunk in batch:
                    await self._write(chunk)

    async def _write(self, chunk: Chunk) -> None:
        try:
            await self.run.write(chunk)
        except RunLifecycleError:
            with self._lock:
                self._closed = True
                self.dropped += len(self._queue) + 1
                self._queue.clear()
        except AITransportError as exc:  # the writer already repairs streams; keep going
            logger.warning("run %s: dropping a chunk: %s", self.run.run_id, exc)

    # -- the end -----------------------------------------------------------------------------
    async def repair(self, graph: Any, config: Mapping[str, Any], *,
                     messages_key: str = "messages") -> RepairReport:
        """Make ``graph``'s thread valid after this run (drop-in mode; ``run_graph`` does it
        itself). A cancel between the model's tool-call step and the tool node leaves calls
        no tool answered, which a provider refuses on the next turn; this answers them
        ``cancelled`` (and keeps what the client was shown). Call it once the graph
        returned or raised; a thread already valid is left as is.

        Example::

            try:
                await graph.ainvoke(inputs, config)
            finally:
                await handler.repair(graph, config)
        """
        await self.flush()
        cfg = {key: value for key, value in config.items() if key != "callbacks"}
        reason = self.run.signal.reason
        return await repair_thread(
            graph, cfg, partial=self.translator.open_llm_calls(),
            shown=self.translator.shown_messages(), tool_results=self.run_scope.tool_results,
            reason=str(reason) if reason is not None else "cancelled",
            messages_key=messages_key)

    async def flush(self) -> None:
        """Publish everything queued so far (the runner calls it before checkpoint repair)."""
        await self._drain()

    async def next_message(self) -> None:
        """Finish the assistant message so far and write what follows into a new one. The
        runner calls it before the graph answers a steer, so each client shows the answer
        after the steer, as the JS agent's loop does (one message per pass)."""
        with self._lock:
            if self._closed:
                return
            self._queue.extend(self.translator.next_message())
        await self._drain()
        if self.run.state == "active":
            self.run.new_message()

    async def finish(self, reason: str) -> None:
        """Publish what is queued plus the closing chunks for ``reason`` now, and stop taking
        events (the run's finalizer then has nothing left to do). The runner calls it before
        closing the step of a suspended run."""
        await self._finalize(self.run, reason)

    async def _finalize(self, run: Run, reason: str) -> None:
        with self._lock:
            if self._closed:
                return
            close_reason = reason if reason in ("complete", "cancelled", "error",
                                                "suspended") else "complete"
            self._queue.extend(self.translator.close(close_reason))  # type: ignore[arg-type]
        await self._drain()
        with self._lock:
            self._closed = True  # fence: late callbacks are dropped, never published
        if self._publisher is not None:
            self._publisher.cancel()


def _step_of(metadata: Any) -> int | None:
    """The LangGraph step a callback belongs to, if it runs inside a graph."""
    step = metadata.get("langgraph_step") if isinstance(metadata, dict) else None
    return step if isinstance(step, int) else None


def _final_message(response: Any) -> Any:
    generations = getattr(response, "generations", None)
    try:
        return generations[0][0].message  # type: ignore[index]
    except (TypeError, IndexError, AttributeError):
        return None


def _coalesce(queue: deque[Chunk]) -> list[Chunk]:
    """Merge runs of text deltas for the same part: when the channel is behind, fewer and
    larger appends carry the same text (order and content are unchanged)."""
    out: list[Chunk] = []
    pieces: list[str] = []
    for chunk in queue:
        kind = chunk.get("type")
        if pieces and kind == out[-1].get("type") and chunk.get("id") == out[-1].get("id"):
            pieces.append(chunk["delta"])
            continue
        if len(pieces) > 1:
            out[-1] = {**out[-1], "delta": "".join(pieces)}
        pieces = [chunk["delta"]] if kind in ("text-delta", "reasoning-delta") else []
        out.append(chunk)
    if len(pieces) > 1:
        out[-1] = {**out[-1], "delta": "".join(pieces)}
    return out
