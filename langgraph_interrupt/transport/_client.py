"""The client side of a session, in Python: send, cancel, and watch runs and messages.

Owns: publishing user input the way the JS ``ClientSession`` does (§1.1 of the protocol
notes: one ``ai-input`` per part in one atomic batch, a fresh ``event-id`` and
``codec-message-id``, auto-parent), cancels by run id, by send handle (§2.8) or by filter
(all, own, a client id: the earlier JS ``CancelFilter``, expanded here into one ``ai-cancel``
per run, as the 0.8 wire names runs only), the client's view of runs (§3.2) with the active
ones by client id (the earlier JS ``getActiveRunIds``), what the client measured of the
cancels it asked for, and folded messages. Used by tests, the demo and Python front ends;
waiting is event-driven (:meth:`ClientSession.wait_for`), never by sleeping.

A run's lifecycle and outputs are taken only from its agent (Ably verifies client ids):
the client ids given as ``agents``, else the identity that published the run's
``ai-run-start``. Another participant that publishes an ``ai-run-end`` or output for the run
changes nothing, and is logged once. Pass ``agents`` when you know them: a late joiner whose
history window does not reach a run's start cannot tell otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .._cancel import build_cancel
from .._errors import InvalidArgumentError, SessionClosedError, unable_to
from .._invocation import Invocation
from .._wire import (
    EVENT_INPUT,
    EVENT_RUN_END,
    EVENT_RUN_RESUME,
    EVENT_RUN_START,
    EVENT_RUN_SUSPEND,
    H_CANCEL_BY,
    H_CANCEL_REASON,
    H_CODEC_MESSAGE_ID,
    H_DISCRETE,
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_EVENT_ID,
    H_INPUT_CODEC_MESSAGE_ID,
    H_INVOCATION_ID,
    H_PARENT,
    H_ROLE,
    H_RUN_CLIENT_ID,
    H_RUN_ID,
    H_RUN_REASON,
    H_STREAM,
    MAX_REASON_LENGTH,
    RUN_END_REASONS,
    ChannelMessage,
    OutboundMessage,
    RunStatus,
    check_reason_name,
    make_extras,
    read_envelope,
)
from ..channels import Channel
from ..codec import UIMessageDecoder

__all__ = ["ClientSession", "RunInfo", "SendHandle"]

logger = logging.getLogger("langgraph_interrupt.client")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as the client sees it. ``status`` is terminal once ``complete``, ``cancelled``
    or ``error``; an ``error`` carries ``error_code`` (104008 when the agent gave none).

    ``client_id`` is who the run answers (the run-start's ``run-client-id``);
    ``agent_client_id`` who published the run-start. The two times are this client's
    monotonic clock (:func:`time.monotonic`), so only differences between them mean
    anything: see :attr:`cancel_latency`.
    """

    run_id: str
    status: RunStatus
    invocation_id: str | None = None
    input_codec_message_id: str | None = None
    client_id: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    agent_client_id: str | None = None  #: who published ``ai-run-start``: the only voice
    #: A ``cancelled`` run's reason name (``x-cancel-reason``) and requester, as the agent
    #: reported them (``None`` from an agent that does not say, such as the JS one).
    cancel_reason: str | None = None
    cancelled_by: str | None = None
    #: When this client first asked to cancel the run (just before publishing the
    #: ``ai-cancel``), ``None`` if it never did.
    cancel_requested_at: float | None = None
    #: When this client folded the run's ``ai-run-end`` (for a run read from history: when
    #: :meth:`ClientSession.connect` read it).
    ended_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.status in RUN_END_REASONS

    @property
    def cancel_latency(self) -> float | None:
        """Seconds from this client's cancel request to its sight of the run's
        ``ai-run-end{cancelled}``: what the person who pressed Stop (or spoke) waited.

        ``None`` unless this client asked and the run ended ``cancelled``. It includes the
        publish, the agent's reaction and the run-end's trip back, all on this client's
        clock: it needs no agreement between the client's and the agent's clocks.
        """
        if (self.status != "cancelled" or self.cancel_requested_at is None
                or self.ended_at is None):
            return None
        return self.ended_at - self.cancel_requested_at


class SendHandle:
    """What :meth:`ClientSession.send` returns: the invocation to hand to the agent, and
    the run once the agent starts it."""

    def __init__(self, session: ClientSession, event_id: str, codec_message_id: str,
                 run_id: str | None) -> None:
        self._session = session
        self.event_id = event_id
        self.codec_message_id = codec_message_id
        self._continuation_run_id = run_id

    @property
    def invocation(self) -> Invocation:
        """The body to POST to the agent: ``{"inputEventId", "sessionName"}``."""
        return Invocation(inputEventId=self.event_id, sessionName=self._session.channel.name)

    @property
    def run_id(self) -> str | None:
        """The run's id once the agent published its start (or resume), else ``None``."""
        return self._session._by_input.get(self.codec_message_id, self._continuation_run_id)

    @property
    def run(self) -> RunInfo | None:
        run_id = self.run_id
        return None if run_id is None else self._session.run(run_id)

    async def wait_started(self, timeout: float | None = None) -> RunInfo:
        """Wait until the agent starts (or resumes) the run for this input."""
        started: RunInfo = await self._session.wait_for(
            lambda s: s._started.get(self.codec_message_id), timeout=timeout)
        return started

    async def wait_ended(self, timeout: float | None = None) -> RunInfo:
        """Wait until the run for this input ends; returns its final :class:`RunInfo`."""
        def ended(s: ClientSession) -> RunInfo | None:
            run = self.run
            return run if run is not None and run.ended else None
        result: RunInfo = await self._session.wait_for(ended, timeout=timeout)
        return result

    async def cancel(self, *, reason: str | None = None) -> None:
        """Cancel the run this input triggers, even before the agent has started it.

        ``reason``: a reason name for the agent and every client (``user_speaking``,
        ``user_clicked_stop``, ...; 1 to 64 printable characters). Without one the agent
        records ``client_request``.
        """
        await self._session._publish_cancels([build_cancel(
            run_id=self._continuation_run_id, input_codec_message_id=self.codec_message_id,
            reason=reason)], run_ids=[self._continuation_run_id] if self._continuation_run_id
            else [], input_id=self.codec_message_id)


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
        self._agents = frozenset(agents) if agents is not None else None
        self.decoder = UIMessageDecoder()
        self._page_size = history_page_size
        self._max_pages = max_history_pages
        self._runs: dict[str, RunInfo] = {}
        self._by_input: dict[str, str] = {}
        self._started: dict[str, RunInfo] = {}
        self._resumed_by: dict[str, str] = {}
        self._forgers: set[tuple[str, str | None]] = set()  # (run, sender) logged once
        # When this client asked to cancel a run it has not seen start (by run id) or the
        # run an input will trigger (by input); taken at the start; bounded (may never start).
        self._asked_runs: dict[str, float] = {}
        self._asked_inputs: dict[str, float] = {}
        self._waiters: list[tuple[Callable[[ClientSession], Any], asyncio.Future[Any]]] = []
        self._buffer: list[ChannelMessage] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False
        #: The last ``keep_received`` messages received, in order (live and history), for
        #: inspection and demos. Bounded: a long session must not keep every token alive
        #: (the folded :attr:`messages` are what a UI needs).
        self.received: deque[ChannelMessage] = deque(maxlen=keep_received)
        self._listeners: list[Callable[[ChannelMessage], None]] = []

    # -- connection -------------------------------------------------------------------------
    async def connect(self) -> None:
        """Subscribe, attach, then fold history up to the attach point (idempotent)."""
        if self._closed:
            raise SessionClosedError(unable_to("connect", "the client session is closed"))
        if self._unsubscribe is not None:
            return
        self._buffer = []
        self._unsubscribe = self.channel.subscribe(self._on_message)
        await self.channel.attach(serial=False)  # history is bounded without it
        older: list[ChannelMessage] = []
        page = await self.channel.history(limit=self._page_size, until_attach=True)
        for _ in range(self._max_pages):
            older.extend(page.items)
            if not page.has_next():
                break
            page = await page.next()
        buffered, self._buffer = self._buffer, None
        for message in reversed(older):
            self._fold(message)
        for message in buffered:
            self._fold(message)

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
        if isinstance(content, str):
            parts: Sequence[Mapping[str, Any]] = [{"type": "text", "text": content}]
        elif isinstance(content, Mapping):
            parts = content.get("parts") or []
            message_id = message_id or content.get("id")
        else:
            parts = content
        event_id, cmid = str(uuid.uuid4()), str(uuid.uuid4())
        message_id = message_id or str(uuid.uuid4())
        transport = {H_ROLE: "user", H_CODEC_MESSAGE_ID: cmid}
        if run_id:
            transport[H_RUN_ID] = run_id
        client_id = self.channel.client_id
        if client_id and client_id != "*":
            transport[H_RUN_CLIENT_ID] = client_id
        if parent is None:
            entries = self.decoder.entries()
            parent = entries[-1].codec_message_id if entries else None
        if parent:
            transport[H_PARENT] = parent
        transport.update({H_EVENT_ID: event_id, H_STREAM: "false", H_DISCRETE: "true"})
        messages = [OutboundMessage(EVENT_INPUT, data, make_extras(transport, codec))
                    for data, codec in (self._encode_part(p, message_id) for p in parts)]
        if not messages:  # an empty message is sent as one empty text part (§1.1)
            data, codec = self._encode_part({"type": "text", "text": ""}, message_id)
            messages = [OutboundMessage(EVENT_INPUT, data, make_extras(transport, codec))]
        await self._publish(messages)
        return SendHandle(self, event_id, cmid, run_id)

    @staticmethod
    def _encode_part(part: Mapping[str, Any], message_id: str) -> tuple[Any, dict[str, str]]:
        kind = part.get("type")
        codec = {"kind": "user-message", "messageId": message_id}
        if kind == "text":
            codec["partType"] = "text"
            return str(part.get("text", "")), codec
        if kind == "file":
            codec.update(partType="file", mediaType=str(part.get("mediaType", "")))
            return str(part.get("url", "")), codec
        if isinstance(kind, str) and kind.startswith("data-"):
            codec["partType"] = kind
            if isinstance(part.get("id"), str):
                codec["id"] = part["id"]
            return part.get("data"), codec
        raise InvalidArgumentError(f"cannot send a part of type {kind!r}")

    async def send_tool_result(self, *, run_id: str, codec_message_id: str, tool_call_id: str,
                               output: Any = None, error: str | None = None) -> SendHandle:
        """Answer a suspended run's tool call (a continuation, §7a): the agent resumes the
        run under the same ``run_id``. ``codec_message_id`` is the assistant message that
        holds the tool call; pass ``error`` instead of ``output`` for a failed tool."""
        event_id = str(uuid.uuid4())
        transport = {H_ROLE: "user", H_CODEC_MESSAGE_ID: codec_message_id, H_RUN_ID: run_id}
        client_id = self.channel.client_id
        if client_id and client_id != "*":
            transport[H_RUN_CLIENT_ID] = client_id
        transport.update({H_PARENT: codec_message_id, H_EVENT_ID: event_id, H_STREAM: "false"})
        if error is None:
            codec, data = {"kind": "tool-result", "toolCallId": tool_call_id}, {"output": output}
        else:
            codec, data = ({"kind": "tool-result-error", "toolCallId": tool_call_id},
                           {"message": error})
        await self._publish([OutboundMessage(EVENT_INPUT, data, make_extras(transport, codec))])
        return SendHandle(self, event_id, codec_message_id, run_id)

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
        if sum((all, own, client_id is not None, where is not None)) != 1:
            raise InvalidArgumentError(unable_to(
                "cancel runs", "give exactly one of all, own, client_id and where"))
        if reason is not None and check_reason_name(reason) is None:
            raise InvalidArgumentError(unable_to(
                "cancel runs", f"a cancel reason is 1 to {MAX_REASON_LENGTH} printable "
                f"characters, got {reason!r:.80}"))
        if own:
            client_id = self.channel.client_id
            if not client_id or client_id == "*":
                raise InvalidArgumentError(unable_to(
                    "cancel own runs", "this channel has no client id to own runs by"))
        select = where if where is not None else (
            (lambda run: True) if all else (lambda run: run.client_id == client_id))
        run_ids = [run.run_id for run in self._runs.values()
                   if run.status == "active" and select(run)]
        await self._cancel_many(run_ids, reason=reason)
        return run_ids

    async def _cancel_many(self, run_ids: Sequence[str], *, reason: str | None) -> None:
        """Cancel the runs ``run_ids`` in one atomic publish (nothing when empty)."""
        if not run_ids:
            return
        stamp = time.time() * 1000  # one send time for the batch
        await self._publish_cancels(
            [build_cancel(run_id=run_id, reason=reason, sent_at=stamp) for run_id in run_ids],
            run_ids=run_ids)

    def active_runs(self, *, include_suspended: bool = False) -> dict[str | None, set[str]]:
        """The active runs by the client id they answer: ``{client_id: {run_id, ...}}``.

        The earlier JS ``useActiveRuns`` hook and ``getActiveRunIds``, as a snapshot (watch
        for changes with :meth:`on_message` or :meth:`wait_for`). Active: started or
        resumed, and neither ended nor suspended. The JS map also counted suspended runs
        (a run waiting for the user's tool result is live); ``include_suspended=True``
        gives that map. Runs whose start named no client id are under ``None``.
        """
        active: dict[str | None, set[str]] = {}
        for run in self._runs.values():
            if run.status == "active" or (include_suspended and run.status == "suspended"):
                active.setdefault(run.client_id, set()).add(run.run_id)
        return active

    async def _publish_cancels(self, messages: list[OutboundMessage], *,
                               run_ids: Sequence[str], input_id: str | None = None) -> None:
        """Publish cancels and note, once published, when this client asked (for
        :attr:`RunInfo.cancel_latency`). The time is taken before the publish, so a run-end
        that beat the publish's answer still counts; the first request for a run is kept.
        A suspended run is not noted: agents ignore cancels for it."""
        asked = time.monotonic()
        await self._publish(messages)
        if input_id is not None:
            started = self._by_input.get(input_id)
            if started is None:
                _note(self._asked_inputs, input_id, asked)
            else:
                run_ids = [*run_ids, started]
        for run_id in run_ids:
            run = self._runs.get(run_id)
            if run is None:
                _note(self._asked_runs, run_id, asked)
            elif run.cancel_requested_at is None and (
                    run.status == "active" or (run.ended_at or -math.inf) >= asked):
                self._runs[run_id] = replace(run, cancel_requested_at=asked)

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
        return list(self._runs.values())

    def run(self, run_id: str) -> RunInfo | None:
        return self._runs.get(run_id)

    async def wait_for(self, predicate: Callable[[ClientSession], Any], *,
                       timeout: float | None = None) -> Any:
        """Wait until ``predicate(self)`` returns something truthy (checked after every
        received message) and return it."""
        value = predicate(self)
        if value:
            return value
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
                if self._from_agent(message):
                    self.decoder.apply(message)
            else:
                self._lifecycle(message)
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

    def _lifecycle(self, message: ChannelMessage) -> None:
        name = message.name
        if name not in (EVENT_RUN_START, EVENT_RUN_RESUME, EVENT_RUN_SUSPEND, EVENT_RUN_END):
            return
        envelope = read_envelope(message.extras)
        if envelope is None:
            return
        h = envelope.transport
        run_id = h.get(H_RUN_ID)
        if not run_id:
            return
        current = self._runs.get(run_id)
        if current is not None and current.ended:
            return  # terminal statuses are never resurrected
        if current is not None and not self._is_agent(current, message):
            return
        if current is None and self._agents is not None and not self._is_agent(
                RunInfo(run_id, "active"), message):
            return  # a run-start (or any lifecycle) from someone who is not an agent
        invocation = h.get(H_INVOCATION_ID)
        input_id = h.get(H_INPUT_CODEC_MESSAGE_ID)
        if name in (EVENT_RUN_START, EVENT_RUN_RESUME):
            sender = message.client_id if isinstance(message.client_id, str) else None
            asked = self._asked_runs.pop(run_id, None)
            if input_id:
                asked = self._asked_inputs.pop(input_id, asked)
            if current is not None and current.status == "active":
                asked = current.cancel_requested_at  # a repeated start changes nothing
            info = RunInfo(run_id, "active", invocation, input_id, h.get(H_RUN_CLIENT_ID) or None,
                           agent_client_id=current.agent_client_id if current else sender,
                           cancel_requested_at=asked)
            self._runs[run_id] = info
            if invocation:
                self._resumed_by[run_id] = invocation
            if input_id:
                self._by_input[input_id] = run_id
                self._started[input_id] = info
        elif name == EVENT_RUN_SUSPEND:
            if current is None:
                return
            latest = self._resumed_by.get(run_id)
            if latest is not None and invocation is not None and invocation != latest:
                return  # an older invocation's suspend after a newer resume (§3.2)
            self._runs[run_id] = replace(current, status="suspended")
        else:
            reason = h.get(H_RUN_REASON)
            if current is None or reason not in RUN_END_REASONS:
                return  # a run-end for an unknown run is ignored (§3.2)
            code = message_text = cancel_reason = cancelled_by = None
            if reason == "error":
                raw = h.get(H_ERROR_CODE, "")
                code = int(raw) if raw.isdigit() else 104008
                message_text = h.get(H_ERROR_MESSAGE) or "agent reported an error"
            elif reason == "cancelled":
                cancel_reason = check_reason_name(h.get(H_CANCEL_REASON))
                cancelled_by = h.get(H_CANCEL_BY) if cancel_reason else None
            self._runs[run_id] = replace(current, status=reason,  # type: ignore[arg-type]
                                         error_code=code, error_message=message_text,
                                         cancel_reason=cancel_reason, cancelled_by=cancelled_by,
                                         ended_at=time.monotonic())

    # -- who may speak for a run ------------------------------------------------------------------
    def _from_agent(self, message: ChannelMessage) -> bool:
        """Whether an output (or an append, by its stream) may be folded: not when it names
        a known run that another identity started."""
        if message.name is None:  # an append: not checked, as Ably may give it the client id
            return True  # of the message it extends (capabilities guard it: docs/ably.md)
        envelope = read_envelope(message.extras)
        run_id = envelope.transport.get(H_RUN_ID) if envelope is not None else None
        run = self._runs.get(run_id) if run_id else None
        return run is None or self._is_agent(run, message)

    def _is_agent(self, run: RunInfo, message: ChannelMessage) -> bool:
        sender = message.client_id if isinstance(message.client_id, str) else None
        trusted = (sender in self._agents) if self._agents is not None else (
            sender == run.agent_client_id)
        if trusted:
            return True
        key = (run.run_id, sender)
        if key not in self._forgers and len(self._forgers) < 1000:
            self._forgers.add(key)
            logger.warning("ignoring %s for run %s from %r: the run's agent is %r",
                           message.name or "an append", run.run_id, sender,
                           run.agent_client_id)
        return False


_ASKED_LIMIT = 1000  # pending cancel times kept per table (runs that never start)


def _note(table: dict[str, float], key: str, asked: float) -> None:
    """Keep the first request time for ``key`` (bounded: the oldest go first)."""
    if key not in table:
        table[key] = asked
        if len(table) > _ASKED_LIMIT:
            del table[next(iter(table))]
