"""What :meth:`ClientSession.steer` returns: the steer, and whether an answer took it in.

Owns: :class:`SteerHandle` and :class:`SteerOutcome`, the Python side of the official
client's ``SteerResult``: the outcome is read off the channel, from the
``steer-codec-message-ids`` the agent stamps on the outputs that answer a steer. It is
decided when the run ends (``consumed`` or not, with the run's end reason) or, once
consumed, when it suspends; a steer the run never answered before it ended is
``consumed: false`` (for example because it was cancelled first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._client import ClientSession

__all__ = ["SteerHandle", "SteerOutcome"]


@dataclass(frozen=True, slots=True)
class SteerOutcome:
    """Whether an answer of the run took the steer in; ``run_end_reason`` when the run's
    end decided it (``complete``, ``cancelled``, ``error``), ``None`` at a suspend."""

    consumed: bool
    run_end_reason: str | None = None


class SteerHandle:
    """One steer a client sent (see the module notes)."""

    def __init__(self, session: ClientSession, run_id: str, codec_message_id: str,
                 event_id: str) -> None:
        self._session = session
        self.run_id = run_id
        self.codec_message_id = codec_message_id
        self.event_id = event_id

    @property
    def consumed(self) -> bool:
        """Whether an output of the run answered it so far."""
        return self.codec_message_id in self._session._view.answered_steers(self.run_id)

    async def outcome(self, timeout: float | None = None) -> SteerOutcome:
        """Wait until the outcome is decided: the run ended, or it suspended having answered
        the steer.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
            SessionClosedError: the session closed first.
        """
        def decided(session: ClientSession) -> SteerOutcome | None:
            run = session.run(self.run_id)
            if run is None:
                return None
            consumed = self.consumed
            if run.ended:
                return SteerOutcome(consumed, run.status)
            if run.status == "suspended" and consumed:
                return SteerOutcome(True)
            return None

        result: SteerOutcome = await self._session.wait_for(decided, timeout=timeout)
        return result
