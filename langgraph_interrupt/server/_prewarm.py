"""Prewarming: open a session when a client opens its channel, before the first POST.

Owns: following Ably's ``[meta]channel.lifecycle`` metachannel and asking the session pool
to open the session of every channel announced ``channel.opened``.

Why: a POST for a session that is not open must attach to its channel before it can be
answered (the input, and whether it resumes a run, are on the channel), so the first turn
of every conversation pays one round trip to Ably before the run starts. A chat page opens
its channel when it loads, seconds before the user sends; an agent that attaches then has
the session open and the input indexed when the POST arrives, and answers it at once.

Costs, which is why it is off by default: every worker that prewarms attaches to every
channel a client opens (the ``allow_session`` policy filters names, ``max_warm_sessions``
bounds how many are open), receives its messages (Ably counts each delivery), and keeps it
for ``session_idle_timeout`` after the last run. The agent's token needs the ``subscribe``
capability on ``[meta]channel.lifecycle``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .._wire import EVENT_CHANNEL_OPENED, ChannelMessage, opened_channel
from ..channels import Channel

__all__ = ["SessionWarmer"]

logger = logging.getLogger("langgraph_interrupt.server")


class SessionWarmer:
    """Calls ``warm(name)`` for each channel the lifecycle channel announces opened.

    Args:
        lifecycle: a handle on ``[meta]channel.lifecycle``.
        warm: opens the session ``name`` if it may be opened; must not block or raise.
    """

    def __init__(self, lifecycle: Channel, warm: Callable[[str], None]) -> None:
        self._channel = lifecycle
        self._warm = warm
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> bool:
        """Follow the lifecycle channel; ``False`` (logged) when it cannot be attached.

        A failure does not stop the endpoint: requests are served as without prewarming.
        """
        if self._unsubscribe is not None:
            return True
        self._unsubscribe = self._channel.subscribe(self._on_message)
        try:
            await self._channel.attach(serial=False)
        except Exception as exc:  # a custom channel's own errors too: never fatal here
            self._unsubscribe()
            self._unsubscribe = None
            logger.error("prewarm is off: unable to attach %r (%s); the agent's token needs "
                         "the subscribe capability on it", self._channel.name, exc)
            return False
        return True

    def _on_message(self, message: ChannelMessage) -> None:
        name = opened_channel(message)
        if name is None:
            if message.name == EVENT_CHANNEL_OPENED:
                logger.warning("prewarm: skipped a channel.opened event without a channel "
                               "name: %r", message.data)
            return
        self._warm(name)

    async def close(self) -> None:
        """Stop following the lifecycle channel. Idempotent."""
        if self._unsubscribe is None:
            return
        self._unsubscribe()
        self._unsubscribe = None
        try:
            await self._channel.detach()
        except Exception as exc:
            logger.warning("prewarm: detaching %r failed: %s", self._channel.name, exc)
