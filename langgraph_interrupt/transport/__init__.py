"""Transport: agent sessions and runs (with cancel routing) and the Python client session."""

from ._client import ClientSession, RunInfo, SendHandle
from ._run import OnCancelled, Run, RunState
from ._session import AgentSession, CancelRequest, OnCancel
from ._source import PipeResult

__all__ = [
    "AgentSession",
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
