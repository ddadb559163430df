"""Test helpers that are part of the product: fakes, scripted sources, conformance suites.

* :class:`Inbox` records channel messages and waits for them without sleeping.
* :class:`ScriptedStream` / :func:`text_chunks` produce deterministic chunk sources.
* :class:`FakeStreamingChatModel` streams scripted replies (per-token delay, reasoning blocks,
  OpenAI-style tool-call chunks) to drive LangGraph agents offline; :class:`StrictFakeChatModel`
  also refuses histories providers reject, and :func:`find_history_errors` is that check as a
  pure function for checkpoint states.
* :func:`postgres_cluster` starts a throwaway PostgreSQL cluster (and always removes it).
* ``langgraph_interrupt.testing.conformance.ChannelConformance`` is the suite every
  channel backend must pass (imports pytest, so it is not imported here).
"""

from ._fake_chat import (
    FakeStreamingChatModel,
    ProviderHistoryError,
    Responder,
    ScriptExhaustedError,
    ScriptItem,
    StreamOutcome,
    StrictFakeChatModel,
    find_history_errors,
    split_words,
    validate_provider_history,
)
from ._inbox import Inbox
from ._postgres import (
    PostgresCluster,
    PostgresUnavailableError,
    find_postgres_bin,
    postgres_cluster,
)
from ._sources import ScriptedStream, text_chunks

__all__ = [
    "FakeStreamingChatModel",
    "Inbox",
    "PostgresCluster",
    "PostgresUnavailableError",
    "ProviderHistoryError",
    "Responder",
    "ScriptExhaustedError",
    "ScriptItem",
    "ScriptedStream",
    "StreamOutcome",
    "StrictFakeChatModel",
    "find_history_errors",
    "find_postgres_bin",
    "postgres_cluster",
    "split_words",
    "text_chunks",
    "validate_provider_history",
]
