"""The transport headers of every message a run publishes (§2 of the protocol notes).

Owns: which headers ``ai-run-start`` / ``ai-run-resume`` / ``ai-run-suspend`` /
``ai-run-end``, ``ai-step-start`` / ``ai-step-end`` and the run's outputs carry, in the order
the JS agent writes them, from the run's identity and its trigger. Nothing here publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._abort import CancelReason
from .._errors import AITransportError
from .._wire import (
    H_CANCEL_BY,
    H_CANCEL_REASON,
    H_CODEC_MESSAGE_ID,
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_FORK_OF,
    H_INPUT_CLIENT_ID,
    H_INPUT_CODEC_MESSAGE_ID,
    H_INVOCATION_ID,
    H_MSG_REGENERATE,
    H_PARENT,
    H_ROLE,
    H_RUN_CLIENT_ID,
    H_RUN_ID,
    H_RUN_REASON,
    H_STEER_IDS,
    H_STEP_CLIENT_ID,
    H_STEP_ID,
    H_STEP_REASON,
    H_STEP_START_SERIAL,
    RunEndReason,
    StepEndReason,
)
from ._steering import encode_steer_ids
from ._trigger import Trigger

__all__ = ["RunHeaders"]


@dataclass(frozen=True, slots=True)
class RunHeaders:
    """Headers for one run, once its id is final and its trigger known."""

    run_id: str
    invocation_id: str
    trigger: Trigger

    def base(self, *, with_input: bool = True) -> dict[str, str]:
        """``ai-run-resume`` and ``ai-run-suspend`` (§2.2, §2.3)."""
        trigger = self.trigger
        headers = {H_RUN_ID: self.run_id, H_RUN_CLIENT_ID: trigger.run_client_id,
                   H_INVOCATION_ID: self.invocation_id}
        if trigger.client_id:
            headers[H_INPUT_CLIENT_ID] = trigger.client_id
        if with_input:
            headers[H_INPUT_CODEC_MESSAGE_ID] = trigger.codec_message_id
        return headers

    def run_start(self) -> dict[str, str]:
        """``ai-run-start`` (§2.1): a fork hangs off the suspended run's input."""
        headers = {H_RUN_ID: self.run_id, H_RUN_CLIENT_ID: self.trigger.run_client_id}
        _add_lineage(headers, self.trigger.run_parent, self.trigger)
        headers.update(self.base())
        return headers

    def run_end(self, reason: RunEndReason, error: AITransportError | None,
                cancel: CancelReason | None = None) -> dict[str, str]:
        """``ai-run-end`` (§2.4); ``error`` gives the code and message of an ``error`` end,
        ``cancel`` the reason name (and requester) of a ``cancelled`` one."""
        trigger = self.trigger
        headers = {H_RUN_ID: self.run_id, H_RUN_CLIENT_ID: trigger.run_client_id,
                   H_RUN_REASON: reason, H_INVOCATION_ID: self.invocation_id}
        if trigger.client_id:
            headers[H_INPUT_CLIENT_ID] = trigger.client_id
        headers[H_INPUT_CODEC_MESSAGE_ID] = trigger.codec_message_id
        if reason == "error" and error is not None:
            headers[H_ERROR_CODE] = str(error.code)
            headers[H_ERROR_MESSAGE] = error.message
        if reason == "cancelled" and cancel is not None:
            headers[H_CANCEL_REASON] = cancel.name
            if cancel.requester:
                headers[H_CANCEL_BY] = cancel.requester
        return headers

    def step(self, step_id: str) -> dict[str, str]:
        """``ai-step-start`` (§2.5)."""
        headers = {H_RUN_ID: self.run_id, H_STEP_ID: step_id}
        headers.update(self.base(with_input=False))
        headers[H_STEP_CLIENT_ID] = self.trigger.client_id or ""
        return headers

    def step_end(self, step_id: str, serial: str, reason: StepEndReason) -> dict[str, str]:
        """``ai-step-end`` (§2.5): the start's serial names the attempt it ends."""
        headers = {H_RUN_ID: self.run_id, H_STEP_ID: step_id, H_STEP_START_SERIAL: serial}
        headers.update(self.step(step_id))
        headers[H_STEP_REASON] = reason
        return headers

    def output(self, codec_message_id: str, step: tuple[str, str] | None,
               steer_ids: tuple[str, ...] = ()) -> dict[str, str]:
        """Every ``ai-output`` of a message (§2.6); ``step`` is (step id, start serial),
        ``steer_ids`` the steers this message answers (``steer-codec-message-ids``)."""
        trigger = self.trigger
        headers = {H_ROLE: "assistant", H_CODEC_MESSAGE_ID: codec_message_id,
                   H_RUN_ID: self.run_id, H_RUN_CLIENT_ID: trigger.run_client_id}
        _add_lineage(headers, trigger.output_parent, trigger)
        headers[H_INVOCATION_ID] = self.invocation_id
        if trigger.client_id:
            headers[H_INPUT_CLIENT_ID] = trigger.client_id
        headers[H_INPUT_CODEC_MESSAGE_ID] = trigger.codec_message_id
        if step is not None:
            headers[H_STEP_ID] = step[0]
            headers[H_STEP_CLIENT_ID] = trigger.client_id or ""
            headers[H_STEP_START_SERIAL] = step[1]
        if steer_ids:
            headers[H_STEER_IDS] = encode_steer_ids(steer_ids)
        return headers


def _add_lineage(headers: dict[str, str], parent: str | None, trigger: Trigger) -> None:
    """``parent``, ``fork-of`` and ``msg-regenerate``, each only when known (§2.1, §2.6)."""
    if parent:
        headers[H_PARENT] = parent
    if trigger.fork_of:
        headers[H_FORK_OF] = trigger.fork_of
    if trigger.msg_regenerate:
        headers[H_MSG_REGENERATE] = trigger.msg_regenerate
