"""A run: one conversation turn the agent streams, from ``ai-run-start`` to ``ai-run-end``.

Owns: the run's lifecycle publishes (start/resume, steps, suspend, end, §2 and §3 of the
protocol notes), piping a chunk source with cancellation, and the cancel path's exact
publish order: what ``on_cancelled`` wrote, ``status:"cancelled"`` on every open stream,
``ai-step-end{cancelled}``, ``ai-run-end{cancelled}``; nothing of the run after its end.

Every publish of a run goes through its :class:`~._outbox.Outbox`: in order, without
waiting for acknowledgements; only the first output of a step waits for the
``ai-step-start``'s serial (outputs carry it as ``step-start-serial``, as the JS agent's do).
Methods that report an outcome (:meth:`Run.pipe`, :meth:`Run.end`, :meth:`Run.suspend`)
wait for the acknowledgements first, so a refused publish is reported, never hidden.

Cancellation is an outcome here, not an exception: :meth:`Run.pipe` returns a
:class:`PipeResult` with a reason. The run's :attr:`Run.signal` is the one abort signal for
every source (a client's ``ai-cancel``, session shutdown, an external signal, your code).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, Literal, Protocol

from .._abort import AbortController, AbortSignal, CancelReason, RunCancelled, RunCancelledError
from .._cancel import CancelTarget
from .._errors import (
    AITransportError,
    ChannelError,
    InvalidArgumentError,
    OperationCancelledError,
    RunLifecycleError,
    RunRejectedError,
    StreamError,
    unable_to,
)
from .._invocation import Invocation
from .._wire import (
    EVENT_RUN_END,
    EVENT_RUN_RESUME,
    EVENT_RUN_START,
    EVENT_RUN_SUSPEND,
    OutboundMessage,
    RunEndReason,
    StepEndReason,
    make_extras,
)
from ..channels import Channel
from ..codec import Chunk, UIMessageEncoder
from ._headers import RunHeaders
from ._multitask import MultitaskStrategy
from ._outbox import Outbox
from ._output import MessageWriter, shielded, start_bounded, wait_shielded
from ._progress import Interruption, RunProgress, now_ms, report_interruption
from ._source import PipeResult, as_error, chunks_of, close_quietly
from ._steps import Steps
from ._trigger import Trigger

__all__ = ["OnCancelled", "PipeResult", "Run", "RunHost", "RunState"]

logger = logging.getLogger("langgraph_interrupt.transport")

RunState = Literal["created", "active", "suspended", "ended"]
OnCancelled = Callable[["Run", CancelReason], Awaitable[None] | None]
#: Called once per interrupted run, after its terminal sequence was acknowledged.
OnInterrupted = Callable[["Run", Interruption], None]
_DELTAS = frozenset({"text-delta", "reasoning-delta"})
Finalizer = Callable[["Run", str], Awaitable[None] | None]


_YIELD_EVERY = 64  # chunks between forced loop yields in pipe(); cheap, keeps cancel live


class RunHost(Protocol):
    """What a run needs from the session hosting it (:class:`AgentSession` is one)."""

    @property
    def channel(self) -> Channel: ...

    async def _locate(self, run: Run) -> Trigger: ...

    def _adopt(self, run: Run) -> None: ...

    async def _decided(self, run: Run) -> None: ...

    def _admit(self, run: Run) -> asyncio.Future[Any] | None: ...

    def _deregister(self, run: Run) -> None: ...

    def _sender_of(self, serial: str) -> tuple[bool, str | None]: ...

    def _report(self, error: AITransportError) -> None: ...


class Run:
    """One run on an :class:`AgentSession`. Create it with :meth:`AgentSession.create_run`.

    Typical use::

        async with session.create_run(invocation) as run:   # start() on entry
            result = await run.pipe(chunks)                  # a PipeResult, never raises
        # on exit: ai-run-end with the outcome (complete / cancelled / error)

    ``run_id`` is provisional until :meth:`start` located the trigger: a continuation
    takes the run id its input names.
    """

    def __init__(self, session: RunHost, invocation: Invocation, *, run_id: str | None,
                 invocation_id: str | None, on_cancelled: OnCancelled | None,
                 signal: AbortSignal | None, terminal_timeout: float,
                 append_rollup_window: float = 0.0,
                 multitask: MultitaskStrategy = "concurrent", timeout: float | None = None,
                 on_interrupted: OnInterrupted | None = None) -> None:
        self._session = session
        #: Live facts for ``on_cancel`` decisions (elapsed, tokens, node, generating).
        self.progress = RunProgress()
        self._timeout = timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._interruption: Interruption | None = None
        self._request: tuple[float | None, float | None] = (None, None)
        self._on_interrupted = on_interrupted
        self.multitask = multitask  #: the multitask strategy this run was admitted under
        self._admitted = False
        self._turn: asyncio.Future[Any] | None = None
        self._rollback = False
        self._outbox = Outbox(session.channel, check_serial=self._check_serial)
        self._rollup = append_rollup_window
        self.invocation = invocation
        self.run_id = run_id or str(uuid.uuid4())
        self.invocation_id = invocation_id or str(uuid.uuid4())
        self._controller = AbortController()
        self._on_cancelled = on_cancelled
        self._terminal_timeout = terminal_timeout
        self.trigger: Trigger | None = None
        self._headers: RunHeaders | None = None
        self.state: RunState = "created"
        self.end_reason: RunEndReason | None = None
        self._steps = Steps(self._outbox, self._next_id)
        self._pipe_error: AITransportError | None = None  # the last pipe()'s, for end()
        self._writer: MessageWriter | None = None
        self._pipe_task: asyncio.Task[Any] | None = None
        self._pulling = False
        self._interrupted = False
        self._pipe_done: asyncio.Event | None = None
        self._cancelled_end: asyncio.Task[None] | None = None
        self._cancel_handled = False
        self._ending: asyncio.Future[None] | None = None
        self._history_cancels: list[CancelTarget] = []
        self._loop = asyncio.get_running_loop()
        self._finalizers: list[Finalizer] = []
        self.signal.add_callback(self._on_abort)
        if signal is not None:
            signal.add_callback(self._controller.abort)

    # -- identity -----------------------------------------------------------------------------
    @property
    def signal(self) -> AbortSignal:
        """Fires once when the run is cancelled, whatever the source."""
        return self._controller.signal

    @property
    def cancelled(self) -> bool:
        return self._controller.signal.aborted

    @property
    def channel(self) -> Channel:
        """The session channel the run publishes on."""
        return self._session.channel

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the run lives on (writers on other threads hop to it)."""
        return self._loop

    def add_finalizer(self, finalizer: Finalizer) -> None:
        """Call ``finalizer(run, reason)`` once, right before the run stops producing output:
        before ``ai-run-suspend``, or before the terminal publishes of ``ai-run-end`` (and
        before ``on_cancelled``). It may ``await run.write(...)`` last outputs; buffering
        producers (the LangGraph callback handler) flush here so nothing is lost.
        """
        self._finalizers.append(finalizer)

    async def _finalize(self, reason: RunEndReason | Literal["suspended"]) -> None:
        finalizers, self._finalizers = self._finalizers, []
        for finalizer in finalizers:
            try:
                result = finalizer(self, reason)
                if result is not None:
                    await result
            except Exception as exc:
                logger.exception("run %s: finalizer raised", self.run_id)
                self._session._report(as_error(exc))

    @property
    def interruption(self) -> Interruption | None:
        """How the run's cancel went, once it was cancelled: the timeline from the request
        to the terminal sequence (complete once the run ended)."""
        return self._interruption

    def note_stopped(self) -> None:
        """Mark the moment the model and the tools stopped after a cancel (for the
        :attr:`interruption` metrics). ``pipe()`` and ``run_graph`` call it; a producer
        of your own may, else the start of the terminal sequence counts."""
        if self._interruption is not None:
            self._interruption = self._interruption.with_marks(stopped_at=now_ms())

    def _note_request(self, sent_at: float | None, received_at: float | None) -> None:
        """The client's send time and our receive time of the cancel about to be applied."""
        if self._interruption is None:
            self._request = (sent_at, received_at)

    @property
    def rollback(self) -> bool:
        """True when a newer input interrupted this run under the ``rollback`` strategy:
        its graph writes are to be discarded, not repaired (``run_graph`` does it)."""
        return self._rollback

    @property
    def run_client_id(self) -> str:
        """The run owner's client id (``""`` when unknown)."""
        return self.trigger.run_client_id if self.trigger else ""

    def cancel(self, reason: CancelReason | str | None = None) -> bool:
        """Cancel the run from your own code. Idempotent, safe before start; first reason wins."""
        return self._controller.abort(reason)

    def _check_serial(self, serial: str) -> None:
        """Refuse an acknowledgement that names a message another participant published: the
        broker de-duplicates ids, so our message was dropped as a copy of theirs."""
        known, sender = self._session._sender_of(serial)
        if known and sender != self.channel.client_id:
            raise ChannelError(unable_to(
                "publish", f"the channel took it for a duplicate of message {serial!r}, which "
                f"{sender!r} published with the same id; the message was not delivered"))

    def _next_id(self) -> str:
        # Unguessable (a watcher who could predict them could publish them first: the
        # broker de-duplicates ids, and would drop ours), yet fixed per message, so a
        # backend's retry of the same publish is still de-duplicated.
        return secrets.token_urlsafe(15)

    @property
    def _h(self) -> RunHeaders:
        headers = self._headers
        assert headers is not None, "the run's trigger is located before it publishes"
        return headers

    def _publish(self, name: str, transport: dict[str, str]) -> asyncio.Future[str]:
        if self.state == "ended":
            raise RunLifecycleError(f"run {self.run_id} has ended; nothing more is published")
        return self._outbox.publish(
            OutboundMessage(name, None, make_extras(transport), self._next_id()))

    async def flush(self) -> None:
        """Wait until everything the run published so far was acknowledged by the channel.

        Writes return once submitted (publishing is pipelined); call this before a side
        effect that must not happen unless the output before it is stored. Raises the
        first refusal of the run's publishes not reported yet (a refused append that the
        writer will repair is not one).
        """
        await self._settled()

    async def _settled(self, *, fatal: bool = True) -> None:
        """Wait for every publish so far; raise the first refusal not yet reported (and,
        with ``fatal``, the writer's fatal error)."""
        outbox, writer = self._outbox, self._writer
        while True:  # an acknowledged append releases the deltas coalesced behind it
            if writer is not None:
                writer.send_buffered()
            await outbox.drain()
            if not outbox.in_flight and (writer is None or not writer.buffered):
                break
        error = outbox.take_error()
        if error is None and fatal and self._writer is not None:
            error = self._writer.fatal
        if error is not None:
            raise error

    # -- lifecycle --------------------------------------------------------------------------------
    async def locate(self) -> Trigger:
        """Find the input that triggers the run, live or in history, and take the run id a
        continuation names. :meth:`start` does it; an endpoint calls it first to answer the
        POST with the right run id. Idempotent.

        The lookup races the live input against one history scan (run while the session is
        still attaching, if it is), so it costs one round trip to the channel at most; it
        waits for an input that is not there yet up to the session's ``trigger_timeout``.

        Raises:
            OperationCancelledError: (40033) the run was cancelled before its input was found.
            InputEventNotFoundError: (104010) the input was not found in time.
            HistoryFetchFailedError: (104011) history could not be read.
            SessionClosedError: (104004) the session closed meanwhile.
        """
        if self.trigger is not None:
            return self.trigger
        if self.cancelled:
            raise OperationCancelledError(unable_to("start run", self.signal.reason))
        trigger = await self._session._locate(self)
        if self.trigger is not None:  # located concurrently
            return self.trigger
        if self.cancelled:
            raise OperationCancelledError(unable_to("start run", self.signal.reason))
        self.trigger = trigger
        self._session._adopt(self)  # re-key a continuation; pull a buffered or history cancel
        self._headers = RunHeaders(self.run_id, self.invocation_id, trigger)
        return trigger

    async def admit(self) -> None:
        """Apply the session's multitask strategy (after :meth:`locate`); idempotent.

        Decides at once: under ``interrupt``/``rollback`` the oldest active run is
        cancelled now; under ``enqueue`` the run takes a place in the queue; the waiting
        itself happens in :meth:`start`. An endpoint calls it before answering, so a
        refusal is its answer. A refused run still ends on the wire (``ai-run-start``,
        then ``ai-run-end{error}`` with the code and message), so every device shows why.

        Raises:
            RunRejectedError: (40900) refused by the strategy, or the queue is full.
        """
        await self.locate()
        if self._admitted:
            return
        self._admitted = True
        try:
            self._turn = self._session._admit(self)
        except RunRejectedError as exc:
            logger.info("run %s refused: %s", self.run_id, exc.message)
            await self._end_unstarted("error", exc)
            raise

    async def _wait_turn(self) -> None:
        """Wait until the runs this one interrupted have ended, or its turn in the queue
        came; a cancel meanwhile ends it (on the wire: it never ran)."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        aborted = asyncio.ensure_future(self.signal.wait())
        # Interrupted runs end within their terminal bound; a queue waits as long as it takes.
        bound = 2 * self._terminal_timeout if self.multitask in ("interrupt", "rollback") \
            else None
        try:
            await asyncio.wait({turn, aborted}, timeout=bound,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
        if turn.cancelled() or self.cancelled:  # (a cancelled turn: the session closed)
            await self._end_unstarted("cancelled", None)
            raise OperationCancelledError(unable_to("start run", self.signal.reason
                                                    or "the session closed"))
        if not turn.done():
            logger.warning("run %s: the run(s) it interrupted did not end within %.1f s; "
                           "starting anyway", self.run_id, bound)

    async def _end_unstarted(self, reason: RunEndReason, error: AITransportError | None) -> None:
        """Start and end a run that never ran (refused, or cancelled while it waited), so
        every device sees its input answered. Safe to call twice."""
        if self.state == "created":
            self.state = "active"
            self._publish(EVENT_RUN_START, self._h.run_start())
        await self.end(reason, error=error)

    async def start(self) -> None:
        """Locate the trigger, apply the multitask strategy (:meth:`admit`; it may wait for
        its turn), then publish ``ai-run-start`` (or ``ai-run-resume``).

        Raises:
            OperationCancelledError: (40033) the run was cancelled before it could start;
                nothing was published (a queued run ends on the wire ``cancelled``).
            RunRejectedError: (40900) the multitask strategy refused the run.
            InputEventNotFoundError: (104010) the trigger was not found in time.
            SessionClosedError: (104004) the session closed meanwhile.
        """
        if self.state != "created":
            raise RunLifecycleError(f"run {self.run_id} was already started")
        trigger = await self.locate()
        await self.admit()
        await self._wait_turn()
        self.state = "active"
        self.progress.started_at = now_ms()
        if self._timeout is not None and not self.cancelled:
            self._deadline = self._loop.call_later(self._timeout, self.cancel, CancelReason(
                "timeout", f"the run did not end within its {self._timeout:g} s deadline"))
        # Not awaited: the step and outputs follow on the same ordered outbox, and a
        # refusal is reported by whatever reports the run's outcome.
        if trigger.is_continuation:
            self._publish(EVENT_RUN_RESUME, self._h.base())
        else:
            self._publish(EVENT_RUN_START, self._h.run_start())
        await self._session._decided(self)  # a cancel found in history is decided first

    def begin_step(self) -> None:
        """Publish ``ai-step-start`` now, without waiting for it (a no-op if a step is open).

        Outputs carry the step's ``step-start-serial``, so the first output of a step waits
        for that acknowledgement; a step begun before a model call (as :meth:`pipe` and
        ``run_graph`` do) has it back before the first token. Otherwise the first
        :meth:`write` opens the step, as the JS agent does.
        """
        self._require_active("begin step")
        self._steps.begin(self._h)

    async def _open_step(self) -> None:
        step = await self._steps.opened(self._h)
        if self._writer is not None:
            self._writer.encoder.headers = self._h.output(self._writer.encoder.codec_message_id,
                                                          step)

    async def end_step(self, reason: StepEndReason = "complete") -> None:
        """Close the step that :meth:`write` opened (``ai-step-end``); a no-op without one.

        :meth:`pipe` does this itself; writers that call :meth:`write` directly close the
        step before :meth:`suspend`, which refuses an open step.
        """
        self._require_active("end step")
        if self._writer is not None:
            self._writer.cancel_streams()  # a stream left open would never end
        self._close_step(reason)

    def _close_step(self, reason: StepEndReason) -> None:
        self._steps.end(self._h, reason)

    def _require_active(self, what: str) -> None:
        if self.state != "active":
            raise RunLifecycleError(unable_to(what, f"run {self.run_id} is {self.state}"))

    # -- output ----------------------------------------------------------------------------------
    def new_message(self) -> str:
        """Start a new assistant message (a fresh codec-message-id) for later writes."""
        self._require_active("start message")
        cmid = str(uuid.uuid4())
        self._writer = MessageWriter(self._outbox,
                                     UIMessageEncoder(cmid, self._h.output(cmid, self._steps.open)),
                                     self._next_id, rollup_window=self._rollup)
        return cmid

    async def write(self, chunk: Chunk) -> None:
        """Publish one chunk into the current assistant message (opening a step if needed).

        Allowed inside ``on_cancelled`` (to write final outputs); refused after the end.
        Returns once the chunk is submitted, not acknowledged; it waits only while too
        many publishes are in flight, and for the ``ai-step-start`` of a new step. Raises
        a refusal of an earlier publish of the run (once).
        """
        self._require_active("write output")
        if self._writer is None:
            self.new_message()
        if self._steps.open is None:  # right before the first output, unless begun earlier
            await self._open_step()
        outbox = self._outbox
        if outbox.full:
            await outbox.room()
        writer = self._writer
        assert writer is not None
        writer.write(writer.encoder.encode(chunk))
        if chunk.get("type") in _DELTAS:
            self.progress.tokens += 1

    async def pipe(self, source: AsyncIterable[Chunk] | Iterable[Chunk]) -> PipeResult:
        """Publish every chunk of ``source`` as one assistant message, until it ends or the
        run is cancelled. Returns how it ended; never raises for cancellation or errors of
        the source (an ``asyncio`` cancellation of the calling task is re-raised after the
        terminal publishes).
        """
        self._require_active("pipe output")
        self.new_message()
        if not self.cancelled:
            self.begin_step()  # its acknowledgement comes back while the source warms up
        self._pipe_task = asyncio.current_task()
        self._pipe_done = asyncio.Event()
        finish_reason: str | None = None
        outcome: RunEndReason = "complete"
        error: AITransportError | None = None
        external_cancel = False
        iterator = chunks_of(source)
        pulled = 0
        progress = self.progress
        progress.model_calls += 1  # the source is the model: generating until it ends
        try:
            while not self._stopping():
                self._pulling = True
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                finally:
                    self._pulling = False
                pulled += 1
                if pulled % _YIELD_EVERY == 0:
                    # A source that never suspends (a list, a fast local model) would
                    # otherwise starve the loop, and a cancel could not be read.
                    await asyncio.sleep(0)
                if self._stopping():
                    break
                if chunk.get("type") == "finish":
                    reason = chunk.get("finishReason")
                    finish_reason = reason if isinstance(reason, str) else None
                await self.write(chunk)
        except asyncio.CancelledError:
            task = self._pipe_task
            if self._interrupted and task is not None and task.uncancel() == 0:
                self._interrupted = False  # our own interruption: an outcome, not an error
            else:
                external_cancel = True
                self.cancel(CancelReason("shutdown", "the task running the run was cancelled"))
        except Exception as exc:
            outcome, error = "error", as_error(exc)
        finally:
            progress.model_calls -= 1
        if self._interrupted:  # the source swallowed our interruption: clear the request
            self._interrupted = False
            if self._pipe_task is not None:
                self._pipe_task.uncancel()
        if self.cancelled:
            outcome, error = "cancelled", None
            self.note_stopped()
        try:
            if outcome == "cancelled":
                # A cancelled run can only end: publish its whole terminal sequence
                # (on_cancelled output, streams, step, ai-run-end) in one shielded task,
                # which saves the loop iterations of a second hand-off in end().
                await wait_shielded(self._start_cancelled_end())
            else:
                await shielded(self._finish_pipe(outcome, error), self._terminal_timeout)
        except AITransportError as exc:
            outcome, error = "error", exc
        except TimeoutError:
            logger.error("run %s: terminal publishes timed out", self.run_id)
        finally:
            self._pipe_task = None
            self._pipe_done.set()
            await close_quietly(iterator)
        if external_cancel:
            raise asyncio.CancelledError
        if outcome == "error" and error is None:
            error = StreamError(unable_to("complete run", "unknown error"))
        self._pipe_error = error
        return PipeResult(outcome, error, self.signal.reason if outcome == "cancelled" else None,
                          finish_reason)

    async def _finish_pipe(self, outcome: RunEndReason, error: AITransportError | None) -> None:
        writer = self._writer
        try:
            if writer is not None:
                writer.cancel_streams()  # dangling or cancelled streams are terminated
        finally:
            self._close_step({"complete": "complete", "cancelled": "cancelled",
                              "error": "failed"}[outcome])  # type: ignore[arg-type]
        await self._settled()

    async def _run_on_cancelled(self) -> None:
        if self._cancel_handled or self._on_cancelled is None or self.state != "active":
            self._cancel_handled = True
            return
        self._cancel_handled = True
        reason = self.signal.reason or CancelReason()
        try:
            result = self._on_cancelled(self, reason)
            if result is not None:
                await result
        except Exception as exc:
            logger.exception("run %s: on_cancelled raised", self.run_id)
            self._session._report(as_error(exc))

    def _on_abort(self, reason: CancelReason) -> None:
        now = now_ms()
        sent_at, received_at = self._request
        self._interruption = Interruption(reason.name, reason.requester, sent_at,
                                          received_at or now, now)
        # Any thread may abort: hop to the loop before touching the pipe task. On the loop
        # itself, interrupt at once: the hop costs a loop iteration of latency.
        try:
            if asyncio.get_running_loop() is self._loop:
                self._interrupt()
                return
        except RuntimeError:  # not on any loop: a worker thread
            pass
        try:
            self._loop.call_soon_threadsafe(self._interrupt)
        except RuntimeError:  # loop closed; nothing left to interrupt
            pass

    def _stopping(self) -> bool:
        """Cancelled, and not asked to let the current step (the piped source) finish."""
        reason = self.signal.reason
        return reason is not None and not reason.drain

    def _interrupt(self) -> None:
        # Only interrupt while waiting for the source: a chunk being published finishes
        # first, and the loop sees the signal right after it.
        task = self._pipe_task
        if task is not None and self._pulling and not self._interrupted and self._stopping():
            self._interrupted = True
            task.cancel()
            # No chunk is being written (we were pulling), so the terminal sequence can
            # start now, in the same loop iteration as the abort, not after the pipe wakes.
            self._start_cancelled_end()

    def _start_cancelled_end(self) -> asyncio.Task[None]:
        if self._cancelled_end is None:
            self._cancelled_end = start_bounded(self._publish_end("cancelled", None),
                                                self._terminal_timeout)
        return self._cancelled_end

    async def suspend(self) -> None:
        """Publish ``ai-run-suspend``: the run waits for participant input (§7).

        A continuation invocation resumes it. A cancelled run ends ``cancelled`` instead.
        """
        self._require_active("suspend run")
        if self.cancelled:
            await self.end("cancelled")
            return
        await self._finalize("suspended")
        if self._steps.active:
            raise RunLifecycleError(unable_to("suspend run", "a step is still open"))
        self._publish(EVENT_RUN_SUSPEND, self._h.base())
        self.state = "suspended"
        self._retire()
        await shielded(self._settled(), self._terminal_timeout)

    async def end(self, outcome: PipeResult | RunEndReason | None = None, *,
                  error: BaseException | None = None) -> None:
        """Publish ``ai-run-end`` (idempotent: the first end wins).

        Args:
            outcome: a :class:`PipeResult` (mapped to its reason), a reason, or ``None``
                (``cancelled`` if the run was cancelled, else ``error`` if ``error`` is
                given, else ``complete``).
            error: the error for an ``error`` end; its code and message go on the wire
                (104008 and ``"unable to complete run; ..."`` for foreign exceptions).
        """
        if self.state in ("ended", "suspended"):
            return
        if self._ending is not None:  # another task is ending the run: wait for it
            await asyncio.shield(self._ending)
            return
        if self.state == "created":
            self.state = "ended"
            self._retire()
            return
        self._ending = self._loop.create_future()
        try:
            if self._pipe_done is not None and not self._pipe_done.is_set():
                await self._pipe_done.wait()
            if self.state == "ended":  # the cancelled pipe we waited for ended the run
                return
            if isinstance(outcome, PipeResult):
                error = error or outcome.error
                outcome = outcome.reason
            elif outcome is None and error is None:
                error = self._pipe_error  # the last pipe() failed: the run did not complete
            if self.cancelled:
                reason: RunEndReason = "cancelled"
            elif outcome is None:
                reason = "error" if error is not None else "complete"
            elif outcome in ("complete", "cancelled", "error"):
                reason = outcome
            else:
                raise InvalidArgumentError(f"unknown run end reason {outcome!r}")
            await shielded(self._publish_end(reason, error), self._terminal_timeout)
        finally:
            self._ending.set_result(None)

    def _retire(self) -> None:
        """The run ended or suspended: no deadline, and its session lets it go."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._session._deregister(self)

    async def _publish_end(self, reason: RunEndReason, error: BaseException | None) -> None:
        # Everything below goes out back to back (no acknowledgement is awaited before
        # ai-run-end), then the acknowledgements are awaited for the report.
        if reason == "cancelled":
            self.note_stopped()  # if the producer did not say earlier
        try:
            await self._finalize(reason)
            if reason == "cancelled":
                await self._run_on_cancelled()
            if self._writer is not None:
                self._writer.cancel_streams()
        except AITransportError as exc:
            logger.warning("run %s: closing streams before the end failed: %s", self.run_id, exc)
        self._close_step({"complete": "complete", "cancelled": "cancelled",
                          "error": "failed"}[reason])  # type: ignore[arg-type]
        wire = None
        if reason == "error":
            wire = as_error(error) if error is not None else StreamError(
                unable_to("complete run", "agent reported an error"))
        try:
            self._publish(EVENT_RUN_END, self._h.run_end(reason, wire, self.signal.reason))
        finally:
            self.state = "ended"
            self.end_reason = reason
            self._retire()
        try:
            await self._settled(fatal=False)  # a fatal writer error ended the pipe already
        finally:
            if reason == "cancelled":
                self._report_interruption()

    def _report_interruption(self) -> None:
        interruption = self._interruption
        if interruption is None:
            return
        self._interruption = interruption = interruption.with_marks(published_at=now_ms())
        report_interruption(self.run_id, interruption)
        if self._on_interrupted is not None:
            try:
                self._on_interrupted(self, interruption)
            except Exception as exc:
                logger.exception("run %s: on_interrupted raised", self.run_id)
                self._session._report(as_error(exc))

    # -- context manager ---------------------------------------------------------------------------
    async def __aenter__(self) -> Run:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: object) -> bool | None:
        if exc is None:
            await self.end()
        elif isinstance(exc, asyncio.CancelledError):
            self.cancel(CancelReason("shutdown", "the task running the run was cancelled"))
            await self.end("cancelled")
        elif isinstance(exc, RunCancelled | RunCancelledError) and self.cancelled:
            # Code in the block stopped because this run was cancelled (throw_if_aborted, or
            # the LangGraph handler stopping generation): an outcome, not an error.
            await self.end("cancelled")
            return True
        elif isinstance(exc, Exception):
            await self.end("error", error=exc)
        return None

    def __repr__(self) -> str:
        return f"<Run {self.run_id} state={self.state} cancelled={self.cancelled}>"
