"""The client side of a session, in Python: send, cancel, and watch runs and messages.

Owns: the client session, a participant's handle on the channel: connecting (subscribe,
attach, fold history up to the attach point, then what arrived meanwhile), publishing user
input the way the JS ``ClientSession`` does (§1.1 of the protocol notes), cancels by run
id, by send handle (§2.8) or by filter (all, own, a client id: the earlier JS
``CancelFilter``, expanded here into one ``ai-cancel`` per run, as the 0.8 wire names runs
only), the active runs by client id (the earlier JS ``getActiveRunIds``), folded messages,
and waiting, event-driven (:meth:`ClientSession.wait_for`), never by sleeping. Used by
tests, the demo and Python front ends. It delegates the wire form of what it sends
(:mod:`._user_input`), what a cancel filter picks (:mod:`._cancel_filter`), the view of
runs and who may speak for them (:mod:`._run_view`), the timing of the cancels it asked
for (:mod:`._cancel_times`), and its value and handle types (:mod:`._run_info`,
:mod:`._send_handle`).

A run's lifecycle and outputs are taken only from its agent (Ably verifies client ids):
the client ids given as ``agents``, else the identity that published the run's
``ai-run-start``. Another participant that publishes an ``ai-run-end`` or output for the run
changes nothing, and is logged once. Pass ``agents`` when you know them: a late joiner whose
history window does not reach a run's start cannot tell otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence, Set
from typing import Any

from .._cancel import build_cancel
from .._errors import InvalidArgumentError, SessionClosedError, unable_to
from .._wire import EVENT_INPUT, ChannelMessage, OutboundMessage, batch_ids
from ..channels import Channel
from ..codec import UIMessageDecoder
from ._cancel_filter import active_by_client, runs_to_cancel
from ._run_info import RunInfo
from ._run_view import RunView
from ._send_handle import SendHandle
from ._steer_handle import SteerHandle
from ._steering import read_steer_ids
from ._user_input import tool_result, user_message

__all__ = ["ClientSession", "RunInfo", "SendHandle"]

logger = logging.getLogger("langgraph_interrupt.client")


class ClientSession:
    """A participant that sends input and watches runs on a session channel.

    Args:
        channel: the session's channel, as this participant.
        history_page_size / max_history_pages: how much history :meth:`connect` folds.
        keep_received: how many received messages :attr:`received` keeps.
        agents: the client ids allowed to speak for runs (lifecycle and outputs); default:
            whoever published each run's ``ai-run-start`` (see the module notes).

    Example::

        client = ClientSession(broker.channel("ai:chat", client_id="user-1"))
        await client.connect()
        handle = await client.send("What is the weather?")
        post_to_agent(handle.invocation.to_json())
        await handle.wait_started()
        await handle.cancel()
    """

    def __init__(self, channel: Channel, *, history_page_size: int = 100,
                 max_history_pages: int = 100, keep_received: int = 1000,
                 agents: Collection[str] | None = None) -> None:
        self.channel = channel
        self.decoder = UIMessageDecoder()
        self._page_size = history_page_size
        self._max_pages = max_history_pages
        self._view = RunView(agents)
        self._waiters: list[tuple[Callable[[ClientSession], Any], asyncio.Future[Any]]] = []
        self._buffer: list[ChannelMessage] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._connecting = asyncio.Lock()
        self._closed = False
        #: The last ``keep_received`` messages received, in order (live and history), for
        #: inspection and demos. Bounded: a long session must not keep every token alive
        #: (the folded :attr:`messages` are what a UI needs).
        self.received: deque[ChannelMessage] = deque(maxlen=keep_received)
        self._listeners: list[Callable[[ChannelMessage], None]] = []

    # -- connection -------------------------------------------------------------------------
    async def connect(self) -> None:
        """Subscribe, attach, then fold history up to the attach point (idempotent).

        Concurrent callers share one connection: each returns once history is folded. A
        connect that fails is undone, so calling it again tries again.

        Raises:
            SessionClosedError: the session was closed.
        """
        async with self._connecting:  # a second caller returns once the first is done
            if self._closed:
                raise SessionClosedError(unable_to("connect", "the client session is closed"))
            if self._unsubscribe is not None:
                return
            self._buffer = []
            try:
                self._unsubscribe = self.channel.subscribe(self._on_message)
                await self.channel.attach(serial=False)  # history is bounded without it
                older = await self._history()
            except BaseException:  # not connected: connect() may be tried again
                self._buffer = None
                if self._unsubscribe is not None and not self._closed:
                    self._unsubscribe()
                self._unsubscribe = None
                raise
            buffered, self._buffer = self._buffer, None
            for message in reversed(older):
                self._fold(message)
            for message in buffered:
                self._fold(message)

    async def _history(self) -> list[ChannelMessage]:
        """The history up to the attach point, newest first (at most ``max_pages``)."""
        older: list[ChannelMessage] = []
        page = await self.channel.history(limit=self._page_size, until_attach=True)
        for _ in range(self._max_pages):
            older.extend(page.items)
            if not page.has_next():
                break
            page = await page.next()
        return older

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(SessionClosedError("the client session closed"))
        await self.channel.detach()

    async def __aenter__(self) -> ClientSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def on_message(self, listener: Callable[[ChannelMessage], None]) -> Callable[[], None]:
        """Observe every received message after it is folded (for UIs and demos)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- sending -------------------------------------------------------------------------------
    async def send(self, content: str | Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
                   run_id: str | None = None, parent: str | None = None,
                   message_id: str | None = None) -> SendHandle:
        """Publish a user message (one ``ai-input`` per part, one atomic batch).

        Args:
            content: text, a ``UIMessage`` dict (``{"id"?, "parts": [...]}``), or parts.
            run_id: re-enter a suspended run (a continuation) instead of starting a new one.
            parent: explicit parent; default the last message in the view (auto-parent).
        """
        if parent is None:  # auto-parent: the last message in the view
            entries = self.decoder.entries()
            parent = entries[-1].codec_message_id if entries else None
        event_id, cmid, messages = user_message(
            content, run_id=run_id, parent=parent, message_id=message_id,
            client_id=self.channel.client_id)
        await self._publish(messages)
        return SendHandle(self, event_id, cmid, run_id)

    async def send_tool_result(self, *, run_id: str, codec_message_id: str, tool_call_id: str,
                               output: Any = None, error: str | None = None) -> SendHandle:
        """Answer a suspended run's tool call (a continuation, §7a): the agent resumes the
        run under the same ``run_id``. ``codec_message_id`` is the assistant message that
        holds the tool call; pass ``error`` instead of ``output`` for a failed tool."""
        event_id, message = tool_result(
            run_id=run_id, codec_message_id=codec_message_id, tool_call_id=tool_call_id,
            output=output, error=error, client_id=self.channel.client_id)
        await self._publish([message])
        return SendHandle(self, event_id, codec_message_id, run_id)

    async def steer(self, run_id: str,
                    content: str | Mapping[str, Any] | Sequence[Mapping[str, Any]]
                    ) -> SteerHandle:
        """Send a follow-up into run ``run_id`` while it runs (the official client's
        ``ClientRun.steer``): a user message under the run's id, with no parent and no
        POST. The agent sees it at its next ``has_input()``; :meth:`SteerHandle.outcome`
        says whether an answer took it in (``consumed``).

        Raises:
            InvalidArgumentError: (40003) the run has ended here already.
        """
        run = self._view.run(run_id)
        if run is not None and run.ended:
            raise InvalidArgumentError(unable_to(
                "steer run", f"run {run_id} has ended ({run.status})"))
        event_id, cmid, messages = user_message(
            content, run_id=run_id, parent=None, message_id=None,
            client_id=self.channel.client_id)
        await self._publish(messages)
        return SteerHandle(self, run_id, cmid, event_id)

    async def cancel(self, run_id: str, *, reason: str | None = None) -> None:
        """Ask the agent to cancel run ``run_id`` (any participant may ask; the agent's
        ``on_cancel`` hook decides).

        ``reason``: a reason name the agent sees and puts on the run's ``ai-run-end``
        (``user_speaking``, ``user_clicked_stop``, ...; 1 to 64 printable characters),
        sent with this client's clock for the agent's latency metrics. Without one the
        agent records ``client_request``.

        Raises:
            ValueError: ``reason`` is not 1 to 64 printable characters.
        """
        await self._publish_cancels([build_cancel(run_id=run_id, reason=reason)],
                                    run_ids=[run_id])

    async def cancel_runs(self, *, all: bool = False, own: bool = False,
                          client_id: str | None = None,
                          where: Callable[[RunInfo], bool] | None = None,
                          reason: str | None = None) -> list[str]:
        """Cancel every active run that one filter selects, in one atomic publish.

        The filters are the earlier JS ``CancelFilter`` (``{all}``, ``{own}``, ``{clientId}``;
        ``{runId}`` is :meth:`cancel`), plus a predicate. Give exactly one:

        Args:
            all: every active run of the session.
            own: the runs that answer this client (``RunInfo.client_id`` is its client id).
            client_id: the runs that answer that client id.
            where: the runs for which ``where(run)`` is true.
            reason: as for :meth:`cancel`, sent on every cancel.

        Returns:
            The run ids it asked to cancel, in the order it saw them start; empty, and
            nothing published, when no active run matches. Active means status
            ``active``, as in :meth:`active_runs`: a suspended run is skipped, since no
            agent runs it and agents ignore cancels for it. A run the agent has not
            started yet is not known here: cancel it with :meth:`SendHandle.cancel`.

        Raises:
            ValueError: not exactly one filter; ``own`` on a channel without a client id;
                ``reason`` is not 1 to 64 printable characters.
        """
        run_ids = runs_to_cancel(self._view.runs, all=all, own=own, client_id=client_id,
                                 where=where, reason=reason,
                                 own_client_id=self.channel.client_id)
        await self._cancel_many(run_ids, reason=reason)
        return run_ids

    async def _cancel_many(self, run_ids: Sequence[str], *, reason: str | None) -> None:
        """Cancel the runs ``run_ids`` in one atomic publish (nothing when empty)."""
        if not run_ids:
            return
        stamp = time.time() * 1000  # one send time for the batch
        await self._publish_cancels(batch_ids(
            [build_cancel(run_id=run_id, reason=reason, sent_at=stamp) for run_id in run_ids],
            str(uuid.uuid4())), run_ids=run_ids)

    def active_runs(self, *, include_suspended: bool = False) -> dict[str | None, set[str]]:
        """The active runs by the client id they answer: ``{client_id: {run_id, ...}}``.

        The earlier JS ``useActiveRuns`` hook and ``getActiveRunIds``, as a snapshot (watch
        for changes with :meth:`on_message` or :meth:`wait_for`). Active: started or
        resumed, and neither ended nor suspended. The JS map also counted suspended runs
        (a run waiting for the user's tool result is live); ``include_suspended=True``
        gives that map. Runs whose start named no client id are under ``None``.
        """
        return active_by_client(self._view.runs, include_suspended=include_suspended)

    async def _publish_cancels(self, messages: list[OutboundMessage], *,
                               run_ids: Sequence[str], input_id: str | None = None) -> None:
        """Publish cancels and note, once published, when this client asked (for
        :attr:`RunInfo.cancel_latency`). The time is taken before the publish, so a run-end
        that beat the publish's answer still counts; the first request for a run is kept.
        A suspended run is not noted: agents ignore cancels for it."""
        asked = time.monotonic()
        await self._publish(messages)
        self._view.cancel_asked(run_ids, input_id, asked)

    async def _publish(self, messages: list[OutboundMessage]) -> list[str]:
        if self._closed:
            raise SessionClosedError(unable_to("publish", "the client session is closed"))
        return await self.channel.publish(messages)

    # -- view ------------------------------------------------------------------------------------
    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation folded from the channel, in order of first appearance."""
        return self.decoder.messages()

    @property
    def runs(self) -> list[RunInfo]:
        return list(self._view.runs)

    def run(self, run_id: str) -> RunInfo | None:
        return self._view.run(run_id)

    async def wait_for(self, predicate: Callable[[ClientSession], Any], *,
                       timeout: float | None = None) -> Any:
        """Wait until ``predicate(self)`` returns something truthy (checked after every
        received message) and return it.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
            SessionClosedError: the session is (or gets) closed first: nothing more will
                arrive.
        """
        value = predicate(self)
        if value:
            return value
        if self._closed:  # nothing more will be received
            raise SessionClosedError("the client session closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def wait_run_ended(self, run_id: str, *, timeout: float | None = None) -> RunInfo:
        def ended(s: ClientSession) -> RunInfo | None:
            run = s.run(run_id)
            return run if run is not None and run.ended else None
        result: RunInfo = await self.wait_for(ended, timeout=timeout)
        return result

    @property
    def _forgers(self) -> Set[tuple[str, str | None]]:
        """The (run, sender) pairs already logged as speaking for a run not theirs."""
        return self._view.forgers

    # -- folding ----------------------------------------------------------------------------------
    def _on_message(self, message: ChannelMessage) -> None:
        if self._buffer is not None:
            self._buffer.append(message)
            return
        self._fold(message)

    def _fold(self, message: ChannelMessage) -> None:
        self.received.append(message)
        try:
            if message.name == EVENT_INPUT:
                self.decoder.apply(message)
            elif message.name is None or message.name == "ai-output":
                if self._view.from_agent(message):
                    self.decoder.apply(message)
                    if message.name is not None:
                        run_id, answered = read_steer_ids(message)
                        if run_id and answered:
                            self._view.stamped(run_id, answered)
            else:
                self._view.apply(message)
        except Exception:  # hostile input must never break the subscription
            logger.debug("skipping message %r", message.serial, exc_info=True)
        for listener in tuple(self._listeners):
            try:
                listener(message)
            except Exception:
                logger.exception("client listener raised")
        if self._waiters:
            for predicate, future in tuple(self._waiters):
                if future.done():
                    continue
                try:
                    value = predicate(self)
                except Exception as exc:
                    future.set_exception(exc)
                    continue
                if value:
                    future.set_result(value)
