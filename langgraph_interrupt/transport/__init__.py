"""Transport: agent sessions and runs (with cancel routing), the Python client session, and
its barge-in helper."""

from ._authorise import CancelDecision, CancelRequest, OnCancel
from ._barge_in import BargeIn, BargeInCancel
from ._client import ClientSession, RunInfo, SendHandle
from ._multitask import MultitaskStrategy
from ._progress import Interruption, RunProgress
from ._run import OnCancelled, Run, RunState
from ._session import AgentSession
from ._source import PipeResult
from ._steer_handle import SteerHandle, SteerOutcome
from ._steerable import OnSteer
from ._steering import Steer
from ._workers import WorkerRegistry

__all__ = [
    "AgentSession",
    "BargeIn",
    "BargeInCancel",
    "CancelDecision",
    "CancelRequest",
    "ClientSession",
    "Interruption",
    "MultitaskStrategy",
    "OnCancel",
    "OnCancelled",
    "OnSteer",
    "PipeResult",
    "Run",
    "RunInfo",
    "RunProgress",
    "RunState",
    "SendHandle",
    "Steer",
    "SteerHandle",
    "SteerOutcome",
    "WorkerRegistry",
]
