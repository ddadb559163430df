"""Deciding client cancels: the ``on_cancel`` hook, asked once per cancel, in order.

Owns: :class:`CancelRequest` (what the hook sees: who asked, the target, the reason, and
the run's progress to decide with), the decisions (accept, reject, drain), and
:class:`CancelDesk`, which asks each run's hook (sync or async) one cancel at a time, so a
run aborts at most once and its hook is not asked again after it accepted; a hook that
raises or answers something else counts as a rejection and is reported.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from .._abort import CancelReason
from .._cancel import CancelTarget
from .._errors import AITransportError, ErrorCode, InvalidArgumentError, unable_to
from ._progress import RunProgress
from ._run import Run

__all__ = ["CancelDecision", "CancelDesk", "CancelRequest", "OnCancel"]

logger = logging.getLogger("langgraph_interrupt.transport")

_MAX_REFUSED_LOGGED = 20  # requesters per run whose refused cancels are logged


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """A cancel about to be applied, as the ``on_cancel`` hook sees it.

    Attributes:
        client_id: the requester's channel client id (``None`` if anonymous).
        run: the target run (``run.run_client_id`` is its owner).
        run_id / input_codec_message_id: what the cancel message named.
        reason: the reason name the requester gave (``client_request`` if none). What
            they said, not who they are: decide on ``client_id``, never on this.

    The run's live facts are here too, to decide with (conditional interruption):
    :attr:`elapsed`, :attr:`tokens`, :attr:`node`, :attr:`generating`.
    """

    client_id: str | None
    run: Run
    run_id: str | None
    input_codec_message_id: str | None
    event_id: str | None
    reason: str = "client_request"

    @property
    def progress(self) -> RunProgress:
        return self.run.progress

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self.run.progress.elapsed

    @property
    def tokens(self) -> int:
        """Text and reasoning deltas streamed so far."""
        return self.run.progress.tokens

    @property
    def node(self) -> str | None:
        """The LangGraph node running now (``None`` outside a graph)."""
        return self.run.progress.node

    @property
    def generating(self) -> bool:
        """Whether the model is still generating (``False``: it finished its answer, and
        tools or the end of the run are what remains)."""
        return self.run.progress.generating


#: ``True``/``"accept"``: cancel now; ``False``/``"reject"``: keep going; ``"drain"``:
#: finish the current step, then end ``cancelled``.
CancelDecision = bool | Literal["accept", "reject", "drain"]
OnCancel = Callable[[CancelRequest], CancelDecision | Awaitable[CancelDecision]]
_Verdict = Literal["accept", "reject", "drain"]


class CancelDesk:
    """Applies client cancels to runs through their hooks (one desk per session).

    ``workers`` is the session's set of background tasks (cancelled when it closes);
    ``on_error`` receives a hook's failure.
    """

    def __init__(self, workers: set[asyncio.Task[None]],
                 on_error: Callable[[AITransportError], None]) -> None:
        self._workers = workers
        self._on_error = on_error
        self._hooks: dict[Run, OnCancel | None] = {}
        self._pending: dict[Run, deque[CancelTarget]] = {}
        self._deciding: dict[Run, asyncio.Task[None]] = {}
        self._refused: dict[Run, set[str | None]] = {}  # requesters already logged, per run

    def register(self, run: Run, hook: OnCancel | None) -> None:
        self._hooks[run] = hook

    def forget(self, run: Run) -> None:
        self._refused.pop(run, None)
        self._hooks.pop(run, None)
        self._pending.pop(run, None)

    def consider(self, run: Run, target: CancelTarget) -> None:
        """Apply a cancel to a run through its hook; serialised per run, at most once."""
        if run.cancelled or run.state in ("ended", "suspended"):
            return  # cancels after the first accepted one are no-ops
        queue = self._pending.get(run)
        if queue is not None:  # a hook decision is in flight: decide in order after it
            queue.append(target)
            return
        verdict = self._ask(run, target)
        if isinstance(verdict, str):
            self._apply(run, target, verdict)
            return
        self._pending[run] = deque()
        task = asyncio.ensure_future(self._decide_async(run, target, verdict))
        self._workers.add(task)
        self._deciding[run] = task

        def done(task: asyncio.Task[None]) -> None:
            self._workers.discard(task)
            if self._deciding.get(run) is task:
                del self._deciding[run]

        task.add_done_callback(done)

    async def decided(self, run: Run) -> None:
        """Wait for the ``on_cancel`` decisions in flight for ``run`` (a cancel found when
        it started must be decided before it produces output)."""
        task = self._deciding.get(run)
        if task is not None:
            await asyncio.shield(task)

    def _ask(self, run: Run, target: CancelTarget) -> _Verdict | Awaitable[Any]:
        hook = self._hooks.get(run)
        if hook is None:
            return "accept"
        if target.client_id is not None and target.client_id == run.channel.client_id:
            # The agent's own identity: another worker applying its multitask strategy to
            # this session (``interrupt``). Clients cannot publish as the agent.
            return "accept"
        try:
            verdict = hook(CancelRequest(target.client_id, run, target.run_id,
                                         target.input_codec_message_id, target.event_id,
                                         target.reason or "client_request"))
        except Exception as exc:
            self._hook_failed(run, exc)
            return "reject"
        return verdict if inspect.isawaitable(verdict) else self._verdict(run, verdict)

    def _verdict(self, run: Run, value: object) -> _Verdict:
        if value == "accept" or value is True:
            return "accept"
        if value == "drain":
            return "drain"
        if isinstance(value, str) and value != "reject":
            self._hook_failed(run, InvalidArgumentError(
                f"on_cancel returned {value[:40]!r}; expected a bool, 'accept', 'reject' or "
                "'drain'"))
            return "reject"
        return "accept" if not isinstance(value, str) and bool(value) else "reject"

    async def _decide_async(self, run: Run, target: CancelTarget, verdict: Awaitable[Any]) -> None:
        pending: _Verdict | Awaitable[Any] = verdict
        try:
            while True:
                if isinstance(pending, str):
                    decided = pending
                else:
                    try:
                        decided = self._verdict(run, await pending)
                    except Exception as exc:
                        self._hook_failed(run, exc)
                        decided = "reject"
                self._apply(run, target, decided)
                if decided != "reject":
                    return
                queue = self._pending.get(run)
                if not queue or run.cancelled or run.state in ("ended", "suspended"):
                    return
                target = queue.popleft()
                pending = self._ask(run, target)
        finally:
            self._pending.pop(run, None)

    def _hook_failed(self, run: Run, exc: Exception) -> None:
        error = AITransportError(unable_to("authorise cancel", f"on_cancel raised {exc!r}"),
                                 code=ErrorCode.CANCEL_LISTENER_ERROR)
        error.__cause__ = exc
        logger.warning("run %s: on_cancel raised %r; the cancel is rejected", run.run_id, exc)
        self._on_error(error)

    def _apply(self, run: Run, target: CancelTarget, verdict: _Verdict) -> None:
        if verdict == "reject":
            # Logged once per requester and run: a client that keeps asking (or a hostile
            # one, with any reason it likes) cannot flood the logs.
            refused = self._refused.setdefault(run, set())
            if target.client_id not in refused and len(refused) < _MAX_REFUSED_LOGGED:
                refused.add(target.client_id)
                logger.info("run %s: on_cancel refused a cancel from %r (reason %r)",
                            run.run_id, target.client_id, target.reason or "client_request")
            return
        run._note_request(target.sent_at, target.received_at)
        run.cancel(CancelReason("client", requester=target.client_id,
                                name=target.reason or "", drain=verdict == "drain"))
