"""A run as a client sees it: the value :class:`~._client.ClientSession` reports.

Owns: :class:`RunInfo`, an immutable snapshot (the fold replaces it at every change, so a
caller's copy never moves under it), whether the run ended, and what the person who asked
to cancel it waited (:attr:`RunInfo.cancel_latency`), on the client's own clock. Who fills
it in is :mod:`._run_view`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._wire import RUN_END_REASONS, RunStatus

__all__ = ["RunInfo"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as the client sees it. ``status`` is terminal once ``complete``, ``cancelled``
    or ``error``; an ``error`` carries ``error_code`` (104008 when the agent gave none).

    ``client_id`` is who the run answers (the run-start's ``run-client-id``);
    ``agent_client_id`` who published the run-start. The two times are this client's
    monotonic clock (:func:`time.monotonic`), so only differences between them mean
    anything: see :attr:`cancel_latency`.
    """

    run_id: str
    status: RunStatus
    invocation_id: str | None = None
    input_codec_message_id: str | None = None
    client_id: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    agent_client_id: str | None = None  #: who published ``ai-run-start``: the only voice
    #: A ``cancelled`` run's reason name (``x-cancel-reason``) and requester, as the agent
    #: reported them (``None`` from an agent that does not say, such as the JS one).
    cancel_reason: str | None = None
    cancelled_by: str | None = None
    #: When this client first asked to cancel the run (just before publishing the
    #: ``ai-cancel``), ``None`` if it never did.
    cancel_requested_at: float | None = None
    #: When this client folded the run's ``ai-run-end`` (for a run read from history: when
    #: :meth:`ClientSession.connect` read it).
    ended_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.status in RUN_END_REASONS

    @property
    def cancel_latency(self) -> float | None:
        """Seconds from this client's cancel request to its sight of the run's
        ``ai-run-end{cancelled}``: what the person who pressed Stop (or spoke) waited.

        ``None`` unless this client asked and the run ended ``cancelled``. It includes the
        publish, the agent's reaction and the run-end's trip back, all on this client's
        clock: it needs no agreement between the client's and the agent's clocks.
        """
        if (self.status != "cancelled" or self.cancel_requested_at is None
                or self.ended_at is None):
            return None
        return self.ended_at - self.cancel_requested_at
