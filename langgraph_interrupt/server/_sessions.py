"""The endpoint's agent sessions: one per session channel, opened lazily, closed when idle.

Owns: deciding whether a session name is served (the ``allow_session`` policy), creating
each :class:`AgentSession` once with the application's channel factory and connecting it
once, even when many requests for a new session arrive together; closing a session that has
had no run for ``idle_timeout`` seconds; and closing them all at shutdown (which ends their
open runs ``cancelled``, shielded and time-bounded).

Why long-lived sessions: a session that stays attached sees every input and cancel live, so
the trigger is usually indexed before the POST arrives and a cancel published while the run
starts is buffered and honoured (a freshly opened session finds earlier cancels in history).
Why close idle ones: each open session holds a channel attachment (Ably limits channels per
connection) and an index of recent inputs; a server sees many conversations.

Prewarming (``_prewarm``) opens a session before its first request (:meth:`SessionPool.warm`);
at ``max_warm`` open sessions it first closes the one idle the longest. A prewarmed session
then idles out like any other.

Requests hold a session while they use it (:meth:`SessionPool.acquire` /
:meth:`SessionPool.release`), from before the run is created until its agent returns, so a
session is never closed under a run. A session being closed is waited for before the same
name is opened again: handles on one Ably connection share the SDK's channel, and a late
detach would detach the new session too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeAlias

from .._eager import start_eagerly
from .._errors import AITransportError, ErrorCode
from ..channels import Channel
from ..transport import AgentSession, OnCancel
from ._request import RequestRejected

__all__ = ["ChannelFactory", "SessionPolicy", "SessionPool"]

logger = logging.getLogger("langgraph_interrupt.server")

#: ``(session_name) -> Channel`` (sync or async): the agent's handle on that channel.
ChannelFactory: TypeAlias = Callable[[str], "Channel | Awaitable[Channel]"]
#: Which session names are served: a predicate (sync or async) or a collection of names.
SessionPolicy: TypeAlias = Callable[[str], "bool | Awaitable[bool]"] | Collection[str]


#: Names waiting to be prewarmed at most; more are dropped (a flood of channels opening).
_MAX_TO_WARM = 1024


def _shutting_down() -> RequestRejected:
    return RequestRejected(503, "unable to start run; the agent is shutting down",
                           code=ErrorCode.SESSION_CLOSED)


class SessionPool:
    """Agent sessions by name; see the module notes.

    Args:
        channel_factory: makes the agent's channel for a session name.
        allow_session: the policy for names not yet open; ``None`` serves every name.
        on_cancel: the sessions' cancel authorisation hook.
        idle_timeout: seconds a session without runs stays open; ``None``: until shutdown.
        session_options: more keyword arguments for :class:`AgentSession`.
        max_warm: :meth:`warm` keeps at most this many sessions open (closing idle ones).
    """

    def __init__(self, channel_factory: ChannelFactory, *,
                 allow_session: SessionPolicy | None = None, on_cancel: OnCancel | None = None,
                 idle_timeout: float | None = 300.0,
                 session_options: dict[str, Any] | None = None, max_warm: int = 100) -> None:
        self._factory = channel_factory
        self._policy = allow_session
        self._on_cancel = on_cancel
        self._idle_timeout = idle_timeout
        self._options = dict(session_options or {})
        self._sessions: dict[str, AgentSession] = {}
        self._opening: dict[str, asyncio.Future[AgentSession]] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._users: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._to_warm: dict[str, None] = {}  # an ordered set
        self._warmer: asyncio.Future[None] | None = None
        self._max_warm = max_warm
        self._closed = False

    def configure(self, **options: Any) -> None:
        """More :class:`AgentSession` options, for the sessions opened from now on."""
        self._options.update(options)

    @property
    def sessions(self) -> dict[str, AgentSession]:
        """The open sessions by name (a copy)."""
        return dict(self._sessions)

    async def acquire(self, name: str) -> AgentSession:
        """The connected session for ``name`` (opened on first use), held until
        :meth:`release`: it is not closed for idleness meanwhile.

        Raises:
            RequestRejected: 404 when the policy does not serve ``name``; 503 when the
                endpoint is shutting down or the channel cannot be opened.
        """
        self._users[name] = self._users.get(name, 0) + 1
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        try:
            return await self._get(name)
        except BaseException:
            self.release(name)
            raise

    def release(self, name: str) -> None:
        """Stop holding ``name``; the last holder starts its idle timer."""
        users = self._users.get(name, 0) - 1
        if users > 0:
            self._users[name] = users
            return
        self._users.pop(name, None)
        if self._idle_timeout is not None and name in self._sessions and not self._closed:
            loop = asyncio.get_running_loop()
            self._timers[name] = loop.call_later(self._idle_timeout, self._close_idle, name)

    def warm(self, name: str) -> None:
        """Open the session ``name`` ahead of its first request, if the policy serves it
        and it is not open yet. At ``max_warm`` open sessions, the one idle the longest is
        closed to make room; when none is idle, ``name`` is not opened. Never raises: a
        refusal or a failure is logged. Names are taken one at a time, in order, so the
        limit holds however many arrive at once. The session then idles out as after a
        request."""
        if (self._closed or self._max_warm <= 0 or not isinstance(name, str) or not name
                or name in self._sessions or name in self._opening or name in self._to_warm):
            return
        if len(self._to_warm) >= _MAX_TO_WARM:  # a flood of channels opening
            logger.debug("not prewarming session %r: %d waiting", name, len(self._to_warm))
            return
        self._to_warm[name] = None
        if self._warmer is None or self._warmer.done():
            self._warmer = asyncio.ensure_future(self._warm_all())

    async def _warm_all(self) -> None:
        while self._to_warm and not self._closed:
            name = next(iter(self._to_warm))
            try:
                if name in self._sessions or name in self._opening:
                    continue
                if len(self._sessions) + len(self._opening) >= self._max_warm:
                    # Make room: the session idle the longest goes (a page opened now is
                    # likelier to send soon); one in use never does.
                    idle = self._longest_idle()
                    if idle is None:
                        logger.debug("not prewarming session %r: %d sessions open, none "
                                     "idle", name, len(self._sessions) + len(self._opening))
                        continue
                    timer = self._timers.get(idle)
                    if timer is not None:
                        timer.cancel()
                    self._close_idle(idle)
                try:
                    await self.acquire(name)
                except RequestRejected as exc:
                    logger.debug("not prewarming session %r: %s", name, exc.message)
                    continue
                except Exception:
                    logger.exception("prewarming session %r failed", name)
                    continue
                self.release(name)  # no request holds it: its idle timer starts
            finally:
                self._to_warm.pop(name, None)

    def _longest_idle(self) -> str | None:
        """The open session idle the longest (its idle timer the oldest), if any is idle."""
        # The timers are in the order the sessions became idle; without an idle timeout
        # there are none, and the first open session nobody holds goes.
        return next(iter(self._timers), None) or next(
            (name for name in self._sessions if not self._users.get(name)), None)

    async def _get(self, name: str) -> AgentSession:
        session = self._sessions.get(name)
        if session is not None:
            return session
        if self._closed:
            raise _shutting_down()
        if not await self._allowed(name):
            raise RequestRejected(404, f"unable to start run; unknown session {name!r}")
        opening = self._opening.get(name)
        if opening is None:
            opening = start_eagerly(self._open(name))  # often done at once: no task hop
            if not opening.done():  # shared with concurrent requests until it is
                self._opening[name] = opening
                opening.add_done_callback(lambda _: self._opening.pop(name, None))
        try:
            # Shielded: one request giving up must not abort an open other requests share.
            return await asyncio.shield(opening)
        except RequestRejected:
            raise
        except Exception as exc:
            code = exc.code if isinstance(exc, AITransportError) else ErrorCode.INTERNAL_ERROR
            logger.warning("opening session %r failed: %r", name, exc)
            raise RequestRejected(503, f"unable to open session {name!r}; {exc}",
                                  code=code) from exc

    async def _allowed(self, name: str) -> bool:
        policy = self._policy
        if policy is None:
            return True
        if callable(policy):
            verdict = policy(name)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            return bool(verdict)
        return name in policy

    async def _open(self, name: str) -> AgentSession:
        closing = self._closing.get(name)
        if closing is not None:  # the previous session on this channel must detach first
            await asyncio.gather(asyncio.shield(closing), return_exceptions=True)
        channel = self._factory(name)
        if inspect.isawaitable(channel):
            channel = await channel
        session = AgentSession(channel, on_cancel=self._on_cancel, **self._options)
        if self._closed:  # shutdown began while connecting: do not leak the session
            await session.close()
            raise _shutting_down()
        self._sessions[name] = session
        # The ATTACH leaves before the request creates its run: one loop turn for the SDK
        # to write it, then the run is made while it is on its way. The run's lookup joins
        # this attach (and needs no history read: the attach brings the newest inputs).
        session.connect_nowait()
        await asyncio.sleep(0)
        return session

    def _close_idle(self, name: str) -> None:
        self._timers.pop(name, None)
        if self._users.get(name) or self._closed:
            return
        session = self._sessions.pop(name, None)
        if session is None:
            return
        logger.debug("closing idle session %r", name)
        closing = asyncio.ensure_future(self._close_one(session))
        self._closing[name] = closing
        closing.add_done_callback(
            lambda task: self._closing.pop(name, None) if self._closing.get(name) is task
            else None)

    @staticmethod
    async def _close_one(session: AgentSession) -> None:
        try:
            await session.close()
        except Exception as exc:
            logger.error("closing session %r failed: %r", session.channel.name, exc)

    async def close(self, *, timeout: float | None = None) -> None:
        """Close every session (open runs end ``cancelled``); refuse new ones. Idempotent.

        ``timeout`` bounds the whole close: a channel that never finishes detaching (a
        hung connection) must not keep the process from exiting. What is still running
        then is cancelled; the runs' terminal publishes came before the detach.
        """
        self._closed = True
        if self._warmer is not None:  # an open it started closes its session itself
            self._warmer.cancel()
        self._to_warm.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # In-flight opens close their session themselves (see _open); idle closes finish.
        tasks: list[asyncio.Future[Any]] = [*self._opening.values(), *self._closing.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        sessions, self._sessions = list(self._sessions.values()), {}
        tasks += [asyncio.ensure_future(self._close_one(s)) for s in sessions]
        if not tasks:
            return
        remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
        _, pending = await asyncio.wait(tasks, timeout=remaining)
        if pending:
            logger.error("closing %d session(s) timed out; abandoning them", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=timeout)
