"""An offline, loopback-only Ably-compatible broker for integration tests.

The real SDKs (ably-python 3.1.4, ably-js 2.28.0) connect to it unmodified: realtime websocket
(JSON and msgpack), publish with ACK/NACK and serials, message update/delete/append with the
service's delivery semantics, resume after a dropped connection, presence (enter/update/leave,
SYNC on attach, leave when a connection is gone), REST history with paging and ``from_serial``,
token requests. Faults can be injected per channel or globally.

Use it in-process from asyncio tests::

    async with AblyBroker() as broker:
        realtime = ably.AblyRealtime(**broker.python_client_options(client_id="agent"))

or as a command for Node scripts and browser front ends::

    python -m langgraph_interrupt.testing.ably_broker --port 8765

See ``docs/offline-broker.md``.
"""

from ._broker import DEFAULT_KEY, AblyBroker, ConnectionInfo
from ._client_options import VERIFIED_ABLY_JS, VERIFIED_ABLY_PYTHON
from ._faults import DelayRule, Faults, NackRule, PartitionRule, RejectMutationsRule

__all__ = [
    "DEFAULT_KEY",
    "VERIFIED_ABLY_JS",
    "VERIFIED_ABLY_PYTHON",
    "AblyBroker",
    "ConnectionInfo",
    "DelayRule",
    "Faults",
    "NackRule",
    "PartitionRule",
    "RejectMutationsRule",
]
