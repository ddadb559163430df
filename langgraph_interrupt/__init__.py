"""langgraph_interrupt: interruptible LangGraph agents over the Ably AI Transport protocol.

The public API is exactly what ``__all__`` lists; everything else is private. The LangGraph
integration is imported on first use (``langgraph_interrupt.run_graph``), so the transport
alone imports in milliseconds, without LangChain.
"""

from typing import TYPE_CHECKING, Any

from ._abort import AbortController as AbortController
from ._abort import AbortSignal as AbortSignal
from ._abort import CancelReason as CancelReason
from ._abort import CancelSource as CancelSource
from ._abort import RunCancelled as RunCancelled
from ._abort import RunCancelledError as RunCancelledError
from ._errors import AITransportError as AITransportError
from ._errors import ChannelContinuityLostError as ChannelContinuityLostError
from ._errors import ChannelError as ChannelError
from ._errors import EncoderRecoveryFailedError as EncoderRecoveryFailedError
from ._errors import ErrorCode as ErrorCode
from ._errors import HistoryFetchFailedError as HistoryFetchFailedError
from ._errors import InputEventNotFoundError as InputEventNotFoundError
from ._errors import InvalidArgumentError as InvalidArgumentError
from ._errors import InvalidInvocationError as InvalidInvocationError
from ._errors import MutableMessagesDisabledError as MutableMessagesDisabledError
from ._errors import OperationCancelledError as OperationCancelledError
from ._errors import RunLifecycleError as RunLifecycleError
from ._errors import RunRejectedError as RunRejectedError
from ._errors import SessionClosedError as SessionClosedError
from ._errors import StreamError as StreamError
from ._errors import UnsupportedChunkError as UnsupportedChunkError
from ._errors import WorkerLostError as WorkerLostError
from ._invocation import Invocation as Invocation
from ._version import __version__ as __version__
from ._wire import ChannelMessage as ChannelMessage
from ._wire import OutboundMessage as OutboundMessage
from .channels import Channel as Channel
from .channels import HistoryPage as HistoryPage
from .channels import InMemoryBroker as InMemoryBroker
from .channels import InMemoryChannel as InMemoryChannel
from .channels import WireRecord as WireRecord
from .codec import UIMessageDecoder as UIMessageDecoder
from .codec import UIMessageEncoder as UIMessageEncoder
from .transport import AgentSession as AgentSession
from .transport import BargeIn as BargeIn
from .transport import BargeInCancel as BargeInCancel
from .transport import CancelRequest as CancelRequest
from .transport import ClientSession as ClientSession
from .transport import Interruption as Interruption
from .transport import MultitaskStrategy as MultitaskStrategy
from .transport import PipeResult as PipeResult
from .transport import Run as Run
from .transport import RunInfo as RunInfo
from .transport import RunProgress as RunProgress
from .transport import SendHandle as SendHandle
from .transport import WorkerRegistry as WorkerRegistry

if TYPE_CHECKING:
    from .channels import AblyChannel as AblyChannel
    from .integration import CancellableToolNode as CancellableToolNode
    from .integration import CancelMode as CancelMode
    from .integration import GraphOutcome as GraphOutcome
    from .integration import RunCallbackHandler as RunCallbackHandler
    from .integration import cancellable as cancellable
    from .integration import get_abort_signal as get_abort_signal
    from .integration import run_graph as run_graph
    from .server import AgentRequest as AgentRequest
    from .server import create_agent_app as create_agent_app

_LAZY = {
    "AgentRequest": "server",  # the optional 'server' extra (starlette)
    "create_agent_app": "server",
    "AblyChannel": "channels",
    "CancellableToolNode": "integration",
    "cancellable": "integration",
    "CancelMode": "integration",
    "GraphOutcome": "integration",
    "RunCallbackHandler": "integration",
    "get_abort_signal": "integration",
    "run_graph": "integration",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'langgraph_interrupt' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AITransportError",
    "AblyChannel",
    "AbortController",
    "AbortSignal",
    "AgentRequest",
    "AgentSession",
    "BargeIn",
    "BargeInCancel",
    "CancelMode",
    "CancelReason",
    "CancelRequest",
    "CancelSource",
    "CancellableToolNode",
    "Channel",
    "ChannelContinuityLostError",
    "ChannelError",
    "ChannelMessage",
    "ClientSession",
    "EncoderRecoveryFailedError",
    "ErrorCode",
    "GraphOutcome",
    "HistoryFetchFailedError",
    "HistoryPage",
    "InMemoryBroker",
    "InMemoryChannel",
    "InputEventNotFoundError",
    "Interruption",
    "InvalidArgumentError",
    "InvalidInvocationError",
    "Invocation",
    "MultitaskStrategy",
    "MutableMessagesDisabledError",
    "OperationCancelledError",
    "OutboundMessage",
    "PipeResult",
    "Run",
    "RunCallbackHandler",
    "RunCancelled",
    "RunCancelledError",
    "RunInfo",
    "RunLifecycleError",
    "RunProgress",
    "RunRejectedError",
    "SendHandle",
    "SessionClosedError",
    "StreamError",
    "UIMessageDecoder",
    "UIMessageEncoder",
    "UnsupportedChunkError",
    "WireRecord",
    "WorkerLostError",
    "WorkerRegistry",
    "__version__",
    "cancellable",
    "create_agent_app",
    "get_abort_signal",
    "run_graph",
]
