"""Steering: follow-ups a participant sends into a run that is still answering.

Owns: :class:`Steer` (one steering input, as the agent reads it), :class:`SteerBox` (a
run's steers: pending, drained by :meth:`Run.has_input`, stamped on the output that
answers them), :class:`SteerIndex` (a session's steers for runs that are not open here:
suspended, or not yet located; and the ids the channel already shows answered), and
reading and writing the ``steer-codec-message-ids`` header.

The wire, as ``@ably/ai-transport`` 0.8 speaks it (``docs/internals/steering-wire.md``): a
steer is an ``ai-input`` user message that carries the ``run-id`` of an open run and is not
that run's trigger; nothing else marks it. The agent drains pending steers when it asks
:meth:`Run.has_input`, and stamps their ids (a JSON array string) on every message of the
next output message it publishes; a client resolves ``consumed: true`` when its steer's id
was stamped before the run ended. Unlike the JS agent: ids are taken by the first chunk
actually published (an empty or failed pipe loses none), only ``user-message`` inputs are
steers (a tool result for the run is not), a steer into a suspended run is kept for its
resume in any session, and everything is bounded.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .._wire import H_RUN_ID, H_STEER_IDS, ChannelMessage, read_envelope
from ._trigger import Trigger

__all__ = ["MAX_STEERS_PER_RUN", "MAX_STEER_ID_LENGTH", "Steer", "SteerBox", "SteerIndex",
           "encode_steer_ids", "read_steer_ids"]

logger = logging.getLogger("langgraph_interrupt.transport")

#: Steers one run holds unanswered; more are skipped (and logged once per run).
MAX_STEERS_PER_RUN = 64
#: A steer id longer than this is not a steer (official ids are 36-character UUIDs); with
#: 64 of them the header stays under 9 KB, far below Ably's 64 KiB message limit.
MAX_STEER_ID_LENGTH = 128
_MAX_RUNS_INDEXED = 256
_MAX_IDS_PER_HEADER = 256


@dataclass(frozen=True, slots=True)
class Steer:
    """One steering input: a user message sent into run ``run_id`` while it runs.

    ``codec_message_id`` names the message (its parts share it); ``client_id`` is who sent
    it (the channel's, not a header's).
    """

    run_id: str
    codec_message_id: str
    event_id: str
    client_id: str | None
    serial: str

    @classmethod
    def of(cls, trigger: Trigger) -> Steer | None:
        """The steer an input is, if it is one: a user message naming a run."""
        if not trigger.run_id or trigger.kind != "user-message" or trigger.role != "user":
            return None
        if len(trigger.codec_message_id) > MAX_STEER_ID_LENGTH:
            return None  # its id goes on every message of the answer: a long one is hostile
        return cls(trigger.run_id, trigger.codec_message_id, trigger.event_id,
                   trigger.client_id, trigger.serial)


def encode_steer_ids(ids: Iterable[str]) -> str:
    """The header value: a compact JSON array, as the JS agent writes it."""
    return json.dumps(list(ids), separators=(",", ":"))


def read_steer_ids(message: ChannelMessage) -> tuple[str | None, list[str]]:
    """``(run id, steer ids)`` stamped on an output; ``(None, [])`` when it has none.
    Tolerant: anything but a JSON array of strings counts as no ids."""
    extras = message.extras
    if not isinstance(extras, dict):
        return None, []
    ai = extras.get("ai")
    transport = ai.get("transport") if isinstance(ai, dict) else None
    if not isinstance(transport, dict) or H_STEER_IDS not in transport:
        return None, []  # the common case, read without validating the whole envelope
    envelope = read_envelope(extras)
    if envelope is None:
        return None, []
    raw = envelope.transport.get(H_STEER_IDS, "")
    try:
        value = json.loads(raw)
    except ValueError:
        return None, []
    if not isinstance(value, list):
        return None, []
    ids = [item for item in value[:_MAX_IDS_PER_HEADER] if isinstance(item, str) and item]
    return envelope.transport.get(H_RUN_ID) or None, ids


class SteerBox:
    """One run's steers (see the module notes). Not thread-safe: the run's loop only."""

    __slots__ = ("_drained", "_overflowed", "_pending", "_seen", "produced", "watchers")

    def __init__(self) -> None:
        self._pending: OrderedDict[str, Steer] = OrderedDict()
        self._drained: OrderedDict[str, Steer] = OrderedDict()
        self._seen: set[str] = set()  # every id ever added or known answered
        self._overflowed = False
        #: The run has produced output (a pipe or a write): ``has_input`` stops reporting
        #: the initial response.
        self.produced = False
        self.watchers: list[Callable[[Steer], object]] = []

    def add(self, steer: Steer) -> bool:
        """Take a steer; False if it is a copy (another part of one already taken, a
        redelivery, one already answered) or the box is full."""
        cmid = steer.codec_message_id
        if cmid in self._seen:
            return False
        if len(self._pending) + len(self._drained) >= MAX_STEERS_PER_RUN:
            if not self._overflowed:
                self._overflowed = True
                logger.warning("run %s: more than %d steers unanswered; skipping the rest",
                               steer.run_id, MAX_STEERS_PER_RUN)
            return False
        self._seen.add(cmid)
        self._pending[cmid] = steer
        return True

    def answered(self, ids: Iterable[str]) -> None:
        """These ids are stamped already (found on the channel): never take them again."""
        for cmid in ids:
            self._seen.add(cmid)
            self._pending.pop(cmid, None)
            self._drained.pop(cmid, None)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def drain(self) -> bool:
        """Move pending steers to drained; whether there were any."""
        return bool(self.drain_new())

    def drain_new(self) -> tuple[Steer, ...]:
        """Move pending steers to drained; the ones moved (oldest first)."""
        if not self._pending:
            return ()
        moved = tuple(self._pending.values())
        self._drained.update(self._pending)
        self._pending.clear()
        return moved

    @property
    def has_drained(self) -> bool:
        return bool(self._drained)

    @property
    def drained(self) -> tuple[Steer, ...]:
        """Drained and not yet stamped: what the next output answers."""
        return tuple(self._drained.values())

    def take(self) -> tuple[str, ...]:
        """The drained ids, for the output being published now (each stamped once)."""
        if not self._drained:
            return ()
        ids = tuple(self._drained)
        self._drained.clear()
        return ids

    def undrain(self, ids: Iterable[str]) -> None:
        """Give drained steers back (their content could not be read): pending again."""
        for cmid in ids:
            steer = self._drained.pop(cmid, None)
            if steer is not None:
                self._pending[cmid] = steer

    def unanswered(self) -> tuple[Steer, ...]:
        """Pending or drained, never stamped: the client will read ``consumed: false``."""
        return (*self._drained.values(), *self._pending.values())


class SteerIndex:
    """A session's steers for runs not open here, and the ids the channel shows answered.

    Bounded: the newest :data:`_MAX_RUNS_INDEXED` runs, :data:`MAX_STEERS_PER_RUN` steers
    and answered ids each.
    """

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, OrderedDict[str, Steer]] = OrderedDict()
        self._answered: OrderedDict[str, set[str]] = OrderedDict()

    def keep(self, steer: Steer) -> None:
        """A steer for a run that is not open here (suspended, or not located yet)."""
        steers = self._waiting.get(steer.run_id)
        if steers is None:
            logger.debug("steer %s for run %s, which is not open here: kept (bounded) in "
                         "case it resumes here", steer.codec_message_id, steer.run_id)
            steers = self._waiting[steer.run_id] = OrderedDict()
            while len(self._waiting) > _MAX_RUNS_INDEXED:
                self._waiting.popitem(last=False)
        if len(steers) < MAX_STEERS_PER_RUN:
            steers.setdefault(steer.codec_message_id, steer)

    def answered(self, run_id: str, ids: Iterable[str]) -> None:
        known = self._answered.get(run_id)
        if known is None:
            known = self._answered[run_id] = set()
            while len(self._answered) > _MAX_RUNS_INDEXED:
                self._answered.popitem(last=False)
        for cmid in ids:
            if len(known) < MAX_STEERS_PER_RUN * 4:
                known.add(cmid)

    def seed(self, run_id: str, box: SteerBox, trigger_cmid: str) -> list[Steer]:
        """The steers kept for ``run_id``, for a run that opens it (a resume): all but its
        own trigger; ``box`` learns which ids the channel shows answered already."""
        box.answered(self._answered.get(run_id, ()))
        kept = self._waiting.pop(run_id, None)
        if not kept:
            return []
        return [steer for cmid, steer in kept.items() if cmid != trigger_cmid]
