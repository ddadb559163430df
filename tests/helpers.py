"""Small helpers shared by the transport tests."""

from __future__ import annotations

from typing import Any

from langgraph_interrupt import InMemoryBroker, WireRecord


def transport(record: WireRecord) -> dict[str, str]:
    extras = record.extras or {}
    return dict(extras.get("ai", {}).get("transport", {}))


def codec(record: WireRecord) -> dict[str, str]:
    extras = record.extras or {}
    return dict(extras.get("ai", {}).get("codec", {}))


def run_records(broker: InMemoryBroker, run_id: str) -> list[WireRecord]:
    """Everything the agent published for ``run_id``, in publish order."""
    assert broker.records is not None
    return [r for r in broker.records if transport(r).get("run-id") == run_id
            and r.name not in ("ai-input", "ai-cancel")]


def describe(record: WireRecord) -> tuple[Any, ...]:
    """A compact, comparable summary of one agent operation."""
    t, c = transport(record), codec(record)
    if record.name in ("ai-step-end",):
        return ("ai-step-end", t["step-reason"])
    if record.name == "ai-run-end":
        return ("ai-run-end", t["run-reason"])
    if record.name and record.name != "ai-output":
        return (record.name,)
    if record.op in ("append", "update"):
        return (record.op, c.get("kind"), record.data, t.get("status"))
    return ("publish", c.get("kind"), t.get("status"))
