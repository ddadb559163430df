"""The handle a client's send returns: the input, the run it triggers, and cancelling it.

Owns: :class:`SendHandle`, the invocation to hand to the agent, the run once the agent
started (or resumed) it for this input, waiting for that start and for its end, and
cancelling by input (§2.8 of the protocol notes): the agent honours such a cancel even when
it arrives before the run exists. What the client knows of runs is its session's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._cancel import build_cancel
from .._invocation import Invocation
from ._run_info import RunInfo

if TYPE_CHECKING:
    from ._client import ClientSession

__all__ = ["SendHandle"]


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
        return self._session._view.run_id_for(self.codec_message_id,
                                              self._continuation_run_id)

    @property
    def run(self) -> RunInfo | None:
        run_id = self.run_id
        return None if run_id is None else self._session.run(run_id)

    async def wait_started(self, timeout: float | None = None) -> RunInfo:
        """Wait until the agent starts (or resumes) the run for this input."""
        started: RunInfo = await self._session.wait_for(
            lambda s: s._view.started(self.codec_message_id), timeout=timeout)
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
