"""A drop-in for LangGraph's ``ToolNode`` that respects the run's abort signal.

Owns: :class:`CancellableToolNode`, :class:`CompletedCalls` (the per-process record of
completed tool calls), :class:`UnfinishedCall` (what a hard cancel left of a call, for the
checkpoint repair) and :data:`CUT_SHORT_MARK`.

Why a subclass and not a ``wrap_tool_call`` wrapper: the wrappers are the app's to use, and
``ToolNode`` runs a sync-only wrapper inline on the event loop in the async path; putting ours
there would change how the app's tools run. Overriding the per-call methods (``_run_one`` and
``_arun_one``, unchanged since langgraph-prebuilt 1.0) keeps everything else, including the
app's wrappers and error handling, exactly as ``ToolNode`` does it. ``_func``/``_afunc`` are
only wrapped (same signature, arguments passed on) to give one step's calls a shared gate.

Per tool call, in this order:

0. **Wait for a slot** (only with ``max_concurrency``): at most that many calls of one step
   run at once; the others wait here, not started.
1. **Already answered?** If the state already holds a ``ToolMessage`` for the call (after the
   ``AIMessage`` that made it), or the call completed earlier in this process
   (:class:`CompletedCalls`), that result is returned and the tool is not executed. A resume
   after a hard cancel re-runs the whole tool node (research §2.a A2-resume); without this,
   tools that finished before the cancel would commit their side effects twice.
2. **Cancelled before it started?** If the run's signal has fired, the tool is not executed;
   the answer is an error ``ToolMessage`` marked with :data:`CANCELLED_MARK`. With sync tools
   ``ToolNode`` maps calls over a thread pool (``max_concurrency`` workers), so this check runs
   on the worker right before the call, and calls still queued when the signal fires are
   skipped. In the async path ``ToolNode`` starts every call of the step at once, unless
   ``max_concurrency`` is given here.
3. **Run it.** The tool sees the signal through :func:`get_abort_signal` (context variables
   reach the worker threads of sync tools) and may return early. If it raises
   :class:`RunCancelled` (``signal.throw_if_aborted()``) the call is answered as cancelled
   instead of failing the whole node, so the other calls' results are kept.
4. **Record it.** A completed call's ``ToolMessage`` goes into the run's
   :attr:`RunScope.tool_results` (the checkpoint repair after a cancel writes real results for
   these instead of "cancelled") and into :class:`CompletedCalls`. A call that returned after
   the run was cancelled (it saw the signal and stopped early, or finished regardless) is its
   own answer, in both cancel modes: it is kept, marked :data:`CUT_SHORT_MARK`.

A hard cancel (``cancel_mode="immediate"``) stops the node at once. What it caught is left in
:attr:`RunScope.tool_results` as an :class:`UnfinishedCall` until an answer replaces it: a call
still waiting for its slot (never started), an async tool (stopped mid-way), or a sync tool,
which cannot be stopped and runs on in its thread: the repair waits for it up to
``late_result_grace`` seconds, so a tool that polls the signal keeps its cut-short answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, Tool
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolRuntime
from langgraph.runtime import Runtime
from langgraph.types import Command

from .._abort import RunCancelled
from ._durable_calls import StepCalls
from ._signal import RunScope, current_scope
from ._translate import CANCELLED_MARK, is_cancelled_tool_message

__all__ = ["CUT_SHORT_MARK", "CancellableToolNode", "CompletedCalls", "UnfinishedCall"]

InputType = Literal["list", "dict", "tool_calls"]
#: What ``ToolNode`` returns for one call.
Output = ToolMessage | Command[Any] | list[Command[Any] | ToolMessage]

#: Set in a tool result's ``response_metadata`` (value: the cancel reason's name, such as
#: ``"user_clicked_stop"``) when the call returned after its run was cancelled: the tool saw
#: the signal and stopped early (or finished regardless). The result is kept as the call's
#: answer, ``status="success"``; the client shows it as the tool's output.
CUT_SHORT_MARK = "langgraph_interrupt_cut_short"


@dataclass(frozen=True, slots=True)
class UnfinishedCall:
    """A tool call that a hard cancel caught, as :attr:`RunScope.tool_results` holds it until
    an answer replaces it; :func:`repair_thread` answers the call from it.

    Attributes:
        started: whether the tool had started (``False``: it was waiting for a slot).
        late: a sync tool still running on its worker thread (it cannot be stopped): the
            node's output for the call once the thread returns.
        deadline: ``loop.time()`` until which the repair waits for ``late``.
    """

    started: bool
    late: asyncio.Future[Any] | None = None
    deadline: float = 0.0

    async def answer(self, call_id: str) -> ToolMessage | None:
        """The call's answer from ``late``, if the thread returns before the deadline."""
        if self.late is None:
            return None
        timeout = self.deadline - asyncio.get_running_loop().time()
        if not self.late.done():
            if timeout <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.late), timeout)
        if not self.late.done() or self.late.cancelled() or self.late.exception() is not None:
            return None
        return next((m for m in _tool_messages(self.late.result())
                     if m.tool_call_id == call_id), None)


#: One step's record of its completed calls in the checkpoint (async path), set like the gate.
_STEP: ContextVar[StepCalls | None] = ContextVar("langgraph_interrupt_tool_step", default=None)

#: One step's concurrency gate (``CancellableToolNode(max_concurrency=...)``), set around
#: ``ToolNode``'s own per-step function and seen by its per-call tasks and worker threads.
_GATE: ContextVar[asyncio.Semaphore | threading.Semaphore | None] = ContextVar(
    "langgraph_interrupt_tool_gate", default=None)


class CompletedCalls:
    """A bounded, thread-safe LRU of tool-call results that completed in this process.

    Keyed by ``(thread_id, id of the AIMessage that made the call, tool call id)``: the
    message id keeps a model that reuses call ids across turns (``call_0`` every time, as some
    local models do) from getting an older turn's result. Calls without a thread id (no
    checkpointer, nothing to resume) or whose ``AIMessage`` is not in the state are not
    recorded.

    Per process: a resume served by another worker process, or after a restart, re-executes
    the calls that completed before the cancel unless their results reached the checkpoint
    (the runner's repair writes them from :attr:`RunScope.tool_results`). The oldest entries
    are evicted past ``maxsize``.
    """

    def __init__(self, maxsize: int = 1024) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, Output] = OrderedDict()

    def get(self, key: Hashable) -> Output | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Output) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: The default record, shared by every CancellableToolNode of the process, so it works even
#: when an app builds its graph per request.
_COMPLETED = CompletedCalls()


class CancellableToolNode(ToolNode):
    """``ToolNode`` that skips calls once the run is cancelled and never re-runs completed ones.

    Use it wherever ``ToolNode`` is used (same constructor and inputs: a state with messages,
    a message list, or the ``Send`` payloads of ``create_react_agent(version="v2")`` and
    ``create_agent``)::

        builder.add_node("tools", CancellableToolNode([search, write_file]))
        agent = create_react_agent(model, CancellableToolNode(tools), version="v2")

    Inside a tool, ``get_abort_signal()`` tells it the run was cancelled::

        @tool
        def crawl(urls: list[str]) -> str:
            signal = get_abort_signal()
            for i, url in enumerate(urls):
                if signal.aborted:
                    return f"stopped after {i} of {len(urls)} pages"
                fetch(url)
            return "done"

    See the module docstring for what happens to each call and why.

    Args:
        completed_calls: where completed calls are remembered; by default one record shared
            by the whole process. Pass your own :class:`CompletedCalls` to size or isolate it.
        max_concurrency: run at most this many calls of one step at once (``1``: one after
            the other), so that the calls still waiting when the run is cancelled never
            start. Default: ``ToolNode``'s way (every call at once under ``ainvoke``).
        late_result_grace: seconds the checkpoint repair after an immediate cancel waits for
            a sync tool still running on its worker thread (it cannot be stopped) to return
            its answer; ``0`` does not wait. It delays the run's end only while such a tool
            runs.
        Everything else is ``ToolNode``'s.
    """

    def __init__(self, *args: Any, completed_calls: CompletedCalls | None = None,
                 max_concurrency: int | None = None, late_result_grace: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if late_result_grace < 0:
            raise ValueError("late_result_grace must not be negative")
        self.completed_calls = completed_calls if completed_calls is not None else _COMPLETED
        self.max_concurrency = max_concurrency
        self.late_result_grace = late_result_grace

    # -- one step: the gate its calls share. The signatures are ToolNode's: LangGraph reads
    # them to decide what to inject (config, runtime).
    def _func(self, input: Any, config: RunnableConfig, runtime: Runtime) -> Any:
        limit = self.max_concurrency
        token = _GATE.set(threading.Semaphore(limit) if limit is not None else None)
        try:
            return super()._func(input, config, runtime)
        finally:
            _GATE.reset(token)

    async def _afunc(self, input: Any, config: RunnableConfig, runtime: Runtime) -> Any:
        limit = self.max_concurrency
        token = _GATE.set(asyncio.Semaphore(limit) if limit is not None else None)
        step = _STEP.set(StepCalls.of(config, len(self._parse_input(input)[0])))
        try:
            return await super()._afunc(input, config, runtime)
        finally:
            _STEP.reset(step)
            _GATE.reset(token)

    # -- one call ----------------------------------------------------------------------------
    def _run_one(self, call: ToolCall, input_type: InputType,
                 tool_runtime: ToolRuntime) -> Output:
        # Runs on the executor's worker (sync path); the context, scope binding and gate
        # included, was copied there by LangChain's ContextThreadPoolExecutor.
        scope = current_scope()
        key = _call_key(call, tool_runtime, self._messages_key)
        with _sync_slot():
            early = self._answer_without_running(call, tool_runtime, scope, key)
            if early is not None:
                return early
            try:
                output = super()._run_one(call, input_type, tool_runtime)
            except RunCancelled as exc:
                return _cancelled(call, f"Cancelled before it completed: {exc.reason}")
            self._remember(call, output, scope, key)
            return output

    async def _arun_one(self, call: ToolCall, input_type: InputType,
                        tool_runtime: ToolRuntime) -> Output:
        scope = current_scope()
        key = _call_key(call, tool_runtime, self._messages_key)
        started = False
        late: asyncio.Future[Output] | None = None
        try:
            async with _async_slot():
                early = self._answer_without_running(call, tool_runtime, scope, key)
                if early is None and key is not None and (step := _STEP.get()) is not None:
                    early = await step.get(key[1], key[2])  # completed before a suspend
                    if early is not None and scope is not None:
                        _collect(early, call, scope.tool_results)
                if early is not None:
                    return early
                started = True
                run = self._arun_and_remember(call, input_type, tool_runtime, scope, key)
                if not _runs_on_a_thread(self.tools_by_name.get(call["name"])):
                    return await run  # a hard cancel reaches the tool: it did not complete
                # A sync tool keeps running on its worker thread after a hard cancel and
                # commits its side effects anyway (research §2.a A2). Await it through a
                # shield, so the node still stops at once but the call is recorded when the
                # thread finishes: the repair can keep its answer, and a resume returns that
                # result instead of running the tool a second time.
                late = asyncio.ensure_future(run)
                return await asyncio.shield(late)
        except asyncio.CancelledError:
            if late is not None:
                late.add_done_callback(_retrieve)
            if scope is not None:
                self._note_unfinished(call, scope, started, late)
                if not started and scope.signal.aborted:
                    _show_skipped(tool_runtime, scope, _cancelled(
                        call, f"Cancelled before it started: {scope.signal.reason}"))
            raise

    async def _arun_and_remember(self, call: ToolCall, input_type: InputType,
                                 tool_runtime: ToolRuntime, scope: RunScope | None,
                                 key: tuple[str, str, str] | None) -> Output:
        try:
            output = await super()._arun_one(call, input_type, tool_runtime)
        except RunCancelled as exc:  # asyncio.CancelledError (a hard cancel) propagates
            return _cancelled(call, f"Cancelled before it completed: {exc.reason}")
        self._remember(call, output, scope, key)
        step = _STEP.get()
        if step is not None and key is not None:
            await step.put(key[1], key[2], output)
        return output

    # -- the guards --------------------------------------------------------------------------
    def _answer_without_running(self, call: ToolCall, tool_runtime: ToolRuntime,
                                scope: RunScope | None,
                                key: tuple[str, str, str] | None) -> Output | None:
        """The answer for a call that must not run: already answered, or cancelled."""
        answered = _answer_in_state(call, tool_runtime.state, self._messages_key)
        if answered is not None:
            # Returned as is: its id is the stored message's, so add_messages replaces it in
            # place instead of appending a second answer to the same call.
            if scope is not None and not is_cancelled_tool_message(answered):
                scope.tool_results[call["id"] or ""] = answered
            return answered
        if key is not None:
            remembered = self.completed_calls.get(key)
            if remembered is not None:
                if scope is not None:
                    _collect(remembered, call, scope.tool_results)
                return remembered
        if scope is not None and scope.signal.aborted:
            return _cancelled(call, f"Cancelled before it started: {scope.signal.reason}")
        return None

    def _remember(self, call: ToolCall, output: Output, scope: RunScope | None,
                  key: tuple[str, str, str] | None) -> None:
        # A tool that returned normally did complete, even if it stopped early on the signal:
        # its (cut-short) result is the answer, and running it again would redo the work.
        if scope is not None:
            reason = scope.signal.reason
            if reason is not None:
                for message in _tool_messages(output):
                    if message.tool_call_id == call["id"] \
                            and not is_cancelled_tool_message(message):
                        message.response_metadata[CUT_SHORT_MARK] = reason.name
            _collect(output, call, scope.tool_results)
        if key is not None:
            self.completed_calls.put(key, output)

    def _note_unfinished(self, call: ToolCall, scope: RunScope, started: bool,
                         late: asyncio.Future[Output] | None) -> None:
        """Leave what a hard cancel caught for the repair (an answer already there wins)."""
        call_id = call["id"]
        if not call_id or isinstance(scope.tool_results.get(call_id), ToolMessage):
            return
        deadline = 0.0 if late is None else \
            asyncio.get_running_loop().time() + self.late_result_grace
        scope.tool_results[call_id] = UnfinishedCall(started, late, deadline)


def _show_skipped(tool_runtime: ToolRuntime, scope: RunScope, answer: ToolMessage) -> None:
    """Tell the client about a call a hard cancel caught waiting for its slot, as the node's
    output would have (the node never returns): through the run's own handler, so the tool
    part says "before it started", as the repaired thread does, not "before it completed"."""
    callbacks: Any = tool_runtime.config.get("callbacks")
    for handler in getattr(callbacks, "handlers", callbacks) or ():
        if getattr(handler, "run_scope", None) is scope:
            handler.on_chain_end({"messages": [answer]}, run_id=uuid.uuid4(),
                                 parent_run_id=uuid.uuid4())
            return


@contextlib.contextmanager
def _sync_slot() -> Iterator[None]:
    gate = _GATE.get()
    if not isinstance(gate, threading.Semaphore):
        yield
        return
    with gate:
        yield


@contextlib.asynccontextmanager
async def _async_slot() -> AsyncIterator[None]:
    gate = _GATE.get()
    if not isinstance(gate, asyncio.Semaphore):
        yield
        return
    async with gate:
        yield


# -- helpers -------------------------------------------------------------------------------
def _runs_on_a_thread(tool: BaseTool | None) -> bool:
    """Whether ``tool.ainvoke`` runs the tool's sync code on an executor thread."""
    if tool is None:
        return False
    if isinstance(tool, StructuredTool | Tool):
        return tool.coroutine is None
    return type(tool)._arun is BaseTool._arun  # not overridden: BaseTool uses an executor


def _retrieve(task: asyncio.Future[Any]) -> None:
    # Nobody awaits the shielded call once the node is cancelled; read its outcome so asyncio
    # does not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()


def _cancelled(call: ToolCall, text: str) -> ToolMessage:
    """The answer to a call that was not (fully) executed; the mark lets the client, the
    checkpoint repair and the app's own code tell it from a tool's error."""
    return ToolMessage(content=text, tool_call_id=call["id"] or "", name=call["name"],
                       status="error", additional_kwargs={CANCELLED_MARK: True},
                       response_metadata={CANCELLED_MARK: True})


def _messages(state: Any, key: str) -> Sequence[Any]:
    if isinstance(state, list):
        return state
    value = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
    return value if isinstance(value, list) else []


def _calling_message(messages: Sequence[Any], call_id: str) -> int | None:
    """Index of the last AIMessage that made the call ``call_id``."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AIMessage) and any(
                tc.get("id") == call_id for tc in message.tool_calls):
            return index
    return None


def _answer_in_state(call: ToolCall, state: Any, key: str) -> ToolMessage | None:
    """The ToolMessage answering ``call`` after the AIMessage that made it, if any.

    Only answers after that message count: a model that reuses call ids across turns must not
    get an older turn's answer.
    """
    call_id = call["id"]
    if not call_id:
        return None
    messages: Sequence[AnyMessage] = _messages(state, key)
    start = _calling_message(messages, call_id)
    if start is None:
        return None
    for message in messages[start + 1:]:
        if isinstance(message, ToolMessage) and message.tool_call_id == call_id:
            return message
    return None


def _call_key(call: ToolCall, tool_runtime: ToolRuntime, key: str) -> tuple[str, str, str] | None:
    call_id = call["id"]
    configurable = tool_runtime.config.get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if not call_id or thread_id is None:
        return None
    messages = _messages(tool_runtime.state, key)
    index = _calling_message(messages, call_id)
    if index is None or not messages[index].id:
        return None
    return (str(thread_id), str(messages[index].id), call_id)


def _collect(output: Any, call: ToolCall, into: dict[str, Any]) -> None:
    """Put the ToolMessage answering ``call`` in ``output`` (a ToolMessage, a Command whose
    update carries it, or a list of those) into ``into``."""
    for message in _tool_messages(output):
        if message.tool_call_id == call["id"] and not is_cancelled_tool_message(message):
            into[message.tool_call_id] = message


def _tool_messages(output: Any) -> list[ToolMessage]:
    if isinstance(output, ToolMessage):
        return [output]
    if isinstance(output, list):
        return [m for item in output for m in _tool_messages(item)]
    if isinstance(output, Command):
        update = output.update
        if isinstance(update, Mapping):
            return [m for value in update.values() for m in _tool_messages(value)]
        if isinstance(update, list | tuple):
            return [m for pair in update if isinstance(pair, tuple) and len(pair) == 2
                    for m in _tool_messages(pair[1])]
    return []
