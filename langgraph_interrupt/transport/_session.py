"""The agent side of a session: one channel, many concurrent runs, cancel routing.

Owns: connecting (subscribe, then attach), the live index of inputs that lets a run find
its trigger, routing ``ai-cancel`` to runs (by ``run-id`` or ``input-codec-message-id``),
the bounded buffer of cancels that arrive before their run exists, admitting runs under the
multitask strategy (:mod:`._multitask`), and closing (open runs end ``cancelled``, shielded
and time-bounded). Deciding a cancel through ``on_cancel`` is :mod:`._authorise`'s; waiting
for an input not seen yet (live against history) is :mod:`._find_input`'s.

Improvements over the JS agent (§11 of the protocol notes), each pinned by a named test:
cancels found only in history are honoured (c3); a run aborts and ends once, and the hook
is not called again for it (c1); a hook that raises counts as a rejection and is reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from .._abort import AbortSignal, CancelReason
from .._cancel import CancelTarget, read_cancel
from .._eager import start_eagerly
from .._errors import (
    AITransportError,
    InvalidArgumentError,
    InvalidInvocationError,
    SessionClosedError,
    unable_to,
)
from .._invocation import Invocation
from .._wire import (
    EVENT_CANCEL,
    EVENT_INPUT,
    EVENT_OUTPUT,
    EVENT_RUN_END,
    EVENT_RUN_SUSPEND,
    ChannelMessage,
)
from ..channels import Channel
from ._authorise import CancelDesk, CancelRequest, OnCancel
from ._early_cancels import EarlyCancels
from ._find_input import find_input
from ._foreign import ForeignRuns
from ._input_index import InputIndex
from ._multitask import MultitaskStrategy, RunGate
from ._output import shielded
from ._run import OnCancelled, OnInterrupted, Run
from ._steerable import OnSteer
from ._steering import Steer, SteerIndex, read_steer_ids
from ._trigger import Trigger
from ._workers import WorkerRegistry

__all__ = ["AgentSession", "CancelRequest", "OnCancel"]

logger = logging.getLogger("langgraph_interrupt.transport")

#: Messages a new attach asks to be delivered from before it (Ably's ``rewind``): a run's
#: input is usually among the newest, and then needs no history read.
_RECENT_INPUTS = 10
_ENDS = (EVENT_RUN_END, EVENT_RUN_SUSPEND)


OnError = Callable[[AITransportError], None]


def _log_error(error: AITransportError) -> None:
    logger.error("session error %s: %s", error.code, error.message)


class AgentSession:
    """Hosts runs on one channel.

    Args:
        channel: the session's channel (its name is the invocation's ``sessionName``).
        on_cancel: decides each client cancel, ``(CancelRequest) -> decision`` (sync or
            async): ``True``/``"accept"`` cancels now, ``False``/``"reject"`` refuses,
            ``"drain"`` lets the current step finish first. The request carries who asked,
            the reason, and the run's progress (elapsed, tokens, node, generating). No
            hook: every cancel is accepted.
        on_error: receives background errors (a raising hook, ...). Default: log.
        trigger_timeout: how long to wait for a trigger that is not yet on the channel.
        max_history_pages / history_page_size: bound on the history scan for a trigger.
        terminal_timeout: bound on each terminal publish (step/run end) during cancel/close.
        cancel_buffer_size / cancel_buffer_ttl: bound on cancels kept for runs that do not
            exist yet (count, seconds); the oldest are dropped first.
        append_rollup_window: minimum seconds between two appends of one stream (Ably's
            ``appendRollupWindow``; 0, the default, only coalesces while an append is in
            flight). Larger windows mean fewer messages per answer (Ably bills per
            message) and tokens that arrive later; see ``docs/performance.md``.
        multitask: what a new input does while runs are active (``docs/interruption.md``):
            ``concurrent`` (the default: it runs alongside), ``interrupt`` (it cancels the
            active run, reason ``new_input``, then starts), ``rollback`` (the same, and
            the interrupted run's graph writes are discarded), ``enqueue`` (it waits for
            the active run to end) or ``reject`` (refused: ``RunRejectedError``, 40900).
        max_active_runs: active runs before the strategy applies (default 1, or no limit
            for ``concurrent``, which then refuses past its limit).
        max_queued_runs: inputs waiting under ``enqueue``; one more is refused.
        multitask_overrides: strategies one input may ask for instead (``create_run``'s
            ``multitask``, the POST body's ``multitaskStrategy``); others are refused.
        run_timeout: a deadline per run, in seconds from its start: past it the run is
            cancelled with reason ``timeout`` (``create_run(timeout=)`` sets one run's).
        on_steer: ``(run, Steer) -> None``, a hint called once per steering message a run
            receives (``ClientRun.steer``); the run drains them with ``run.has_input()``.
            A hint that raises is reported (104002); the steer still counts.
        on_interrupted: ``(run, Interruption) -> None``, called once per cancelled run
            after its terminal sequence was acknowledged, with the timeline of the cancel
            (also logged, and an OpenTelemetry span event when ``opentelemetry-api`` is
            installed).
        workers: this worker's :class:`WorkerRegistry`, when several agent workers serve
            the deployment: the others learn which runs this session serves, and end them
            ``error`` if this worker dies (``docs/deployment.md``).

    Example::

        async with AgentSession(broker.channel("ai:chat", client_id="agent")) as session:
            async with session.create_run(invocation) as run:
                await run.pipe(chunks)
    """

    def __init__(self, channel: Channel, *, on_cancel: OnCancel | None = None,
                 on_error: OnError | None = None, trigger_timeout: float = 5.0,
                 max_history_pages: int = 20, history_page_size: int = 100,
                 terminal_timeout: float = 5.0, cancel_buffer_size: int = 200,
                 cancel_buffer_ttl: float = 60.0, input_index_size: int = 1000,
                 append_rollup_window: float = 0.0, multitask: MultitaskStrategy = "concurrent",
                 max_active_runs: int | None = None, max_queued_runs: int = 16,
                 multitask_overrides: Collection[str] = (), run_timeout: float | None = None,
                 on_interrupted: OnInterrupted | None = None,
                 on_steer: OnSteer | None = None,
                 workers: WorkerRegistry | None = None) -> None:
        if run_timeout is not None and run_timeout <= 0:
            raise InvalidArgumentError("run_timeout must be positive")
        self._run_timeout = run_timeout
        self._on_interrupted = on_interrupted
        self._on_steer = on_steer
        self._registry = workers
        self._foreign = ForeignRuns(channel, workers) if workers is not None else None
        if append_rollup_window < 0:
            raise InvalidArgumentError("append_rollup_window must not be negative")
        self.channel = channel
        self._gate = RunGate(multitask, max_active=max_active_runs, max_queued=max_queued_runs,
                             overrides=multitask_overrides)
        self._rollup = append_rollup_window
        self._on_cancel = on_cancel
        self._on_error = on_error or _log_error
        self._trigger_timeout = trigger_timeout
        self._max_pages = max_history_pages
        self._page_size = history_page_size
        self._terminal_timeout = terminal_timeout
        self._index_size = input_index_size
        self._runs: dict[str, Run] = {}
        self._by_input: dict[str, Run] = {}
        self._early = EarlyCancels(cancel_buffer_size, cancel_buffer_ttl)
        self._steers = SteerIndex()  # steers for runs not open here, and those answered
        # Cancels a history scan found next to a run's input, applied once it is adopted.
        self._found_cancels: dict[Run, list[CancelTarget]] = {}
        self._inputs = InputIndex(input_index_size)
        self._senders: OrderedDict[str, str | None] = OrderedDict()  # serial -> client id
        self._workers: set[asyncio.Task[None]] = set()
        self._desk = CancelDesk(self._workers, self._report)
        self._unsubscribe: Callable[[], None] | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._connected = False
        self._closed = False

    @property
    def runs(self) -> list[Run]:
        """Runs created and not yet ended or suspended."""
        return list(dict.fromkeys(self._runs.values()))

    # -- connection -------------------------------------------------------------------------
    async def connect(self) -> None:
        """Subscribe, then attach (so nothing between attach and subscribe is missed).

        Idempotent; concurrent calls share one attach, and a failed attach is tried again
        by the next call. Starting a run connects the session itself.
        """
        if self._closed:
            raise SessionClosedError(unable_to("connect", "the session is closed"))
        if not self._connected:
            await asyncio.shield(self._connect_soon())

    def connect_nowait(self) -> asyncio.Future[None]:
        """Start connecting now and return at once: a future of the attach, shared with
        :meth:`connect` and with the first run's lookup.

        For a server that has just opened a session for a request: the ATTACH is on its
        way while the request's run is created, instead of after. The future's failure
        (an attach refused) is reported by the run's start as well; awaiting it is
        optional.
        """
        if self._closed:
            raise SessionClosedError(unable_to("connect", "the session is closed"))
        connecting = self._connect_soon()
        connecting.add_done_callback(_retrieve)
        return connecting

    def _connect_soon(self) -> asyncio.Future[None]:
        connecting = self._connecting
        if connecting is None or (connecting.done() and (connecting.cancelled()
                                                         or connecting.exception())):
            # Eagerly: the ATTACH leaves now, not after what the loop has queued.
            connecting = self._connecting = start_eagerly(self._attach())
        return connecting

    async def _attach(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.channel.subscribe(self._on_message)
        # The serial is not needed (history is bounded without it), and the input a run
        # looks for was usually published just before: have it delivered with the attach.
        await self.channel.attach(serial=False, recent=_RECENT_INPUTS)
        self._connected = True

    async def __aenter__(self) -> AgentSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, *, timeout: float | None = None) -> None:
        """End open runs ``cancelled`` and detach. Idempotent.

        The terminal publishes are shielded from the cancellation of the task calling
        ``close`` and bounded by ``timeout`` (default: the session's terminal timeout).
        """
        if self._closed:
            return
        self._closed = True
        self._inputs.fail_waiters(SessionClosedError(unable_to("start run",
                                                               "the session closed")))
        runs = self.runs
        # Admitted but not started (queued, or waiting for a run it interrupted): their
        # POST was answered, so they end on the wire too.
        queued = {run for run in runs if run.state == "created" and run.trigger is not None}
        for run in runs:
            run.cancel(CancelReason("shutdown", "the session closed"))
        try:
            if runs:
                await shielded(asyncio.gather(
                    *(run._end_unstarted("cancelled", None) if run in queued
                      else run.end("cancelled") for run in runs), return_exceptions=True),
                    timeout or self._terminal_timeout)
        except TimeoutError:
            logger.error("session close: ending %d run(s) timed out", len(runs))
        finally:
            self._gate.close()
            for task in list(self._workers):
                task.cancel()
            self._early.clear()
            if self._unsubscribe is not None:
                self._unsubscribe()
            try:
                await self.channel.detach()
            except Exception:  # best effort: the channel may already be gone
                logger.debug("detach on close failed", exc_info=True)

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, invocation: Invocation, *, run_id: str | None = None,
                   invocation_id: str | None = None, on_cancelled: OnCancelled | None = None,
                   on_cancel: OnCancel | None = None, signal: AbortSignal | None = None,
                   multitask: str | None = None, timeout: float | None = None,
                   on_steer: OnSteer | None = None) -> Run:
        """Create a run for ``invocation`` (no I/O; :meth:`Run.start` finds the trigger).

        Args:
            multitask: this input's multitask strategy instead of the session's; only one
                the session's ``multitask_overrides`` allows.
            timeout: this run's deadline instead of the session's ``run_timeout``.
            on_steer: this run's steer hint instead of the session's.
            on_cancelled: called once when the run is cancelled, before its streams are
                closed; it may ``await run.write(chunk)`` final outputs.
            on_cancel: per-run authorisation hook, overriding the session's.
            signal: an external signal (e.g. the HTTP request's) that also cancels the run.
        """
        if self._closed:
            raise SessionClosedError(unable_to("create run", "the session is closed"))
        strategy = self._gate.resolve(multitask)  # refuses an unknown or disallowed one
        if timeout is not None and not timeout > 0:
            raise InvalidArgumentError("a run's timeout must be positive")
        if invocation.session_name != self.channel.name:
            raise InvalidInvocationError(unable_to(
                "create run", f"the invocation is for session {invocation.session_name!r}, "
                f"not {self.channel.name!r}"))
        if run_id is None:
            # A continuation names the run it resumes: when its input already arrived live,
            # adopt that id now, so the HTTP answer names the real run (the JS agent answers
            # with a provisional id that never appears on the channel).
            known = self._inputs.get(invocation.input_event_id)
            if known is not None and known.run_id and not self._open(known.run_id):
                run_id = known.run_id
        run = Run(self, invocation, run_id=run_id, invocation_id=invocation_id,
                  on_cancelled=on_cancelled, signal=signal,
                  terminal_timeout=self._terminal_timeout, append_rollup_window=self._rollup,
                  multitask=strategy,
                  timeout=timeout if timeout is not None else self._run_timeout,
                  on_interrupted=self._on_interrupted, on_steer=on_steer or self._on_steer)
        self._runs[run.run_id] = run
        self._desk.register(run, on_cancel or self._on_cancel)
        return run

    async def wait_for_input(self, input_event_id: str, timeout: float) -> Trigger | None:
        """Wait up to ``timeout`` for the live ``ai-input`` of ``input_event_id``.

        The JS client publishes its input, then POSTs the invocation; the POST can win the
        race. An endpoint that answers with the run id at once waits this briefly first, so
        a continuation is answered with the run it resumes. ``None`` if not seen in time
        (the run then finds its input in history when it starts).
        """
        return await self._inputs.wait(input_event_id, timeout)

    async def _locate(self, run: Run) -> Trigger:
        if self._closed:
            raise SessionClosedError(unable_to("start run", "the session is closed"))
        connecting = self._connect_soon()  # attached at once, or attaching meanwhile
        event_id = run.invocation.input_event_id
        trigger = self._inputs.get(event_id)
        if trigger is None:
            trigger, cancels = await find_input(
                self.channel, self._inputs, event_id, run.signal, connecting,
                timeout=self._trigger_timeout, max_pages=self._max_pages,
                page_size=self._page_size)
            if cancels:  # found next to the input in history: applied once it is adopted
                self._found_cancels[run] = cancels
        steer = Steer.of(trigger)
        if steer is not None and self._open(steer.run_id) not in (None, run):
            raise InvalidInvocationError(unable_to(
                "start run", f"input {event_id!r} is a steer into run {steer.run_id}, which "
                "is still running: a steer needs no invocation"))
        if not connecting.done():  # found live while the attach completes
            task = asyncio.ensure_future(self._after_attach(run, connecting))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        else:
            connecting.result()  # an attach failure fails the start: no cancel could reach it
        return trigger

    async def _after_attach(self, run: Run, connecting: asyncio.Future[None]) -> None:
        """The run's input arrived with the attach, before the attach completed: finish it;
        a session that cannot attach cannot hear a cancel, so the run is cancelled."""
        try:
            await connecting
        except Exception as exc:
            logger.error("session %r: attach for run %s failed: %r", self.channel.name,
                         run.run_id, exc)
            run.cancel(CancelReason("error", f"the session could not attach: {exc}"))

    def _adopt(self, run: Run) -> None:
        trigger = run.trigger
        assert trigger is not None
        if trigger.run_id is not None and trigger.run_id != run.run_id:
            self._runs.pop(run.run_id, None)
            run.run_id = trigger.run_id
        self._runs[run.run_id] = run
        self._by_input[trigger.codec_message_id] = run
        if self._registry is not None:
            self._registry.run_started(self.channel.name, run.run_id, trigger.serial)
        pending = self._found_cancels.pop(run, [])
        early = self._early.take(trigger.codec_message_id)
        if early is not None:
            pending.append(early)
        for target in pending:
            self._desk.consider(run, target)
        for steer in self._steers.seed(run.run_id, run._steering, trigger.codec_message_id):
            run._steered(steer)

    async def _decided(self, run: Run) -> None:
        await self._desk.decided(run)

    async def _others_gone(self, run: Run) -> bool:
        return True if self._foreign is None else await self._foreign.wait_gone(run)

    def _admit(self, run: Run) -> asyncio.Future[Any] | None:
        if self._foreign is not None:  # other workers' runs of this session count too
            return self._foreign.admit(run, self._gate)
        return self._gate.admit(run, run.multitask)

    def _sender_of(self, serial: str) -> tuple[bool, str | None]:
        """``(known, client id)`` of a recent ``ai-*`` message by serial."""
        if serial in self._senders:
            return True, self._senders[serial]
        return False, None

    def _deregister(self, run: Run) -> None:
        if self._runs.get(run.run_id) is run:
            del self._runs[run.run_id]
        if run.trigger is not None and self._by_input.get(run.trigger.codec_message_id) is run:
            del self._by_input[run.trigger.codec_message_id]
        self._desk.forget(run)
        self._found_cancels.pop(run, None)
        if self._registry is not None:
            self._registry.run_ended(self.channel.name, run.run_id)
        # Its end on the wire before the run that waited for it: release the gate once the
        # run's last publishes (ai-run-end) are on their way, not when they were submitted.
        sent = run._publisher.outbox.sent()
        if sent.done():
            self._gate.release(run)
        else:
            sent.add_done_callback(lambda _: self._gate.release(run))
        if run.state == "suspended":  # steers it had not taken in wait for its resume
            for steer in run._steering.unanswered():
                self._steers.keep(steer)

    def _report(self, error: AITransportError) -> None:
        try:
            self._on_error(error)
        except Exception:
            logger.exception("on_error raised")

    # -- inbound ------------------------------------------------------------------------------
    def _on_message(self, message: ChannelMessage) -> None:
        name = message.name
        if name is None or not name.startswith("ai-"):
            return  # appends (no name) and foreign traffic: the hot path, kept cheap
        senders = self._senders
        senders[message.serial] = message.client_id
        if len(senders) > self._index_size:
            senders.popitem(last=False)
        try:
            if name == EVENT_CANCEL:
                target = read_cancel(message)
                if target is None:
                    logger.debug("skipping malformed cancel %s", message.serial)
                else:
                    self._route(target)
            elif name == EVENT_INPUT:
                trigger = Trigger.read(message)
                if trigger is not None:
                    self._inputs.add(trigger)
                    steer = Steer.of(trigger)
                    if steer is not None:
                        self._steer(steer)
            elif name in _ENDS:
                if self._foreign is not None:
                    self._foreign.saw_end(message)
            elif name == EVENT_OUTPUT:
                run_id, answered = read_steer_ids(message)
                if run_id and answered:
                    self._steers.answered(run_id, answered)
        except Exception:  # hostile input must never break the subscription
            logger.debug("skipping message %r", message.serial, exc_info=True)

    def _open(self, run_id: str) -> Run | None:
        """The run ``run_id`` if it is open here (located, not ended or suspended)."""
        run = self._runs.get(run_id)
        if run is None or run.trigger is None or run.state not in ("created", "active"):
            return None
        return run

    def _steer(self, steer: Steer) -> None:
        """A user message naming a run: a steer for it if that run is open here and this
        is not its own trigger; else kept for when the run opens (a resume)."""
        run = self._runs.get(steer.run_id)
        trigger = run.trigger if run is not None else None
        if run is None or trigger is None or run.state not in ("created", "active"):
            self._steers.keep(steer)
        elif steer.event_id != trigger.event_id and \
                steer.codec_message_id != trigger.codec_message_id:
            run._steered(steer)

    def _route(self, target: CancelTarget) -> None:
        run = self._runs.get(target.run_id) if target.run_id else None
        if run is None and target.input_codec_message_id:
            run = self._by_input.get(target.input_codec_message_id)
        if run is not None and run.trigger is not None:
            self._desk.consider(run, target)
        elif target.input_codec_message_id:
            self._early.put(target.input_codec_message_id, target)
        elif run is not None:  # cancelled by its provisional id before start
            self._desk.consider(run, target)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's failure as seen (it is reported where the future is awaited)."""
    if not future.cancelled():
        future.exception()
