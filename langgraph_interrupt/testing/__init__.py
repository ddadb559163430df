"""Test helpers that are part of the product: fakes, scripted sources, conformance suites.

* :class:`Inbox` records channel messages and waits for them without sleeping.
* :class:`ScriptedStream` / :func:`text_chunks` produce deterministic chunk sources.
* ``langgraph_interrupt.testing.conformance.ChannelConformance`` is the suite every
  channel backend must pass (imports pytest, so it is not imported here).
"""

from ._inbox import Inbox
from ._sources import ScriptedStream, text_chunks

__all__ = ["Inbox", "ScriptedStream", "text_chunks"]
