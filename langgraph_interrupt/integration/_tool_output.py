"""The value a tool returned, as it was before LangChain turned it into message text.

Owns: :func:`install_output_capture` (idempotent, done when the integration is imported) and
:func:`take_tool_output`.

Why this exists: ``BaseTool.run``/``arun`` pass a tool's return value through
``langchain_core.tools.base._format_output`` before anyone else sees it. Anything that is not
message content (a string or a list of content blocks) is JSON-encoded there into the
``ToolMessage``'s text: a dict becomes ``'{"city": "Paris"}'``, ``21`` becomes ``'21'``, a
pydantic model its ``str()``. ``on_tool_end`` callbacks, ``ToolNode`` and ``create_agent``
only ever get that ``ToolMessage`` (``artifact`` holds the raw value only for tools declared
``response_format="content_and_artifact"``, and then it is a separate value the model never
sees). The official JS agent puts the tool's object itself in ``tool-output-available``, so the
client shows an object; to do the same, the object has to be caught where it still exists.

So ``_format_output`` is wrapped: it still returns exactly what LangChain's returns, and when
it made a ``ToolMessage`` by encoding a non-content value inside a run (a :class:`RunScope` is
current: bound by :func:`run_graph`, or found through a :class:`RunCallbackHandler` in the
runnable config), it records the original value against that message object in
:attr:`RunScope.tool_outputs`. The translator takes it from there when the same message
reaches ``on_tool_end`` (or a node's output). Strings and content-block lists are never
recorded: they are the content itself, and go on the wire as they are. Outside a run nothing
is recorded. If a future LangChain drops ``_format_output``, nothing is wrapped and tool
results go out as the message content, as before.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from langchain_core.messages import ToolMessage

from ._signal import current_scope

__all__ = ["MISSING", "install_output_capture", "take_tool_output"]

logger = logging.getLogger("langgraph_interrupt.langgraph")

#: What :func:`take_tool_output` returns when nothing was recorded for a message.
MISSING: Any = object()

_MARK = "__langgraph_interrupt_capture__"


def install_output_capture() -> bool:
    """Wrap LangChain's tool-output formatting (once per process); whether it is wrapped."""
    try:
        from langchain_core.tools import base
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return False
    original = getattr(base, "_format_output", None)
    if not callable(original):
        logger.debug("langchain_core.tools.base._format_output not found: tool results go "
                     "out as their message text")
        return False
    if getattr(original, _MARK, False):
        return True
    base._format_output = _capturing(original)
    return True


def _capturing(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _format_output(*args: Any, **kwargs: Any) -> Any:
        output = original(*args, **kwargs)
        if isinstance(output, ToolMessage) and isinstance(output.content, str):
            content = args[0] if args else kwargs.get("content")
            if not isinstance(content, str):  # LangChain encoded it into the text
                _record(output, content)
        return output

    setattr(_format_output, _MARK, True)
    return _format_output


def _record(message: ToolMessage, value: Any) -> None:
    try:
        scope = current_scope()
    except Exception:  # never let bookkeeping break a tool call
        return
    if scope is not None:
        # Keyed by the message object (kept alive by the entry), so a model that reuses
        # tool call ids cannot get another call's value.
        scope.tool_outputs[id(message)] = (message, value)


def take_tool_output(outputs: dict[int, tuple[Any, Any]], message: Any) -> Any:
    """The value the tool returned for ``message`` (removed from ``outputs``), else
    :data:`MISSING`."""
    entry = outputs.get(id(message))
    if entry is None or entry[0] is not message:
        return MISSING
    outputs.pop(id(message), None)
    return entry[1]
