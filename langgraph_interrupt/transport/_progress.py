"""What a run has done so far, and how long its interruption took.

Owns: :class:`RunProgress` (the facts an ``on_cancel`` hook decides with: elapsed time,
tokens streamed, the current node, whether the model is generating; kept up to date by the
run and by the LangGraph integration, cheaply, on the hot path) and :class:`Interruption`
(the timeline of one cancel: requested by the client → received → abort fired → model and
tools stopped → terminal sequence acknowledged), reported to logs, to an optional callback
and, when ``opentelemetry-api`` is installed, as events on the current span.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Interruption", "RunProgress", "now_ms", "report_interruption"]

logger = logging.getLogger("langgraph_interrupt.transport")


def now_ms() -> float:
    """Wall-clock Unix milliseconds (comparable with a client's ``x-cancel-sent-at``)."""
    return time.time() * 1000.0


@dataclass(slots=True)
class RunProgress:
    """Live facts about a run. Read them in ``on_cancel`` (``CancelRequest.progress``).

    Attributes:
        started_at: when ``ai-run-start`` went out (Unix ms), ``None`` before.
        tokens: text and reasoning deltas written so far.
        node: the LangGraph node running now (``run_graph`` and the callback handler set
            it), ``None`` outside a graph.
        step: the LangGraph step (superstep) number of that node.
        model_calls: model calls streaming right now (``generating`` is ``> 0``).
    """

    started_at: float | None = None
    tokens: int = 0
    node: str | None = None
    step: int | None = None
    model_calls: int = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (0 before)."""
        return 0.0 if self.started_at is None else (now_ms() - self.started_at) / 1000.0

    @property
    def generating(self) -> bool:
        """Whether a model is still generating (``False`` once it finished its answer)."""
        return self.model_calls > 0


@dataclass(frozen=True, slots=True)
class Interruption:
    """The timeline of one interruption, in Unix milliseconds (``None``: not reached, or
    not known). Durations are in milliseconds; ``requested_to_received`` compares the
    client's clock with ours, so it is only as good as their agreement.

    Attributes:
        reason: the reason name (``user_speaking``, ``new_input``, ...).
        requester: who asked (a client id), when known.
        requested_at: the client's clock when it asked (``x-cancel-sent-at``).
        received_at: when the agent read the ``ai-cancel`` (or the cancel was made here).
        aborted_at: when the run's abort signal fired.
        stopped_at: when the model and the tools had stopped.
        published_at: when the terminal sequence (``ai-run-end``) was acknowledged.
    """

    reason: str
    requester: str | None = None
    requested_at: float | None = None
    received_at: float | None = None
    aborted_at: float | None = None
    stopped_at: float | None = None
    published_at: float | None = None

    @staticmethod
    def _span(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round(end - start, 3)

    @property
    def requested_to_received(self) -> float | None:
        return self._span(self.requested_at, self.received_at)

    @property
    def received_to_aborted(self) -> float | None:
        return self._span(self.received_at, self.aborted_at)

    @property
    def aborted_to_stopped(self) -> float | None:
        return self._span(self.aborted_at, self.stopped_at)

    @property
    def stopped_to_published(self) -> float | None:
        return self._span(self.stopped_at, self.published_at)

    @property
    def total(self) -> float | None:
        """Received (or made) → terminal sequence acknowledged: what the agent controls."""
        return self._span(self.received_at, self.published_at)

    def with_marks(self, **marks: float | None) -> Interruption:
        """A copy with the given marks set (marks already set are kept: first wins)."""
        changes: dict[str, Any] = {key: value for key, value in marks.items()
                                   if value is not None and getattr(self, key) is None}
        return replace(self, **changes) if changes else self

    def as_dict(self) -> dict[str, Any]:
        """Every mark and duration, for structured logs and span events."""
        return {"reason": self.reason, "requester": self.requester,
                "requested_at": self.requested_at, "received_at": self.received_at,
                "aborted_at": self.aborted_at, "stopped_at": self.stopped_at,
                "published_at": self.published_at,
                "requested_to_received_ms": self.requested_to_received,
                "received_to_aborted_ms": self.received_to_aborted,
                "aborted_to_stopped_ms": self.aborted_to_stopped,
                "stopped_to_published_ms": self.stopped_to_published,
                "total_ms": self.total}


def report_interruption(run_id: str, interruption: Interruption) -> None:
    """Log it (``extra={"interruption": {...}}``) and add an OpenTelemetry span event if
    ``opentelemetry-api`` is installed and a span is recording."""
    details = interruption.as_dict()
    logger.info("run %s interrupted (%s): %s ms from the cancel to the run's end",
                run_id, interruption.reason, details["total_ms"],
                extra={"interruption": details, "run_id": run_id})
    try:
        trace = importlib.import_module("opentelemetry.trace")
    except ImportError:  # the optional extra is not installed
        return
    span = trace.get_current_span()
    if span.is_recording():
        attributes = {f"langgraph_interrupt.{key}": value for key, value in details.items()
                      if value is not None}
        attributes["langgraph_interrupt.run_id"] = run_id
        span.add_event("langgraph_interrupt.run_interrupted", attributes)
