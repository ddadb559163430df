"""Transport: agent sessions and runs (with cancel routing) and the Python client session."""

from ._client import ClientSession, RunInfo, SendHandle
from ._run import OnCancelled, PipeResult, Run, RunState
from ._session import AgentSession, CancelRequest, OnCancel

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
