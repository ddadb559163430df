"""Steering for ``create_agent`` driven by your own code (the drop-in handler).

Owns: :func:`steering_middleware`, a LangChain agent middleware whose ``before_model`` hook
adds the steers that arrived since the last model call to the agent's state, so the model
sees them and the thread keeps them, in order, after the previous call's tool results.
``langchain`` is optional: it is imported when the middleware is made. Under
``run_graph`` it is not needed (steers arrive by themselves) and adds nothing.
"""

from __future__ import annotations

from typing import Any

from ._steer_input import take_steers

__all__ = ["steering_middleware"]

_CLASS: Any = None


def steering_middleware() -> Any:
    """An ``AgentMiddleware`` for ``create_agent(..., middleware=[steering_middleware()])``.

    Raises:
        ImportError: ``langchain`` (which provides ``create_agent``) is not installed.
    """
    global _CLASS
    if _CLASS is None:
        from langchain.agents.middleware import AgentMiddleware

        class SteeringMiddleware(AgentMiddleware):
            """Adds the run's new steers to the state before each model call."""

            async def abefore_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
                steers = await take_steers()
                return {"messages": steers} if steers else None

        _CLASS = SteeringMiddleware
    return _CLASS()
