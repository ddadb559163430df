"""The endpoint's agent sessions: one per session channel, opened lazily, closed at shutdown.

Owns: deciding whether a session name is served (the ``allow_session`` policy), creating
each :class:`AgentSession` once with the application's channel factory and connecting it
once, even when many requests for a new session arrive together, and closing them all
(which ends their open runs ``cancelled``, shielded and time-bounded) on shutdown.

A long-lived session per channel (rather than one per request, as the JS README does) sees
every input and cancel live: the trigger is usually already indexed when the POST arrives,
and a cancel published while the run is starting is buffered and honoured. A session
opened for the first time still finds earlier cancels in history.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeAlias

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


class SessionPool:
    """Agent sessions by name; see the module notes.

    Args:
        channel_factory: makes the agent's channel for a session name.
        allow_session: the policy for names not yet open; ``None`` serves every name.
        on_cancel: the sessions' cancel authorisation hook.
        session_options: more keyword arguments for :class:`AgentSession`.
    """

    def __init__(self, channel_factory: ChannelFactory, *,
                 allow_session: SessionPolicy | None = None, on_cancel: OnCancel | None = None,
                 session_options: dict[str, Any] | None = None) -> None:
        self._factory = channel_factory
        self._policy = allow_session
        self._on_cancel = on_cancel
        self._options = dict(session_options or {})
        self._sessions: dict[str, AgentSession] = {}
        self._opening: dict[str, asyncio.Task[AgentSession]] = {}
        self._closed = False

    @property
    def sessions(self) -> dict[str, AgentSession]:
        """The open sessions by name (a copy)."""
        return dict(self._sessions)

    async def get(self, name: str) -> AgentSession:
        """The connected session for ``name``, opening it on first use.

        Raises:
            RequestRejected: 404 when the policy does not serve ``name``; 503 when the
                endpoint is shutting down or the channel cannot be opened.
        """
        session = self._sessions.get(name)
        if session is not None:
            return session
        if self._closed:
            raise RequestRejected(503, "unable to start run; the agent is shutting down",
                                  code=ErrorCode.SESSION_CLOSED)
        if not await self._allowed(name):
            raise RequestRejected(404, f"unable to start run; unknown session {name!r}")
        opening = self._opening.get(name)
        if opening is None:
            opening = asyncio.ensure_future(self._open(name))
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
        channel = self._factory(name)
        if inspect.isawaitable(channel):
            channel = await channel
        session = AgentSession(channel, on_cancel=self._on_cancel, **self._options)
        try:
            await session.connect()
        except BaseException:
            await session.close()
            raise
        if self._closed:  # shutdown began while connecting: do not leak the session
            await session.close()
            raise RequestRejected(503, "unable to start run; the agent is shutting down",
                                  code=ErrorCode.SESSION_CLOSED)
        self._sessions[name] = session
        return session

    async def close(self) -> None:
        """Close every session (open runs end ``cancelled``); refuse new ones. Idempotent."""
        self._closed = True
        opening = list(self._opening.values())
        if opening:  # let in-flight opens finish (they close themselves, see _open)
            await asyncio.gather(*opening, return_exceptions=True)
        sessions, self._sessions = list(self._sessions.values()), {}
        results = await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        for session, result in zip(sessions, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("closing session %r failed: %r", session.channel.name, result)
