"""``start_eagerly``/``resume``: a coroutine started in the caller behaves as in a task."""

from __future__ import annotations

import asyncio

from langgraph_interrupt._eager import resume, start_eagerly


async def test_the_first_step_runs_in_the_caller_and_the_rest_in_a_task() -> None:
    steps: list[str] = []
    gate = asyncio.Event()

    async def work() -> str:
        steps.append("first")
        await gate.wait()
        steps.append("rest")
        return "done"

    future = start_eagerly(work())
    assert steps == ["first"], "the first step ran before start_eagerly returned"
    gate.set()
    assert await future == "done" and steps == ["first", "rest"]


async def test_a_collected_pending_task_closes_quietly_whatever_the_order() -> None:
    """When a pending task is garbage collected, its coroutine and the one it drives may
    be closed in either order; closing must not raise (it did: "cannot reuse already
    awaited coroutine", reported as an unraisable exception)."""
    async def forever() -> None:
        await asyncio.get_running_loop().create_future()

    for inner_first in (True, False):
        inner = forever()
        outer = resume(inner, inner.send(None))
        outer.send(None)  # suspended where the task would wait
        if inner_first:
            inner.close()
        outer.close()
        inner.close()
