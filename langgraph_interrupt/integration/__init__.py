"""LangGraph integration: stream a graph's output as run events, and cancel it properly.

The only layer that imports ``langchain_core`` and ``langgraph``.
"""

from ._handler import RunCallbackHandler as RunCallbackHandler
from ._signal import RunScope as RunScope
from ._signal import bind_abort_signal as bind_abort_signal
from ._signal import get_abort_signal as get_abort_signal
from ._translate import CANCELLED_MARK as CANCELLED_MARK
from ._translate import is_cancelled_tool_message as is_cancelled_tool_message

__all__ = [
    "CANCELLED_MARK",
    "RunCallbackHandler",
    "RunScope",
    "bind_abort_signal",
    "get_abort_signal",
    "is_cancelled_tool_message",
]
