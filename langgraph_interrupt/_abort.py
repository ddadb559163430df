"""Abort signals: one small cancellation primitive shared by every layer.

Owns: :class:`AbortController`, the read-only :class:`AbortSignal`, :class:`CancelReason`
and the :class:`RunCancelled` exception. Modelled on the DOM ``AbortController`` the JS SDK
uses, with trio's rules: aborting is idempotent and the first reason wins.

Thread safety: LangChain runs sync tools and sync callbacks on worker threads, so a signal
may be read and aborted from any thread. State changes take a lock; callbacks run on the
thread that aborts (keep them short, or hop to a loop with ``call_soon_threadsafe``);
``await signal.wait()`` wakes its own event loop thread-safely.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from ._wire import DEFAULT_REASONS, MAX_REASON_LENGTH, check_reason_name

__all__ = ["AbortController", "AbortSignal", "CancelReason", "CancelSource", "RunCancelled",
           "RunCancelledError"]

logger = logging.getLogger("langgraph_interrupt")

#: Where a cancellation came from. A closed vocabulary, so code can branch on it.
CancelSource = Literal["client", "input", "shutdown", "timeout", "error", "user"]

@dataclass(frozen=True, slots=True)
class CancelReason:
    """Why a run was cancelled: where it came from (a closed vocabulary), a short reason
    name (free text from a documented common set) and detail.

    Attributes:
        source: ``client`` (an ``ai-cancel`` from a participant), ``input`` (a new input
            interrupted the run: the session's multitask strategy), ``shutdown`` (the
            session or process is closing), ``timeout`` (the run's deadline passed),
            ``error`` (a failure elsewhere forced it), or ``user`` (your code).
        message: human-readable detail, optional.
        requester: the channel client id that asked for it, when known.
        name: the reason as the client gave it and as ``ai-run-end`` carries it (header
            ``x-cancel-reason``): ``user_speaking``, ``user_clicked_stop``,
            ``client_request``, ``timeout``, ``priority_message``, ``interrupted``,
            ``new_input``, ``shutdown``, ``error``, or your own (1 to 64 printable
            characters). Default by source: ``client`` → ``client_request``, ``user`` →
            ``interrupted``, ``input`` → ``new_input``, otherwise the source itself. It
            is what the requester said: never use it to authorise anything.
        drain: let the current step finish before stopping (an ``on_cancel`` hook
            answered ``"drain"``): ``run_graph`` stops at the next step boundary,
            ``pipe()`` lets its source finish, the callback handler stops at the next node.
    """

    source: CancelSource = "user"
    message: str | None = None
    requester: str | None = None
    name: str = ""
    drain: bool = False
    rollback: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", DEFAULT_REASONS.get(self.source, "interrupted"))
        elif check_reason_name(self.name) is None:
            raise ValueError(f"a cancel reason name is 1 to {MAX_REASON_LENGTH} printable "
                             f"characters, got {self.name!r:.80}")

    def __str__(self) -> str:
        text = f"cancelled by {self.source}"
        if self.requester:
            text += f" ({self.requester})"
        details = [part for part in (
            None if self.name == DEFAULT_REASONS.get(self.source) else self.name,
            self.message) if part]
        if details:
            text += ": " + ": ".join(details)
        return text


class RunCancelled(BaseException):
    """Raised by :meth:`AbortSignal.throw_if_aborted` inside code that chose to stop.

    A ``BaseException``, like ``asyncio.CancelledError``: a broad ``except Exception`` in a
    tool must not turn a cancellation into a result. The transport never raises it at you:
    at that layer cancellation is an outcome (a result with a reason).
    """

    def __init__(self, reason: CancelReason) -> None:
        super().__init__(str(reason))
        self.reason = reason


class RunCancelledError(Exception):
    """Raised out of a LangChain/LangGraph call that the run's abort signal stopped from a
    callback (the drop-in handler stops generation this way).

    An ``Exception``, unlike :class:`RunCancelled`, because LangChain propagates only
    exceptions from callbacks (``raise_error``), and its ``agenerate`` mistakes any other
    ``BaseException`` for a result. ``async with run`` treats it as the run ending
    ``cancelled``; catch it if you drive the graph outside that block.
    """

    def __init__(self, reason: CancelReason) -> None:
        super().__init__(str(reason))
        self.reason = reason


_Callback = Callable[[CancelReason], object]


class AbortSignal:
    """The read-only side of an :class:`AbortController`.

    Check :attr:`aborted` at safe points, call :meth:`throw_if_aborted`, ``await wait()``,
    or register a callback with :meth:`add_callback`. Combine several signals with
    :meth:`AbortSignal.any`.
    """

    __slots__ = ("__weakref__", "_callbacks", "_lock", "_reason", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: CancelReason | None = None
        self._callbacks: list[_Callback] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[CancelReason]]] = []

    @property
    def aborted(self) -> bool:
        """True once aborted; never goes back to False."""
        return self._reason is not None

    @property
    def reason(self) -> CancelReason | None:
        """The first reason given, or ``None`` while not aborted."""
        return self._reason

    def throw_if_aborted(self) -> None:
        """Raise :class:`RunCancelled` if aborted; a cheap checkpoint for loops and tools."""
        reason = self._reason
        if reason is not None:
            raise RunCancelled(reason)

    async def wait(self) -> CancelReason:
        """Wait until aborted and return the reason. Safe to cancel."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._reason is not None:
                return self._reason
            future: asyncio.Future[CancelReason] = loop.create_future()
            entry = (loop, future)
            self._waiters.append(entry)
        try:
            return await future
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    def add_callback(self, callback: _Callback) -> Callable[[], None]:
        """Call ``callback(reason)`` once when aborted (at once if already aborted).

        Returns a function that unregisters the callback. Exceptions from callbacks are
        logged, never raised into the code that aborted.
        """
        with self._lock:
            reason = self._reason
            if reason is None:
                self._callbacks.append(callback)

                def remove() -> None:
                    with self._lock:
                        if callback in self._callbacks:
                            self._callbacks.remove(callback)

                return remove
        _run_callback(callback, reason)
        return _noop

    def _abort(self, reason: CancelReason) -> bool:
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
            callbacks, self._callbacks = self._callbacks, []
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            _resolve(loop, future, reason)
        for callback in callbacks:
            _run_callback(callback, reason)
        return True

    @staticmethod
    def any(signals: Iterable[AbortSignal]) -> AbortSignal:
        """A signal that aborts when any of ``signals`` does, with that signal's reason.

        Already-aborted inputs abort the result at once (first in iteration order wins).
        """
        controller = AbortController()
        removers: list[Callable[[], None]] = []

        def forward(reason: CancelReason) -> None:
            if controller.abort(reason):
                for remove in removers:
                    remove()

        for signal in signals:
            removers.append(signal.add_callback(forward))
            if controller.signal.aborted:
                break
        return controller.signal

    def __repr__(self) -> str:
        return f"<AbortSignal aborted={self.aborted} reason={self._reason!r}>"


class AbortController:
    """Owns an :class:`AbortSignal` and is the only way to abort it.

    Example:
        >>> controller = AbortController()
        >>> controller.abort(CancelReason("client", "stop pressed"))
        True
        >>> controller.abort(CancelReason("timeout"))  # idempotent: first reason wins
        False
        >>> str(controller.signal.reason)
        'cancelled by client: stop pressed'
    """

    __slots__ = ("_signal",)

    def __init__(self) -> None:
        self._signal = AbortSignal()

    @property
    def signal(self) -> AbortSignal:
        return self._signal

    def abort(self, reason: CancelReason | str | None = None) -> bool:
        """Abort the signal. Returns True if this call aborted it, False if already aborted.

        A plain string becomes ``CancelReason("user", text)``. Safe from any thread.
        """
        if reason is None:
            reason = CancelReason()
        elif isinstance(reason, str):
            reason = CancelReason("user", reason)
        return self._signal._abort(reason)


def _noop() -> None:
    return None


def _run_callback(callback: _Callback, reason: CancelReason) -> None:
    try:
        callback(reason)
    except Exception:
        logger.exception("abort callback %r raised; ignored", callback)


def _resolve(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[CancelReason], reason: CancelReason
) -> None:
    def set_result() -> None:
        if not future.done():
            future.set_result(reason)

    try:
        if _on_loop_thread(loop):
            set_result()
        else:
            loop.call_soon_threadsafe(set_result)
    except RuntimeError:  # the waiter's loop is closed: nobody is left to wake
        pass


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
