"""Agent workers that watch each other, so a run whose worker died does not stay active.

Owns: :class:`WorkerRegistry`, one per worker process, on a control channel that every
worker of a deployment shares. A worker enters that channel's presence (data
``{"worker": id}``) and tells the others which runs it serves (``x-worker-runs`` messages:
runs started and ended, each a session channel and a run id, batched while one is in
flight); each worker keeps what the others serve. When a worker's last presence member
leaves (on Ably: at once on a clean close, 15 s after its connection was lost), the others
end its runs on their session channels (:func:`~._orphans.end_orphaned_run`, error
:class:`~langgraph_interrupt.WorkerLostError`): the surviving worker with the smallest id at
once, the others after ``backup_delay`` if it has not (a second end is a no-op).

Trust: only presence members and messages whose client id is an agent's count (the control
channel's own client id, plus ``agent_client_ids``); the service stamps client ids, so a user
can neither fake a worker's departure nor claim a run. A worker whose connection comes back
after the others ended its runs keeps publishing into runs its clients see ended; give a
worker's connection a lifetime shorter than Ably's presence timeout, or let it exit.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from .._errors import InvalidArgumentError, WorkerLostError
from .._wire import ChannelMessage, OutboundMessage, PresenceEvent
from ..channels import Channel, PresenceChannel
from ._orphans import end_orphaned_run

__all__ = ["WorkerRegistry"]

logger = logging.getLogger("langgraph_interrupt.transport")

#: The control channel's message naming runs started and ended by a worker.
EVENT_WORKER_RUNS = "x-worker-runs"
_MAX_ID = 128
_MAX_NAME = 512
_MAX_ENTRIES = 1000
_ENDING_AT_ONCE = 16  # a dead worker's runs ended concurrently (history read + publishes)

ChannelFor = Callable[[str], "Channel | Awaitable[Channel]"]


class WorkerRegistry:
    """This worker's place among the deployment's workers (see the module notes).

    Args:
        control: this worker's handle on the control channel (every worker the same name,
            for example ``"ai-workers"``); it must support presence (Ably, the in-memory
            broker).
        channel_for: ``(session_name) -> Channel`` (sync or async), a handle for ending a
            dead worker's run on its session channel; the endpoint's ``channel_factory``.
        worker_id: this worker's id (default: random per registry, that is per process).
        agent_client_ids: client ids of other agent roles, besides ``control.client_id``.
        backup_delay: seconds a worker that is not first in line waits before ending a dead
            worker's runs itself.
        max_runs: runs remembered across all workers; the oldest are forgotten first.
        history_pages: control channel history read at start, 100 messages a page, to learn
            what the workers already running serve.
    """

    def __init__(self, control: Channel, channel_for: ChannelFor, *,
                 worker_id: str | None = None, agent_client_ids: Collection[str] = (),
                 backup_delay: float = 5.0, max_runs: int = 100_000,
                 history_pages: int = 10) -> None:
        if not isinstance(control, PresenceChannel):
            raise InvalidArgumentError("the workers' control channel must support presence")
        if not control.client_id:
            raise InvalidArgumentError("the workers' control channel needs a client id")
        if backup_delay < 0 or max_runs < 1 or history_pages < 0:
            raise InvalidArgumentError("backup_delay, max_runs and history_pages must be "
                                       "non-negative (max_runs positive)")
        self.control = control
        self.worker_id = worker_id or uuid.uuid4().hex
        if not 0 < len(self.worker_id) <= _MAX_ID:
            raise InvalidArgumentError(f"worker_id must be 1 to {_MAX_ID} characters")
        self._channel_for = channel_for
        self._agents = frozenset({control.client_id, *agent_client_ids})
        self._backup_delay = backup_delay
        self._max_runs = max_runs
        self._history_pages = history_pages
        # run id -> (worker, session channel); one table for every worker, oldest first
        # run id -> (worker, session channel, serial of the run's input: "" if not known)
        self._runs: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        self._by_session: dict[str, set[str]] = {}  # session -> its run ids, every worker
        self._present: dict[str, set[str | None]] = {}  # worker -> its connections
        self._started: list[list[str]] = []  # [session, run id, input serial]
        self._ended: list[list[str]] = []
        self._sending: asyncio.Future[Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._started_up = False
        self._closed = False
        self.orphans_ended = 0  # runs this worker ended for dead workers (metrics, tests)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Attach, enter presence, learn the runs and workers there, and end the runs of
        workers no longer present. Idempotent."""
        if self._started_up:
            return
        self._started_up = True
        control = self.control
        assert isinstance(control, PresenceChannel)
        self._unsubscribe = [control.subscribe(self._on_message),
                             control.subscribe_presence(self._on_presence)]
        await control.attach(serial=False)
        await control.enter_presence({"worker": self.worker_id})
        await self._learn_history()
        for member in await control.presence_members():
            self._on_presence(member)
        for worker in {entry[0] for entry in self._runs.values()} - set(self._present):
            self._lost(worker)

    async def close(self) -> None:
        """Send what is pending, leave presence and detach. Idempotent. Call it after this
        worker's sessions closed (their runs ended), so the others see nothing to end."""
        if self._closed:
            return
        self._closed = True
        while self._sending is not None and not self._sending.done():
            await asyncio.wait({self._sending})
        for task in list(self._tasks):
            task.cancel()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        control = self.control
        assert isinstance(control, PresenceChannel)
        try:
            await control.leave_presence()
            await control.detach()
        except Exception:  # best effort: the others see the leave when the connection ends
            logger.debug("leaving the workers' channel failed", exc_info=True)

    async def __aenter__(self) -> WorkerRegistry:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- this worker's runs -------------------------------------------------------------------
    def run_started(self, session: str, run_id: str, input_serial: str = "") -> None:
        """Tell the others this worker serves ``run_id`` on channel ``session``, the run of
        the input published at ``input_serial`` (which orders runs across workers)."""
        self._remember(run_id, self.worker_id, session, input_serial)
        self._started.append([session, run_id, input_serial])
        self._send_soon()

    def run_ended(self, session: str, run_id: str) -> None:
        """Tell the others the run ended or suspended (nothing to end if this worker dies)."""
        if self._forget(run_id) is not None:
            self._ended.append([session, run_id])
            self._send_soon()

    def _send_soon(self) -> None:
        if not self._closed and (self._sending is None or self._sending.done()):
            self._sending = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        """Publish what is queued, one message at a time: while one is in flight the next
        batch grows, so a burst of runs costs few messages."""
        while self._started or self._ended:
            started, ended = self._started[:_MAX_ENTRIES], self._ended[:_MAX_ENTRIES]
            del self._started[:len(started)], self._ended[:len(ended)]
            data = {"worker": self.worker_id, "started": started, "ended": ended}
            try:
                await self.control.publish([OutboundMessage(EVENT_WORKER_RUNS, data)])
            except Exception as exc:
                logger.error("telling the other workers about %d run(s) failed: %r",
                             len(started) + len(ended), exc)

    def runs_of(self, session: str, *, before: str | None = None) -> list[str]:
        """The run ids other workers serve on channel ``session``, as they told this one;
        with ``before``, only the runs of inputs published before that serial (or whose
        input serial is not known: they started before this worker heard of them)."""
        own = self.worker_id
        runs = self._runs
        return [run_id for run_id in self._by_session.get(session, ())
                if runs[run_id][0] != own and (before is None or not runs[run_id][2]
                                                or runs[run_id][2] < before)]

    # -- the others ---------------------------------------------------------------------------
    def _remember(self, run_id: str, worker: str, session: str, serial: str) -> None:
        runs = self._runs
        previous = runs.get(run_id)
        if previous is not None and previous[1] != session:
            self._forget(run_id)
        runs[run_id] = (worker, session, serial)
        runs.move_to_end(run_id)
        self._by_session.setdefault(session, set()).add(run_id)
        while len(runs) > self._max_runs:
            self._forget(next(iter(runs)))

    def _forget(self, run_id: str) -> tuple[str, str, str] | None:
        entry = self._runs.pop(run_id, None)
        if entry is not None:
            ids = self._by_session.get(entry[1])
            if ids is not None:
                ids.discard(run_id)
                if not ids:
                    del self._by_session[entry[1]]
        return entry

    async def _learn_history(self) -> None:
        pages: list[list[ChannelMessage]] = []
        if self._history_pages:
            page = await self.control.history(limit=100, until_attach=True)
            pages.append(list(page.items))
            while len(pages) < self._history_pages and page.has_next():
                page = await page.next()
                pages.append(list(page.items))
        for items in reversed(pages):  # oldest first
            for message in reversed(items):
                self._on_message(message)

    def _on_message(self, message: ChannelMessage) -> None:
        if message.name != EVENT_WORKER_RUNS or message.client_id not in self._agents:
            return
        try:
            data = message.data
            if isinstance(data, str):
                data = json.loads(data)
            worker = data["worker"]
            if not isinstance(worker, str) or not 0 < len(worker) <= _MAX_ID:
                raise ValueError("bad worker id")
            started = _entries(data.get("started", []))
            ended = _entries(data.get("ended", []))
        except Exception:
            logger.debug("skipping malformed %s message %s", EVENT_WORKER_RUNS, message.serial)
            return
        if worker == self.worker_id:
            return
        for session, run_id, serial in started:
            self._remember(run_id, worker, session, serial)
        for _, run_id, _ in ended:
            self._forget(run_id)

    def _on_presence(self, event: PresenceEvent) -> None:
        if event.client_id not in self._agents or not isinstance(event.data, dict):
            return
        worker = event.data.get("worker")
        if not isinstance(worker, str) or worker == self.worker_id:
            return
        connections = self._present.setdefault(worker, set())
        if event.action == "leave":
            connections.discard(event.connection_id)
            if not connections:
                del self._present[worker]
                self._lost(worker)
        else:
            connections.add(event.connection_id)

    def _lost(self, worker: str) -> None:
        if self._closed:
            return
        task = asyncio.ensure_future(self._end_runs_of(worker))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_runs_of(self, worker: str) -> None:
        first = min([self.worker_id, *self._present]) == self.worker_id
        if not first:
            await asyncio.sleep(self._backup_delay)
        if worker in self._present:
            return  # it came back (a new connection entered)
        orphans = [(run_id, session) for run_id, (owner, session, _) in self._runs.items()
                   if owner == worker]
        if not orphans:
            return
        error = WorkerLostError("the agent worker serving this run stopped")
        room = asyncio.Semaphore(_ENDING_AT_ONCE)  # a few round trips at a time, not 500

        async def end_one(run_id: str, session: str) -> None:
            async with room:
                try:
                    channel = self._channel_for(session)
                    if inspect.isawaitable(channel):
                        channel = await channel
                    assert isinstance(channel, Channel)
                    if await end_orphaned_run(channel, run_id, error, worker=worker,
                                              agent_client_ids=self._agents):
                        self.orphans_ended += 1
                except Exception as exc:
                    logger.error("ending run %s of lost worker %s on %s failed: %r", run_id,
                                 worker, session, exc)
                    return
            if self._runs.get(run_id, (None,))[0] == worker:
                self._forget(run_id)
                self._ended.append([session, run_id])
                self._send_soon()

        await asyncio.gather(*(end_one(run_id, session) for run_id, session in orphans))


def _entries(value: object) -> list[tuple[str, str, str]]:
    """``[session, run id]`` or ``[session, run id, input serial]`` entries, validated."""
    if not isinstance(value, list) or len(value) > _MAX_ENTRIES:
        raise ValueError("bad entries")
    entries = []
    for entry in value:
        if not (isinstance(entry, list) and len(entry) in (2, 3)
                and all(isinstance(x, str) and len(x) <= _MAX_NAME for x in entry)
                and entry[0] and entry[1]):
            raise ValueError("bad entry")
        entries.append((entry[0], entry[1], entry[2] if len(entry) == 3 else ""))
    return entries
