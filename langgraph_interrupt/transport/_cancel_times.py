"""When this client asked to cancel a run: the start of :attr:`RunInfo.cancel_latency`.

Owns: the rule for noting a request on a run the client knows (the first request is kept;
the time is taken just before the publish, so a run-end that beat the publish's answer
still counts; a suspended run is skipped, as agents ignore cancels for it, and so is one
whose end the client saw before it asked), and the requests for runs it has not seen
start, by run id or by input, kept until that run's start or resume takes the first of
them; bounded, as such a run may never start (the oldest go first). The end of the
latency, when the run-end was folded, is :mod:`._run_view`'s.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ._run_info import RunInfo

__all__ = ["PendingCancels", "requested"]

_ASKED_LIMIT = 1000  # pending cancel times kept per table (runs that never start)


def requested(run: RunInfo, asked: float) -> RunInfo:
    """``run`` with a cancel request made at ``asked`` noted, when it counts (see the
    module notes); else ``run`` itself."""
    if run.cancel_requested_at is None and (
            run.status == "active" or (run.ended_at or -math.inf) >= asked):
        return replace(run, cancel_requested_at=asked)
    return run


class PendingCancels:
    """Cancel requests for runs this client has not seen start (see the module notes)."""

    __slots__ = ("_inputs", "_runs")

    def __init__(self) -> None:
        self._runs: dict[str, float] = {}  # by run id
        self._inputs: dict[str, float] = {}  # by the input that will trigger the run

    def note_run(self, run_id: str, asked: float) -> None:
        _note(self._runs, run_id, asked)

    def note_input(self, input_id: str, asked: float) -> None:
        _note(self._inputs, input_id, asked)

    def take(self, run_id: str, input_id: str | None) -> float | None:
        """The request time a run starting (or resuming) as ``run_id`` for ``input_id``
        takes, if any: the first, when it was asked both ways; both are dropped."""
        by_run = self._runs.pop(run_id, None)
        by_input = self._inputs.pop(input_id, None) if input_id else None
        return min((t for t in (by_run, by_input) if t is not None), default=None)


def _note(table: dict[str, float], key: str, asked: float) -> None:
    """Keep the first request time for ``key`` (bounded: the oldest go first)."""
    if key not in table:
        table[key] = asked
        if len(table) > _ASKED_LIMIT:
            del table[next(iter(table))]
