"""The agent HTTP endpoint (optional extra ``server``: Starlette and uvicorn).

``create_agent_app(agent, channel_factory=...)`` returns an ASGI app that serves the POST
the official JS client and its ``useChat`` adapter send to wake the agent
(``{"inputEventId", "sessionName", ...}``), runs the agent or LangGraph graph in the
background, and ends open runs ``cancelled`` on shutdown. See ``docs/frontend.md``.
"""

from ._app import (
    Agent,
    AgentEndpoint,
    CancelMode,
    GraphConfig,
    as_agent,
    create_agent_app,
    default_graph_config,
)
from ._request import AgentRequest, RequestRejected
from ._sessions import ChannelFactory, SessionPolicy, SessionPool

__all__ = [
    "Agent",
    "AgentEndpoint",
    "AgentRequest",
    "CancelMode",
    "ChannelFactory",
    "GraphConfig",
    "RequestRejected",
    "SessionPolicy",
    "SessionPool",
    "as_agent",
    "create_agent_app",
    "default_graph_config",
]
