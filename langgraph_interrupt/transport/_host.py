"""What a run needs from the session hosting it.

Owns: :class:`RunHost`, the contract between a :class:`~._run.Run` and its session
(:class:`~._session.AgentSession` is one): the channel, finding and adopting the run's
trigger, deciding the cancels found for it, admitting it under the multitask strategy,
waiting for other workers' runs of the session, letting it go once it ended or suspended,
telling who published a serial, and reporting an error nobody awaits.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import AITransportError
from ..channels import Channel
from ._trigger import Trigger

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["RunHost"]


class RunHost(Protocol):
    """What a run needs from the session hosting it (:class:`AgentSession` is one)."""

    @property
    def channel(self) -> Channel: ...

    async def _locate(self, run: Run) -> Trigger: ...

    def _adopt(self, run: Run) -> None: ...

    async def _decided(self, run: Run) -> None: ...

    def _admit(self, run: Run) -> asyncio.Future[Any] | None: ...

    async def _others_gone(self, run: Run) -> bool: ...

    def _deregister(self, run: Run) -> None: ...

    def _sender_of(self, serial: str) -> tuple[bool, str | None]: ...

    def _report(self, error: AITransportError) -> None: ...
