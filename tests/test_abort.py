"""The abort primitive: idempotent, first reason wins, thread-safe, combinable."""

from __future__ import annotations

import asyncio
import threading

import pytest

from langgraph_interrupt import AbortController, AbortSignal, CancelReason, RunCancelled


def test_abort_is_idempotent_and_the_first_reason_wins() -> None:
    controller = AbortController()
    assert not controller.signal.aborted and controller.signal.reason is None
    assert controller.abort(CancelReason("client", "stop pressed", requester="u1")) is True
    assert controller.abort(CancelReason("timeout")) is False
    assert controller.signal.reason == CancelReason("client", "stop pressed", requester="u1")
    assert str(controller.signal.reason) == "cancelled by client (u1): stop pressed"


def test_a_plain_string_or_nothing_becomes_a_user_reason() -> None:
    a, b = AbortController(), AbortController()
    a.abort("enough")
    b.abort()
    assert a.signal.reason == CancelReason("user", "enough")
    assert b.signal.reason == CancelReason("user")


def test_throw_if_aborted_raises_run_cancelled_which_except_exception_does_not_catch() -> None:
    controller = AbortController()
    controller.signal.throw_if_aborted()  # not aborted: a no-op
    controller.abort("x")
    with pytest.raises(RunCancelled) as info:
        try:
            controller.signal.throw_if_aborted()
        except Exception:  # a tool's broad handler must not swallow a cancellation
            pytest.fail("RunCancelled was caught by 'except Exception'")
    assert info.value.reason.message == "x"


def test_callbacks_run_once_and_immediately_when_already_aborted() -> None:
    controller = AbortController()
    calls: list[CancelReason] = []
    remove = controller.signal.add_callback(calls.append)
    removed: list[CancelReason] = []
    controller.signal.add_callback(removed.append)()  # registered, then removed at once
    controller.abort("a")
    controller.abort("b")
    assert [c.message for c in calls] == ["a"] and removed == []
    late: list[CancelReason] = []
    controller.signal.add_callback(late.append)
    assert [c.message for c in late] == ["a"]
    remove()  # removing after the fact is harmless


def test_a_raising_callback_does_not_break_abort_or_other_callbacks(
        caplog: pytest.LogCaptureFixture) -> None:
    controller = AbortController()
    seen: list[CancelReason] = []

    def boom(reason: CancelReason) -> None:
        raise ValueError("callback bug")

    controller.signal.add_callback(boom)
    controller.signal.add_callback(seen.append)
    assert controller.abort("x") is True
    assert len(seen) == 1
    assert "callback bug" in caplog.text


async def test_wait_returns_the_reason_when_aborted_later() -> None:
    controller = AbortController()
    waiter = asyncio.create_task(controller.signal.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    controller.abort(CancelReason("shutdown"))
    assert (await waiter).source == "shutdown"
    assert (await controller.signal.wait()).source == "shutdown"  # already aborted: at once


async def test_wait_wakes_when_aborted_from_a_worker_thread() -> None:
    controller = AbortController()
    waiter = asyncio.create_task(controller.signal.wait())
    await asyncio.sleep(0)
    thread = threading.Thread(target=controller.abort, args=(CancelReason("client"),))
    thread.start()
    reason = await asyncio.wait_for(waiter, 2)
    thread.join()
    assert reason.source == "client"


def test_concurrent_aborts_from_many_threads_abort_exactly_once() -> None:
    controller = AbortController()
    wins: list[bool] = []
    calls: list[CancelReason] = []
    controller.signal.add_callback(calls.append)
    barrier = threading.Barrier(16)

    def race(i: int) -> None:
        barrier.wait()
        wins.append(controller.abort(f"thread {i}"))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and len(calls) == 1


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    controller = AbortController()
    waiter = asyncio.create_task(controller.signal.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert controller.signal._waiters == []


def test_any_aborts_with_the_first_input_reason() -> None:
    a, b = AbortController(), AbortController()
    combined = AbortSignal.any([a.signal, b.signal])
    assert not combined.aborted
    b.abort(CancelReason("timeout"))
    a.abort(CancelReason("client"))
    assert combined.reason == CancelReason("timeout")


def test_any_of_an_already_aborted_signal_is_aborted_at_once() -> None:
    a, b = AbortController(), AbortController()
    a.abort("early")
    assert AbortSignal.any([b.signal, a.signal]).reason == CancelReason("user", "early")
