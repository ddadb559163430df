"""LangGraph integration: stream a graph's output as run events, and cancel it properly.

The only layer that imports ``langchain_core`` and ``langgraph``.
"""

from ._handler import RunCallbackHandler as RunCallbackHandler
from ._messages import load_conversation as load_conversation
from ._messages import to_langchain as to_langchain
from ._middleware import steering_middleware as steering_middleware
from ._nodes import cancellable as cancellable
from ._repair import RepairReport as RepairReport
from ._repair import repair_thread as repair_thread
from ._repair import unanswered_tool_calls as unanswered_tool_calls
from ._resume import RESUME_MARK as RESUME_MARK
from ._resume import interrupted_answer as interrupted_answer
from ._resume import resume_messages as resume_messages
from ._runner import CancelMode as CancelMode
from ._runner import GraphOutcome as GraphOutcome
from ._runner import run_graph as run_graph
from ._signal import RunScope as RunScope
from ._signal import bind_abort_signal as bind_abort_signal
from ._signal import get_abort_signal as get_abort_signal
from ._steer_input import steer_messages as steer_messages
from ._steer_input import take_steers as take_steers
from ._toolnode import CUT_SHORT_MARK as CUT_SHORT_MARK
from ._toolnode import CancellableToolNode as CancellableToolNode
from ._toolnode import CompletedCalls as CompletedCalls
from ._toolnode import UnfinishedCall as UnfinishedCall
from ._translate import CANCELLED_MARK as CANCELLED_MARK
from ._translate import is_cancelled_tool_message as is_cancelled_tool_message

__all__ = [
    "CANCELLED_MARK",
    "CUT_SHORT_MARK",
    "RESUME_MARK",
    "CancelMode",
    "CancellableToolNode",
    "CompletedCalls",
    "GraphOutcome",
    "RepairReport",
    "RunCallbackHandler",
    "RunScope",
    "UnfinishedCall",
    "bind_abort_signal",
    "cancellable",
    "get_abort_signal",
    "interrupted_answer",
    "is_cancelled_tool_message",
    "load_conversation",
    "repair_thread",
    "resume_messages",
    "run_graph",
    "steer_messages",
    "steering_middleware",
    "take_steers",
    "to_langchain",
    "unanswered_tool_calls",
]
