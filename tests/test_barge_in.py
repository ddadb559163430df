"""Barge-in on the client: debounced voice interruption over a real session and agent.

Time is a :class:`ManualTime` the tests move by hand: nothing here sleeps, and every wait is
on an event (a sleeper armed or woken, an interruption delivered, a run ended).
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    BargeIn,
    BargeInCancel,
    ClientSession,
    InMemoryBroker,
    InvalidArgumentError,
    PipeResult,
    Run,
    SessionClosedError,
)
from langgraph_interrupt.testing import ScriptedStream
from tests.conftest import SESSION
from tests.helpers import TOKENS, start_streaming, transport


@dataclass
class _Sleeper:
    deadline: float
    future: asyncio.Future[None]
    woke: asyncio.Event = field(default_factory=asyncio.Event)


class ManualTime:
    """A clock and a ``sleep`` that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[_Sleeper] = []
        self._armed = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        sleeper = _Sleeper(self.now + delay, asyncio.get_running_loop().create_future())
        self._sleepers.append(sleeper)
        self._armed.set()
        try:
            await sleeper.future
        finally:
            self._sleepers.remove(sleeper)
            if not self._sleepers:
                self._armed.clear()
            sleeper.woke.set()

    async def armed(self) -> None:
        """Wait until a timer is sleeping."""
        await self._armed.wait()

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move the clock; timers that fall due wake, and run up to their next await."""
        self.now += seconds
        due = [s for s in self._sleepers if s.deadline <= self.now and not s.future.done()]
        for sleeper in due:
            sleeper.future.set_result(None)
        for sleeper in due:
            await sleeper.woke.wait()


@pytest.fixture
def manual() -> ManualTime:
    return ManualTime()


@pytest.fixture
def interrupts() -> asyncio.Queue[BargeInCancel]:
    return asyncio.Queue()


@pytest.fixture
async def barge_in(client: ClientSession, manual: ManualTime,
                   interrupts: asyncio.Queue[BargeInCancel]) -> AsyncIterator[BargeIn]:
    async with _barge_in(client, manual, interrupts) as helper:
        yield helper


def _barge_in(client: ClientSession, manual: ManualTime,
              interrupts: asyncio.Queue[BargeInCancel], **kwargs: Any) -> BargeIn:
    return BargeIn(client, clock=manual.clock, sleep=manual.sleep,
                   on_interrupt=interrupts.put_nowait, **kwargs)


async def _seen(client: ClientSession, *runs: Run) -> None:
    ids = {run.run_id for run in runs}
    await client.wait_for(lambda c: ids <= {r.run_id for r in c.runs if r.status == "active"},
                          timeout=2)


def _cancels(broker: InMemoryBroker) -> list[dict[str, str]]:
    return [transport(r) for r in broker.records or [] if r.name == "ai-cancel"]


async def test_speech_that_lasts_min_duration_cancels_every_active_run_with_user_speaking(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession, barge_in: BargeIn,
        manual: ManualTime, interrupts: asyncio.Queue[BargeInCancel]) -> None:
    other = ClientSession(broker.channel(SESSION, client_id="user-two"))
    await other.connect()
    started = [await start_streaming(client, agent), await start_streaming(other, agent)]
    await _seen(client, *(run for run, _, _ in started))
    barge_in.speech_started()
    await manual.armed()
    await manual.advance(0.49)
    assert not barge_in.holds and interrupts.empty() and not _cancels(broker)
    await manual.advance(0.01)
    interruption = await interrupts.get()
    assert interruption.run_ids == tuple(run.run_id for run, _, _ in started)
    assert (interruption.reason, interruption.trigger, interruption.error) == (
        "user_speaking", "duration", None)
    assert interruption.latency == pytest.approx(0.5)
    for run, _, task in started:
        assert (await task).reason == "cancelled"
        info = await client.wait_run_ended(run.run_id, timeout=2)
        assert (info.cancel_reason, info.cancelled_by) == ("user_speaking", "user-abc")
        assert info.cancel_latency is not None, "the session timed the helper's cancel"
    assert [c["x-cancel-reason"] for c in _cancels(broker)] == ["user_speaking"] * 2
    await other.close()


async def test_speech_that_stops_before_min_duration_is_withdrawn(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession, barge_in: BargeIn,
        manual: ManualTime, interrupts: asyncio.Queue[BargeInCancel]) -> None:
    run, stream, task = await start_streaming(client, agent)
    await _seen(client, run)
    barge_in.speech_started()
    await manual.armed()
    await manual.advance(0.3)
    barge_in.speech_stopped()  # a cough
    await manual.advance(5.0)
    await barge_in.aclose()  # waits for anything in flight
    assert interrupts.empty() and not _cancels(broker) and not barge_in.holds
    stream.release()
    assert (await task).reason == "complete"


async def test_repeated_calls_change_nothing_and_the_timer_is_not_restarted(
        client: ClientSession, agent: AgentSession, barge_in: BargeIn, manual: ManualTime,
        interrupts: asyncio.Queue[BargeInCancel]) -> None:
    barge_in.speech_stopped()  # before anything: nothing to withdraw
    run, _, task = await start_streaming(client, agent)
    await _seen(client, run)
    barge_in.speech_started()
    await manual.armed()
    await manual.advance(0.3)
    barge_in.speech_started()  # the VAD says it again: still the same utterance
    assert manual.sleeping == 1
    await manual.advance(0.2)
    interruption = await interrupts.get()
    assert interruption.run_ids == (run.run_id,)
    assert interruption.latency == pytest.approx(0.5), "timed from the first start"
    barge_in.speech_started()
    barge_in.speech_stopped()
    barge_in.speech_stopped()
    assert (await task).reason == "cancelled"
    await barge_in.aclose()
    await barge_in.aclose()
    assert interrupts.empty(), "one interruption, one batch of cancels"


async def test_nothing_is_sent_when_no_run_is_active(
        broker: InMemoryBroker, client: ClientSession, barge_in: BargeIn, manual: ManualTime,
        interrupts: asyncio.Queue[BargeInCancel]) -> None:
    barge_in.speech_started()
    await manual.armed()
    await manual.advance(0.5)
    barge_in.transcript("hello there", final=True)
    assert barge_in.holds, "it holds; there is just nothing to interrupt"
    barge_in.speech_stopped()
    await barge_in.aclose()
    assert interrupts.empty() and not _cancels(broker)


async def _drive(run: Run, stream: ScriptedStream) -> PipeResult:
    async with run:
        return await run.pipe(stream)


async def test_a_run_that_starts_while_the_user_keeps_speaking_is_cancelled_too(
        client: ClientSession, agent: AgentSession, barge_in: BargeIn, manual: ManualTime,
        interrupts: asyncio.Queue[BargeInCancel]) -> None:
    barge_in.speech_started()
    await manual.armed()
    await manual.advance(0.5)
    assert barge_in.holds and interrupts.empty()
    handle = await client.send("an earlier question, answered late")
    late = agent.create_run(handle.invocation)
    task = asyncio.create_task(_drive(late, ScriptedStream(TOKENS, hold_at=3)))
    interruption = await interrupts.get()
    assert (interruption.run_ids, interruption.trigger) == ((late.run_id,), "run_started")
    assert (await task).reason == "cancelled"
    barge_in.speech_stopped()  # the user is done: the next run is the answer
    answer, stream, answer_task = await start_streaming(client, agent)
    await _seen(client, answer)
    stream.release()
    assert (await answer_task).reason == "complete"
    await barge_in.aclose()
    assert interrupts.empty()


async def test_with_min_words_0_a_transcript_fires_at_once(
        client: ClientSession, agent: AgentSession, barge_in: BargeIn, manual: ManualTime,
        interrupts: asyncio.Queue[BargeInCancel]) -> None:
    run, _, task = await start_streaming(client, agent)
    await _seen(client, run)
    barge_in.transcript("")  # an empty interim is no evidence of speech
    assert not barge_in.holds
    barge_in.speech_started()
    await manual.advance(0.1)
    barge_in.transcript("wait")
    interruption = await interrupts.get()
    assert interruption.trigger == "transcript"
    assert interruption.latency == pytest.approx(0.1)
    assert (await task).reason == "cancelled"


async def test_min_words_gates_the_duration_and_enough_words_fire_before_it(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession,
        manual: ManualTime, interrupts: asyncio.Queue[BargeInCancel]) -> None:
    run, _, task = await start_streaming(client, agent)
    await _seen(client, run)
    async with _barge_in(client, manual, interrupts, min_words=3) as barge_in:
        barge_in.speech_started()
        await manual.armed()
        barge_in.transcript("uh huh")
        await manual.advance(2.0)
        assert not barge_in.holds, "a backchannel, however long, is not an interruption"
        barge_in.transcript("uh huh", final=True)
        barge_in.transcript("hold")  # finals so far plus this interim: three words
        interruption = await interrupts.get()
        assert (interruption.trigger, interruption.latency) == ("transcript", 2.0)
    assert (await task).reason == "cancelled"
    assert len(_cancels(broker)) == 1


async def test_a_late_transcript_counts_for_its_utterance_and_the_next_one_starts_afresh(
        client: ClientSession, agent: AgentSession, manual: ManualTime,
        interrupts: asyncio.Queue[BargeInCancel]) -> None:
    first, _, first_task = await start_streaming(client, agent)
    await _seen(client, first)
    async with _barge_in(client, manual, interrupts, min_words=2) as barge_in:
        barge_in.speech_started()
        await manual.armed()
        await manual.advance(0.2)
        barge_in.speech_stopped()  # short, withdrawn by the VAD...
        barge_in.transcript("stop please", final=True)  # ...but the STT heard two words
        assert (await interrupts.get()).run_ids == (first.run_id,)
        assert (await first_task).reason == "cancelled"
        second, stream, second_task = await start_streaming(client, agent)
        await _seen(client, second)
        barge_in.speech_started()  # a new utterance: its words are counted from zero
        barge_in.transcript("ok", final=True)
        barge_in.speech_stopped()
        assert not barge_in.holds
        stream.release()
        assert (await second_task).reason == "complete"
    assert interrupts.empty()


async def test_targets_choose_which_active_runs_are_cancelled(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession,
        manual: ManualTime, interrupts: asyncio.Queue[BargeInCancel]) -> None:
    other = ClientSession(broker.channel(SESSION, client_id="user-two"))
    await other.connect()
    mine, _, my_task = await start_streaming(client, agent)
    theirs, stream, their_task = await start_streaming(other, agent)
    await _seen(client, mine, theirs)
    async with _barge_in(client, manual, interrupts, min_duration=0, reason="barge_in",
                         targets=lambda run: run.client_id == "user-abc") as barge_in:
        barge_in.speech_started()  # min_duration 0: at once
        interruption = await interrupts.get()
    assert (interruption.run_ids, interruption.reason) == ((mine.run_id,), "barge_in")
    assert (await my_task).reason == "cancelled"
    stream.release()
    assert (await their_task).reason == "complete"
    await other.close()


async def test_on_interrupt_may_be_async_and_what_it_raises_is_logged(
        client: ClientSession, agent: AgentSession, manual: ManualTime,
        caplog: pytest.LogCaptureFixture) -> None:
    run, _, task = await start_streaming(client, agent)
    await _seen(client, run)
    called = asyncio.Event()

    async def stop_playback(interruption: BargeInCancel) -> None:
        called.set()
        raise RuntimeError("the speaker is gone")

    with caplog.at_level(logging.ERROR, logger="langgraph_interrupt.client"):
        async with BargeIn(client, min_duration=0, on_interrupt=stop_playback,
                           clock=manual.clock, sleep=manual.sleep) as barge_in:
            barge_in.speech_started()
            await called.wait()
    assert (await task).reason == "cancelled"
    assert any("on_interrupt raised" in r.getMessage() for r in caplog.records)


async def test_a_cancel_that_cannot_be_sent_is_an_interruption_with_its_error(
        client: ClientSession, agent: AgentSession, manual: ManualTime,
        interrupts: asyncio.Queue[BargeInCancel]) -> None:
    run, stream, task = await start_streaming(client, agent)
    await _seen(client, run)
    await client.close()
    async with _barge_in(client, manual, interrupts, min_duration=0) as barge_in:
        barge_in.speech_started()  # from an audio callback: it must not raise
        interruption = await interrupts.get()
    assert interruption.run_ids == (run.run_id,)
    assert isinstance(interruption.error, SessionClosedError)
    stream.release()
    assert (await task).reason == "complete"


async def test_aclose_withdraws_an_armed_interruption_and_later_calls_do_nothing(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession, barge_in: BargeIn,
        manual: ManualTime, interrupts: asyncio.Queue[BargeInCancel]) -> None:
    run, stream, task = await start_streaming(client, agent)
    await _seen(client, run)
    barge_in.speech_started()
    await manual.armed()
    await barge_in.aclose()
    assert manual.sleeping == 0, "the timer was withdrawn"
    barge_in.speech_started()
    barge_in.transcript("stop stop stop", final=True)
    assert manual.sleeping == 0 and interrupts.empty() and not _cancels(broker)
    stream.release()
    assert (await task).reason == "complete"


@pytest.mark.parametrize("kwargs", [
    {"min_duration": -0.1}, {"min_duration": float("nan")}, {"min_duration": float("inf")},
    {"min_words": -1}, {"reason": ""}, {"reason": "x" * 65}, {"reason": "new\nline"},
])
async def test_unusable_settings_are_refused(client: ClientSession,
                                             kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        BargeIn(client, **kwargs)


def test_the_documented_example_runs_as_documented(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "barge-in-client.md").read_text()
    code = re.search(r"## Python: `BargeIn`\n\n```python\n(.*?)```", doc, re.S)
    assert code is not None, "docs/barge-in-client.md has a Python example"
    script = tmp_path / "barge_in_example.py"
    script.write_text(code.group(1))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert len(out) == 2, out  # one interruption
    assert re.fullmatch(r"interrupted 1 run after 0\.[5-9] s \(duration\)", out[0]), out
    assert re.fullmatch(r"cancelled user_speaking \d+\.\d ms", out[1]), out
