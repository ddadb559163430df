"""A run's steering surface: what the agent asks, and how a steer's arrival is told.

Owns: :class:`Steerable`, the part of :class:`~._run.Run` about steers
(:meth:`~Steerable.has_input`, :attr:`~Steerable.steers`, :meth:`~Steerable.watch_steers`,
and taking a steer the session routed to the run, with its hints). The steers themselves,
the wire and the bounds are :mod:`._steering`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._errors import AITransportError, ErrorCode, unable_to
from ._steering import Steer, SteerBox

if TYPE_CHECKING:
    from ._host import RunHost
    from ._run import Run

__all__ = ["OnSteer", "Steerable"]

logger = logging.getLogger("langgraph_interrupt.transport")

#: A hint that a steer arrived (once per steering message); :meth:`Run.has_input` drains.
OnSteer = Callable[["Run", Steer], None]


class Steerable:
    """Mixed into :class:`~._run.Run` (see the module notes)."""

    _steering: SteerBox
    _on_steer: OnSteer | None
    _session: RunHost
    run_id: str

    if TYPE_CHECKING:
        @property
        def cancelled(self) -> bool: ...

    def has_input(self) -> bool:
        """Whether the agent should (still) produce a response: ``while run.has_input():``.

        True before the run's first output (the initial response to its trigger), then
        whenever steers arrived since the last call. It DRAINS them: the next output
        message published answers them (its messages carry their ids in
        ``steer-codec-message-ids``, which is how a client's steer outcome becomes
        ``consumed``). Always False once the run is cancelled (nothing is drained).
        """
        if self.cancelled:
            return False
        box = self._steering
        had = box.drain()
        return had or not box.produced

    @property
    def steers(self) -> tuple[Steer, ...]:
        """The steers :meth:`has_input` drained that no output has answered yet: what
        the next model call should see (their content is on the channel, by id)."""
        return self._steering.drained

    def watch_steers(self, callback: Callable[[Steer], object]) -> Callable[[], None]:
        """Call ``callback(steer)`` as each steer arrives (a producer that must react at
        once: ``run_graph`` asks the graph to stop at its step boundary). Returns a function
        that stops watching."""
        watchers = self._steering.watchers
        watchers.append(callback)

        def stop() -> None:
            if callback in watchers:
                watchers.remove(callback)

        return stop

    def _steered(self, steer: Steer) -> None:
        """A steer for this run arrived (the session routes it): keep it, and hint."""
        if not self._steering.add(steer):
            return
        hooks = [*self._steering.watchers]
        if self._on_steer is not None:
            on_steer = self._on_steer
            hooks.append(lambda steer: on_steer(self, steer))  # type: ignore[arg-type]
        for hook in hooks:
            try:
                hook(steer)
            except Exception as exc:
                logger.exception("run %s: a steer hint raised", self.run_id)
                error = AITransportError(unable_to("notify steer", f"on_steer raised {exc!r}"),
                                         code=ErrorCode.CANCEL_LISTENER_ERROR)
                self._session._report(error)
