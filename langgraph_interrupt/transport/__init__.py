"""Transport: agent sessions and runs (with cancel routing), the Python client session, and
its barge-in helper."""

from ._barge_in import BargeIn, BargeInCancel
from ._client import ClientSession, RunInfo, SendHandle
from ._run import OnCancelled, Run, RunState
from ._session import AgentSession, CancelRequest, OnCancel
from ._source import PipeResult

__all__ = [
    "AgentSession",
    "BargeIn",
    "BargeInCancel",
    "CancelRequest",
    "ClientSession",
    "OnCancel",
    "OnCancelled",
    "PipeResult",
    "Run",
    "RunInfo",
    "RunState",
    "SendHandle",
]
