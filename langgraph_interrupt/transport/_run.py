"""A run: one conversation turn the agent streams, from ``ai-run-start`` to ``ai-run-end``.

Owns: the run's lifecycle and its publishes (locate, start/resume, steps, writes, suspend,
end, §2 and §3 of the protocol notes), its state, its abort signal and deadline, and the
cancel path's exact publish order: what ``on_cancelled`` wrote, ``status:"cancelled"`` on
every open stream, ``ai-step-end{cancelled}``, ``ai-run-end{cancelled}``; nothing of the run
after its end. It delegates piping a source (:mod:`._pipe`), admission under the multitask
strategy (:mod:`._admission`), the outbox, steps and message writer (:mod:`._publisher`),
calling the application's hooks (:mod:`._hooks`) and the interruption's timeline
(:mod:`._interruption`); what it needs from its session is :class:`~._host.RunHost`.

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
from typing import Literal

from .._abort import AbortController, AbortSignal, CancelReason, RunCancelled, RunCancelledError
from .._errors import (
    AITransportError,
    InvalidArgumentError,
    OperationCancelledError,
    RunLifecycleError,
    StreamError,
    unable_to,
)
from .._invocation import Invocation
from .._wire import (
    EVENT_RUN_RESUME,
    EVENT_RUN_START,
    EVENT_RUN_SUSPEND,
    RunEndReason,
    StepEndReason,
)
from ..channels import Channel
from ..codec import Chunk
from ._admission import Admission
from ._headers import RunHeaders
from ._hooks import RunHooks
from ._host import RunHost
from ._interruption import InterruptionRecord
from ._multitask import MultitaskStrategy
from ._output import shielded, start_bounded
from ._pipe import Pipe, interrupt_pipe
from ._progress import Interruption, RunProgress, now_ms
from ._publisher import STEP_END, RunPublisher
from ._source import PipeResult, as_error
from ._steerable import OnSteer, Steerable
from ._steering import SteerBox
from ._trigger import Trigger

__all__ = ["OnCancelled", "PipeResult", "Run", "RunHost", "RunState"]

logger = logging.getLogger("langgraph_interrupt.transport")

RunState = Literal["created", "active", "suspended", "ended"]
OnCancelled = Callable[["Run", CancelReason], Awaitable[None] | None]
#: Called once per interrupted run, after its terminal sequence was acknowledged.
OnInterrupted = Callable[["Run", Interruption], None]
_DELTAS = frozenset({"text-delta", "reasoning-delta"})
Finalizer = Callable[["Run", str], Awaitable[None] | None]


class Run(Steerable):
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
                 on_interrupted: OnInterrupted | None = None,
                 on_steer: OnSteer | None = None) -> None:
        self._session = session
        self._steering = SteerBox()
        self._on_steer = on_steer
        #: Live facts for ``on_cancel`` decisions (elapsed, tokens, node, generating).
        self.progress = RunProgress()
        self._timeout = timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._interruption = InterruptionRecord(on_interrupted)
        self.multitask = multitask  #: the multitask strategy this run was admitted under
        self._admission = Admission(self)
        self._publisher = RunPublisher(self, append_rollup_window)
        self.invocation = invocation
        self.run_id = run_id or str(uuid.uuid4())
        self.invocation_id = invocation_id or str(uuid.uuid4())
        self._controller = AbortController()
        self._hooks = RunHooks(on_cancelled)
        self._terminal_timeout = terminal_timeout
        self.trigger: Trigger | None = None
        self._headers: RunHeaders | None = None
        self.state: RunState = "created"
        self.end_reason: RunEndReason | None = None
        self._pipe_error: AITransportError | None = None  # the last pipe()'s, for end()
        self._pipe: Pipe | None = None  # the latest pipe(): end() waits for it
        self._cancelled_end: asyncio.Task[None] | None = None
        self._escalated = False  # a drain turned into a stop (see cancel)
        self._ending: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
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
        self._hooks.add_finalizer(finalizer)

    @property
    def interruption(self) -> Interruption | None:
        """How the run's cancel went, once it was cancelled: the timeline from the request
        to the terminal sequence (complete once the run ended)."""
        return self._interruption.current

    def note_stopped(self) -> None:
        """Mark the moment the model and the tools stopped after a cancel (for the
        :attr:`interruption` metrics). ``pipe()`` and ``run_graph`` call it; a producer
        of your own may, else the start of the terminal sequence counts."""
        self._interruption.stopped()

    def _note_request(self, sent_at: float | None, received_at: float | None) -> None:
        """The client's send time and our receive time of the cancel about to be applied."""
        self._interruption.note_request(sent_at, received_at)

    @property
    def rollback(self) -> bool:
        """True when a newer input interrupted this run under the ``rollback`` strategy (its
        first cancel reason says so): its graph writes are to be discarded, not repaired
        (``run_graph`` does it)."""
        reason = self.signal.reason
        return reason is not None and reason.rollback

    @property
    def run_client_id(self) -> str:
        """The run owner's client id (``""`` when unknown)."""
        return self.trigger.run_client_id if self.trigger else ""

    def cancel(self, reason: CancelReason | str | None = None) -> bool:
        """Cancel the run from your own code. Idempotent, safe before start; first reason wins.

        One exception: a run draining (its first reason said ``drain``) is stopped now by a
        reason that does not drain (a shutdown whose grace ran out, say); its reason stays
        the first. Returns True when this call cancelled (or escalated) the run.
        """
        if self._controller.abort(reason):
            return True
        current = self.signal.reason
        if current is not None and current.drain and not self._escalated and not (
                isinstance(reason, CancelReason) and reason.drain):
            self._escalated = True
            interrupt_pipe(self)  # if it waits for its source
            return True
        return False

    async def wait_other_workers(self) -> bool:
        """Wait until the runs other agent workers serve on this session, for inputs
        published before this run's, have ended or suspended (with a ``WorkerRegistry``;
        at once without). ``run_graph`` waits so that two workers never run one thread at
        once. False if this run was cancelled first."""
        return await self._session._others_gone(self)

    # -- publishing -------------------------------------------------------------------------
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
        return self._publisher.publish(name, transport)

    async def flush(self) -> None:
        """Wait until everything the run published so far was acknowledged by the channel.

        Writes return once submitted (publishing is pipelined); call this before a side
        effect that must not happen unless the output before it is stored. Raises the
        first refusal of the run's publishes not reported yet (a refused append that the
        writer will repair is not one).
        """
        await self._publisher.settled()

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
        await self._admission.admit()

    async def _end_unstarted(self, reason: RunEndReason, error: AITransportError | None) -> None:
        """Start and end a run that never ran (refused, or cancelled while it waited), so
        every device sees its input answered. Safe to call twice."""
        if self.state == "created":
            self.state = "active"
            trigger = self._h.trigger
            if trigger.is_continuation:
                self._publish(EVENT_RUN_RESUME, self._h.base())
            else:
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
        await self._admission.wait_turn()
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
        self._publisher.begin_step()

    async def end_step(self, reason: StepEndReason = "complete") -> None:
        """Close the step that :meth:`write` opened (``ai-step-end``); a no-op without one.

        :meth:`pipe` does this itself; writers that call :meth:`write` directly close the
        step before :meth:`suspend`, which refuses an open step.
        """
        self._require_active("end step")
        self._publisher.cancel_streams()  # a stream left open would never end
        self._publisher.end_step(reason)

    def _require_active(self, what: str) -> None:
        if self.state != "active":
            raise RunLifecycleError(unable_to(what, f"run {self.run_id} is {self.state}"))

    # -- output ----------------------------------------------------------------------------------
    def new_message(self) -> str:
        """Start a new assistant message (a fresh codec-message-id) for later writes."""
        self._require_active("start message")
        return self._publisher.new_message()

    async def write(self, chunk: Chunk) -> None:
        """Publish one chunk into the current assistant message (opening a step if needed).

        Allowed inside ``on_cancelled`` (to write final outputs); refused after the end.
        Returns once the chunk is submitted, not acknowledged; it waits only while too
        many publishes are in flight, and for the ``ai-step-start`` of a new step. Raises
        a refusal of an earlier publish of the run (once).
        """
        if self.state != "active":  # checked inline: this runs once per chunk
            self._require_active("write output")
        await self._publisher.write(chunk)
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
        self._steering.produced = True
        if not self.cancelled:
            self.begin_step()  # its acknowledgement comes back while the source warms up
        self._pipe = pipe = Pipe(self)
        result = await pipe.run(source)
        self._pipe_error = result.error
        return result

    # -- ending ------------------------------------------------------------------------------
    def _on_abort(self, reason: CancelReason) -> None:
        self._interruption.aborted(reason)
        interrupt_pipe(self)  # if it waits for its source

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
        await self._hooks.finalize(self, "suspended")
        if self._publisher.steps.active:
            raise RunLifecycleError(unable_to("suspend run", "a step is still open"))
        self._publish(EVENT_RUN_SUSPEND, self._h.base())
        self.state = "suspended"
        self._retire()
        await shielded(self._publisher.settled(), self._terminal_timeout)

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
        self._ending = ending = self._loop.create_future()
        try:
            pipe = self._pipe
            if pipe is not None and not pipe.done.is_set():
                await pipe.done.wait()
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
            if self.state != "ended":  # refused or failed before ai-run-end: end() may retry
                self._ending = None
            ending.set_result(None)

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
            await self._hooks.finalize(self, reason)
            if reason == "cancelled":
                await self._hooks.cancelled(self)
            self._publisher.cancel_streams()
        except AITransportError as exc:
            logger.warning("run %s: closing streams before the end failed: %s", self.run_id, exc)
        wire = None
        if reason == "error":
            wire = as_error(error) if error is not None else StreamError(
                unable_to("complete run", "agent reported an error"))
        try:  # the open step's end and the run's, in one publish
            self._publisher.end_run(STEP_END[reason],
                                    self._h.run_end(reason, wire, self.signal.reason))
        finally:
            self.state = "ended"
            self.end_reason = reason
            self._retire()
        try:
            # Not fatal: a fatal writer error ended the pipe already.
            await self._publisher.settled(fatal=False)
        finally:
            if reason == "cancelled":
                self._interruption.report(self)

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
