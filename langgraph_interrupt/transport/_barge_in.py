"""Barge-in on the client: stop the agent when the user talks over it, but not on a cough.

Owns: the debounce between a voice activity detector (VAD) or speech-to-text (STT) feed and
the cancels it sends. Speech arms an interruption; speech that stops before
``min_duration`` withdraws it; speech that lasts (or a transcript: see ``min_words``) makes
it hold, and the helper cancels the session's active runs it targets, with the reason name
``user_speaking``. While it holds and the user is still speaking, a run that starts is
cancelled too (the agent began its reply late, or to an earlier input).

The rules are LiveKit Agents' interruption rules (``interruption.min_duration`` 0.5 s and
``interruption.min_words`` 0, formerly ``min_interruption_duration`` and
``min_interruption_words``), moved to the client: an interruption needs ``min_duration`` of
continuous speech or a transcript with words in it, and with ``min_words`` set, at least
that many transcribed words either way. Does not own audio: stopping local playback is the
application's, in ``on_interrupt``; nor the publishing, which is the session's (one
atomic publish, as for :meth:`ClientSession.cancel_runs`).

Not thread-safe: call it from the event loop's thread (from an audio thread, through
``loop.call_soon_threadsafe``). Time is injectable (``clock``, ``sleep``), so tests drive
it without sleeping.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from .._errors import InvalidArgumentError, unable_to
from .._wire import EVENT_RUN_RESUME, EVENT_RUN_START, ChannelMessage, check_reason_name
from ._client import ClientSession, RunInfo

__all__ = ["BargeIn", "BargeInCancel"]

logger = logging.getLogger("langgraph_interrupt.client")

#: What made an interruption fire: speech that lasted ``min_duration``, a transcript with
#: enough words, or a run that started while the interruption held and the user spoke.
Trigger = Literal["duration", "transcript", "run_started"]


@dataclass(frozen=True, slots=True)
class BargeInCancel:
    """One batch of cancels a :class:`BargeIn` sent, as ``on_interrupt`` receives it.

    ``speech_started_at`` and ``sent_at`` are the helper's ``clock`` (monotonic seconds):
    when the utterance began (``speech_started``, or its first transcript) and when the
    publish of the cancels returned. ``error`` is set, and nothing was cancelled, when the
    publish failed (the session closed, the channel failed): cancellation is reported as
    an outcome, never raised into the audio path.
    """

    run_ids: tuple[str, ...]
    reason: str
    trigger: Trigger
    speech_started_at: float
    sent_at: float
    error: Exception | None = None

    @property
    def latency(self) -> float:
        """Seconds from the start of speech to the cancels being sent (the debounce,
        ``min_duration`` when the duration fired it, plus one publish)."""
        return self.sent_at - self.speech_started_at


class BargeIn:
    """Cancel the agent's runs when the user starts speaking over them, debounced.

    Feed it the VAD's edges (:meth:`speech_started`, :meth:`speech_stopped`) and, if there
    is an STT, its transcripts (:meth:`transcript`). Each call is cheap, synchronous and
    idempotent, safe before anything is active, and a no-op after :meth:`aclose`.

    Args:
        session: a connected :class:`ClientSession`; its runs are the candidates.
        min_duration: seconds of continuous speech before the interruption holds (0:
            at once). Speech that stops sooner withdraws it.
        min_words: ``0``: any transcript with a word in it also makes it hold, at once.
            ``N``: only ``N`` transcribed words in the utterance (finals so far plus the
            latest interim) make it hold, whatever the duration, so a "yeah" or "uh-huh"
            over the agent changes nothing. Set it only if you feed transcripts.
        reason: the reason name sent on the cancels (``x-cancel-reason``).
        targets: which active runs to cancel; default every active run of the session.
            ``lambda run: run.client_id == me`` keeps to the runs that answer this user.
        on_interrupt: called with each :class:`BargeInCancel`, after the cancels are
            published; may be async. Nothing is called when there was nothing to cancel.
        clock / sleep: the time source and the timer (``time.monotonic``,
            ``asyncio.sleep``); tests pass fakes.

    Raises:
        ValueError: ``min_duration`` is negative or not finite, ``min_words`` is negative,
            ``reason`` is not 1 to 64 printable characters.

    Example::

        async with BargeIn(client, on_interrupt=lambda cancel: player.stop()) as barge_in:
            vad.on_start(barge_in.speech_started)
            vad.on_end(barge_in.speech_stopped)
            stt.on_text(lambda text, final: barge_in.transcript(text, final=final))
            ...
    """

    def __init__(self, session: ClientSession, *, min_duration: float = 0.5,
                 min_words: int = 0, reason: str = "user_speaking",
                 targets: Callable[[RunInfo], bool] | None = None,
                 on_interrupt: Callable[[BargeInCancel], object] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if not (math.isfinite(min_duration) and min_duration >= 0):
            raise InvalidArgumentError(unable_to(
                "create barge-in", f"min_duration must be >= 0 seconds, got {min_duration!r}"))
        if min_words < 0:
            raise InvalidArgumentError(unable_to(
                "create barge-in", f"min_words must be >= 0, got {min_words!r}"))
        if check_reason_name(reason) is None:
            raise InvalidArgumentError(unable_to(
                "create barge-in", f"reason must be 1 to 64 printable characters, "
                f"got {reason!r:.80}"))
        self.session = session
        self.min_duration = min_duration
        self.min_words = min_words
        self.reason = reason
        self._targets = targets
        self._on_interrupt = on_interrupt
        self._clock = clock
        self._sleep = sleep
        self._closed = False
        # The utterance: VAD start to the next start, or transcripts without a VAD (a final
        # transcript heard while not speaking ends it).
        self._utterance = 0
        self._open = self._speaking = self._elapsed = self._holds = False
        self._started_at = 0.0
        self._final_words = self._interim_words = 0
        self._asked: set[str] = set()  # runs already cancelled in this utterance
        self._timer: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._unsubscribe = session.on_message(self._on_message)

    @property
    def speaking(self) -> bool:
        """Between :meth:`speech_started` and :meth:`speech_stopped`."""
        return self._speaking

    @property
    def holds(self) -> bool:
        """Whether the interruption holds for the current utterance (it fired, or would
        have, had a run been active)."""
        return self._holds

    # -- the feed ------------------------------------------------------------------------------
    def speech_started(self) -> None:
        """The VAD heard speech begin: arm the interruption (a new utterance)."""
        if self._closed or self._speaking:
            return
        loop = asyncio.get_running_loop()  # outside the loop: raise before changing state
        self._begin()
        self._speaking = True
        if self.min_duration == 0:
            self._elapsed = True
            self._evaluate("duration")
        else:
            self._timer = loop.create_task(self._wait(self._utterance))

    def speech_stopped(self) -> None:
        """The VAD heard speech end: withdraw the interruption unless it already holds.
        A late transcript of the same utterance still counts (see ``min_words``)."""
        if self._closed or not self._speaking:
            return
        self._speaking = False
        self._stop_timer()

    def transcript(self, text: str, *, final: bool = False) -> None:
        """An STT result for the current utterance: interim (the words since the last
        final, replacing the previous interim) or final. Words are counted by whitespace."""
        if self._closed:
            return
        words = len(text.split())
        if not self._open:
            if not words:
                return
            self._begin()  # an STT without a VAD: the first words start the utterance
        if final:
            self._final_words += words
            self._interim_words = 0
        else:
            self._interim_words = words
        self._evaluate("transcript")
        if final and not self._speaking:
            self._open = False

    async def aclose(self) -> None:
        """Stop listening: withdraw any armed interruption, then wait for cancels already
        being sent (an interruption that held is not taken back). Idempotent."""
        self._closed = True
        self._speaking = self._holds = self._open = False
        pending = [*self._sending, *([self._timer] if self._timer is not None else [])]
        self._stop_timer()
        self._unsubscribe()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> BargeIn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- deciding ---------------------------------------------------------------------------------
    def _begin(self) -> None:
        self._stop_timer()
        self._utterance += 1
        self._open = True
        self._started_at = self._clock()
        self._final_words = self._interim_words = 0
        self._elapsed = self._holds = False
        self._asked = set()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _wait(self, utterance: int) -> None:
        await self._sleep(self.min_duration)
        if utterance == self._utterance and self._speaking:
            self._timer = None
            self._elapsed = True
            self._evaluate("duration")

    def _evaluate(self, trigger: Trigger) -> None:
        if not self._holds:
            words = self._final_words + self._interim_words
            if not (words >= max(1, self.min_words) or (self._elapsed and self.min_words == 0)):
                return
            self._holds = True
        self._fire(trigger)

    def _on_message(self, message: ChannelMessage) -> None:
        if (self._holds and self._speaking
                and message.name in (EVENT_RUN_START, EVENT_RUN_RESUME)):
            self._fire("run_started")

    def _fire(self, trigger: Trigger) -> None:
        run_ids = tuple(run.run_id for run in self.session.runs
                        if run.status == "active" and run.run_id not in self._asked
                        and self._targeted(run))
        if not run_ids:
            return  # nothing to interrupt: no cancel, no callback
        self._asked.update(run_ids)
        task = asyncio.get_running_loop().create_task(
            self._send(run_ids, trigger, self._started_at))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _targeted(self, run: RunInfo) -> bool:
        if self._targets is None:
            return True
        try:
            return bool(self._targets(run))
        except Exception:
            logger.exception("barge-in targets raised for run %s; not cancelling it",
                             run.run_id)
            return False

    async def _send(self, run_ids: tuple[str, ...], trigger: Trigger, started_at: float
                    ) -> None:
        error: Exception | None = None
        try:
            await self.session._cancel_many(run_ids, reason=self.reason)
        except Exception as exc:
            error = exc
            logger.warning("barge-in could not cancel %s: %r", ", ".join(run_ids), exc)
        interruption = BargeInCancel(run_ids, self.reason, trigger, started_at, self._clock(),
                                    error)
        if self._on_interrupt is None:
            return
        try:
            result = self._on_interrupt(interruption)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("barge-in on_interrupt raised")
