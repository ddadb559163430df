"""The client's view of runs: their lifecycle folded, and who may speak for a run.

Owns: folding ``ai-run-start``, ``-resume``, ``-suspend`` and ``-end`` into
:class:`~._run_info.RunInfo` (§3.2 of the protocol notes: a terminal status is never
resurrected; a suspend or run-end for an unknown run is ignored, and so is an older
invocation's suspend after a newer resume), the runs by the input that triggered them,
whose messages count for a run, and noting this client's cancel requests on the runs they
name (the timing rules are :mod:`._cancel_times`'s).

A run's lifecycle and outputs are taken only from its agent: a client id given as
``agents``, else the identity that published the run's ``ai-run-start``. Anyone else is
ignored, and logged once per run and sender (bounded: a flood must not grow the log).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace

from .._wire import (
    EVENT_RUN_END,
    EVENT_RUN_RESUME,
    EVENT_RUN_START,
    EVENT_RUN_SUSPEND,
    H_CANCEL_BY,
    H_CANCEL_REASON,
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_INPUT_CODEC_MESSAGE_ID,
    H_INVOCATION_ID,
    H_RUN_CLIENT_ID,
    H_RUN_ID,
    H_RUN_REASON,
    RUN_END_REASONS,
    ChannelMessage,
    check_reason_name,
    read_envelope,
)
from ._cancel_times import PendingCancels, requested
from ._run_info import RunInfo

__all__ = ["RunView"]

logger = logging.getLogger("langgraph_interrupt.client")

_FORGERS_LIMIT = 1000  # (run, sender) pairs logged as speaking out of turn


_MAX_ANSWERED = 1024  # steer ids remembered per run
#: Runs a client remembers; the oldest that ended are forgotten first.
MAX_RUNS = 2000


class RunView:
    """The runs a client has seen (see the module notes)."""

    __slots__ = ("_agents", "_answered", "_by_input", "_pending", "_resumed_by", "_runs",
                 "_started", "forgers")

    def __init__(self, agents: Collection[str] | None) -> None:
        self._agents = frozenset(agents) if agents is not None else None
        self._runs: dict[str, RunInfo] = {}
        self._by_input: dict[str, str] = {}
        self._started: dict[str, RunInfo] = {}
        self._resumed_by: dict[str, str] = {}
        self._pending = PendingCancels()
        self._answered: dict[str, set[str]] = {}  # run id -> steer ids its outputs stamped
        #: The (run, sender) pairs already logged as speaking for a run not theirs.
        self.forgers: set[tuple[str, str | None]] = set()

    # -- reading ---------------------------------------------------------------------------
    @property
    def runs(self) -> Iterable[RunInfo]:
        """Every run seen, in the order they first started."""
        return self._runs.values()

    def run(self, run_id: str) -> RunInfo | None:
        return self._runs.get(run_id)

    def run_id_for(self, input_id: str, default: str | None = None) -> str | None:
        """The run the input ``input_id`` started (or resumed), else ``default``."""
        return self._by_input.get(input_id, default)

    def started(self, input_id: str) -> RunInfo | None:
        """The run as it was when the input ``input_id`` started (or resumed) it."""
        return self._started.get(input_id)

    def answered_steers(self, run_id: str) -> frozenset[str]:
        """The steer ids the run's outputs carried (``steer-codec-message-ids``) so far."""
        return frozenset(self._answered.get(run_id, ()))

    def stamped(self, run_id: str, ids: Sequence[str]) -> None:
        """An output of ``run_id`` (from its agent) answered these steers."""
        known = self._answered.setdefault(run_id, set())
        for cmid in ids:
            if len(known) >= _MAX_ANSWERED:
                break
            known.add(cmid)

    # -- folding ---------------------------------------------------------------------------
    def apply(self, message: ChannelMessage) -> None:
        """Fold one lifecycle message; anything else, or from anyone else, is ignored."""
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
            asked = self._pending.take(run_id, input_id)
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
            if current is None and len(self._runs) > MAX_RUNS:
                self._forget_oldest()
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
                code = _error_code(h.get(H_ERROR_CODE, ""))
                message_text = h.get(H_ERROR_MESSAGE) or "agent reported an error"
            elif reason == "cancelled":
                cancel_reason = check_reason_name(h.get(H_CANCEL_REASON))
                cancelled_by = h.get(H_CANCEL_BY) if cancel_reason else None
            self._runs[run_id] = replace(current, status=reason,  # type: ignore[arg-type]
                                         error_code=code, error_message=message_text,
                                         cancel_reason=cancel_reason, cancelled_by=cancelled_by,
                                         ended_at=time.monotonic())

    def _forget_oldest(self) -> None:
        """Bound the tables (any participant can publish run starts): drop the oldest runs
        that ended, else the oldest of all, down to :data:`MAX_RUNS`."""
        excess = len(self._runs) - MAX_RUNS
        ended = [run_id for run_id, info in self._runs.items() if info.ended][:excess]
        victims = ended if len(ended) == excess else list(self._runs)[:excess]
        for run_id in victims:
            info = self._runs.pop(run_id)
            self._resumed_by.pop(run_id, None)
            self._answered.pop(run_id, None)
            if info.input_codec_message_id is not None:
                if self._by_input.get(info.input_codec_message_id) == run_id:
                    del self._by_input[info.input_codec_message_id]
                self._started.pop(info.input_codec_message_id, None)

    def cancel_asked(self, run_ids: Sequence[str], input_id: str | None,
                     asked: float) -> None:
        """Note that this client asked, at ``asked``, to cancel the runs ``run_ids`` and
        the run the input ``input_id`` triggers, the ones not seen yet as pending."""
        if input_id is not None:
            started = self._by_input.get(input_id)
            if started is None:
                self._pending.note_input(input_id, asked)
            else:
                run_ids = [*run_ids, started]
        for run_id in run_ids:
            run = self._runs.get(run_id)
            if run is None:
                self._pending.note_run(run_id, asked)
            else:
                self._runs[run_id] = requested(run, asked)

    # -- who may speak for a run -----------------------------------------------------------
    def from_agent(self, message: ChannelMessage) -> bool:
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
        if key not in self.forgers and len(self.forgers) < _FORGERS_LIMIT:
            self.forgers.add(key)
            logger.warning("ignoring %s for run %s from %r: the run's agent is %r",
                           message.name or "an append", run.run_id, sender,
                           run.agent_client_id)
        return False


def _error_code(raw: str) -> int:
    """The error code an agent's run-end gave; 104008 when none, or none readable: some
    digits ``str.isdigit`` accepts are not ``int``'s (``"²"``), nor are 4,300 of them."""
    try:
        return int(raw) if raw.isdigit() else 104008
    except ValueError:
        return 104008
