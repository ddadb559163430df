"""Ending, on the wire, a run whose agent worker died.

Owns: :func:`end_orphaned_run`, which reads a session channel's history for one run's
current attempt (from its newest ``ai-run-start``/``ai-run-resume``), and publishes what
its dead worker never did: a closing append (``status:"cancelled"``) for each stream still
``streaming``, ``ai-step-end{failed}`` for a step still open, and ``ai-run-end{error}`` with
the error's code and message, in that order (streams before the run ends, as every run of
this package ends). The step and run ends go in one publish whose ids derive from the run
id and the dead worker's id (a batch's ids are one base with each message's position, as
Ably requires), so two workers ending the same run publish it once; the worker id is known
only on the workers' control channel, so a client cannot take those ids first (the service
would drop the real end as a duplicate of its message). Who decides a worker died is
:mod:`._workers`'.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

from .._errors import AITransportError
from .._wire import (
    EVENT_OUTPUT,
    EVENT_RUN_END,
    EVENT_RUN_RESUME,
    EVENT_RUN_START,
    EVENT_RUN_SUSPEND,
    EVENT_STEP_END,
    EVENT_STEP_START,
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_INPUT_CLIENT_ID,
    H_INPUT_CODEC_MESSAGE_ID,
    H_INVOCATION_ID,
    H_RUN_CLIENT_ID,
    H_RUN_ID,
    H_RUN_REASON,
    H_STATUS,
    H_STEP_REASON,
    H_STEP_START_SERIAL,
    H_STREAM,
    ChannelMessage,
    Envelope,
    OutboundMessage,
    batch_ids,
    make_extras,
    read_envelope,
)
from ..channels import Channel

__all__ = ["end_orphaned_run"]

logger = logging.getLogger("langgraph_interrupt.transport")

_LIFECYCLE = frozenset({EVENT_RUN_START, EVENT_RUN_RESUME, EVENT_RUN_SUSPEND, EVENT_RUN_END})


async def end_orphaned_run(channel: Channel, run_id: str, error: AITransportError, *,
                           worker: str, agent_client_ids: frozenset[str] | None = None,
                           max_pages: int = 10, page_size: int = 100) -> bool:
    """End run ``run_id`` on ``channel`` with ``error`` if its history shows it still active.

    Only messages published by ``agent_client_ids`` (default: ``channel.client_id``) count:
    a client cannot make a run look active, or ended, by forging its events. Returns True
    when this call ended the run, False when it had already ended or suspended, or was not
    found within ``max_pages`` pages of history (logged). Channel errors propagate.
    """
    agents = agent_client_ids if agent_client_ids is not None else frozenset(
        {channel.client_id} if channel.client_id else ())
    # Each kept message with its envelope, read once.
    start: tuple[ChannelMessage, Envelope] | None = None
    streams: list[tuple[ChannelMessage, Envelope]] = []
    step_starts: list[tuple[ChannelMessage, Envelope]] = []
    ended_steps: set[str] = set()
    page = await channel.history(limit=page_size, until_attach=False)
    for _ in range(max_pages):
        for message in page.items:  # newest first: everything of the attempt, then its start
            if message.client_id not in agents:
                continue
            envelope = read_envelope(message.extras)
            if envelope is None or envelope.transport.get(H_RUN_ID) != run_id:
                continue
            name = message.name
            if name in _LIFECYCLE:
                if name in (EVENT_RUN_END, EVENT_RUN_SUSPEND):
                    return False  # its newest lifecycle event says it is not active
                start = (message, envelope)
                break
            transport = envelope.transport
            if name == EVENT_OUTPUT and transport.get(H_STREAM) == "true" \
                    and transport.get(H_STATUS) == "streaming":
                streams.append((message, envelope))
            elif name == EVENT_STEP_END:
                ended_steps.add(transport.get(H_STEP_START_SERIAL, ""))
            elif name == EVENT_STEP_START:
                step_starts.append((message, envelope))
        if start is not None or not page.has_next():
            break
        page = await page.next()
    if start is None:
        logger.warning("orphaned run %s not found in %s's history; not ended", run_id,
                       channel.name)
        return False
    for stream, envelope in reversed(streams):  # oldest first, as they were opened
        await channel.append(stream.serial, "", _closed(envelope))
    ends: list[OutboundMessage] = []
    salt = hashlib.sha256(f"{worker}\x00{run_id}".encode()).hexdigest()[:32]
    for step, envelope in reversed(step_starts):
        if step.serial not in ended_steps:
            ends.append(_step_end(step.serial, envelope.transport))
    ends.append(_run_end(start[1].transport, run_id, error, salt))
    # One atomic publish; its ids are what Ably requires of a batch (one base, positions).
    await channel.publish(batch_ids(ends, f"orphan:{salt}"))
    logger.warning("ended run %s on %s: %s", run_id, channel.name, error.message)
    return True


def _closed(envelope: Envelope) -> dict[str, object]:
    transport = dict(envelope.transport)
    transport[H_STATUS] = "cancelled"
    return make_extras(transport, envelope.codec)


def _step_end(serial: str, started: Mapping[str, str]) -> OutboundMessage:
    """A step end; published with the run end, whose batch gives it its id."""
    transport = dict(started)
    transport[H_STEP_START_SERIAL] = serial
    transport[H_STEP_REASON] = "failed"
    return OutboundMessage(EVENT_STEP_END, None, make_extras(transport))


def _run_end(started: Mapping[str, str], run_id: str, error: AITransportError,
             salt: str) -> OutboundMessage:
    headers = {H_RUN_ID: run_id, H_RUN_CLIENT_ID: started.get(H_RUN_CLIENT_ID, ""),
               H_RUN_REASON: "error"}
    for key in (H_INVOCATION_ID, H_INPUT_CLIENT_ID, H_INPUT_CODEC_MESSAGE_ID):
        if key in started:
            headers[key] = started[key]
    headers[H_ERROR_CODE] = str(error.code)
    headers[H_ERROR_MESSAGE] = error.message
    return OutboundMessage(EVENT_RUN_END, None, make_extras(headers), f"orphan:{salt}:end")
