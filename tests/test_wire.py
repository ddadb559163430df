"""Wire vocabulary: error codes equal to the JS SDK's, the Invocation, envelopes, cancels."""

from __future__ import annotations

import pytest

from langgraph_interrupt import ChannelMessage, ErrorCode, InvalidInvocationError, Invocation
from langgraph_interrupt._cancel import build_cancel, read_cancel
from langgraph_interrupt._errors import status_for
from langgraph_interrupt._wire import MAX_HEADER_VALUE, read_envelope


def test_error_codes_equal_the_js_sdk_values() -> None:
    # @ably/ai-transport 0.8 src/errors.ts, plus Ably's 93002 for missing mutable messages,
    # plus this package's own for what the JS SDK has no concept of (in Ably's ranges).
    extensions = {"RUN_REJECTED": 40900,  # the multitask strategy refused an input: HTTP 409
                  "WORKER_LOST": 50300}  # the worker serving a run died: HTTP 503
    assert {c.name: int(c) for c in ErrorCode if c.name not in extensions} == {
        "BAD_REQUEST": 40000, "INVALID_ARGUMENT": 40003, "OPERATION_CANCELLED": 40033,
        "INSUFFICIENT_CAPABILITY": 40160, "INTERNAL_ERROR": 50000,
        "MUTABLE_MESSAGES_DISABLED": 93002, "ENCODER_RECOVERY_FAILED": 104000,
        "SESSION_SUBSCRIPTION_ERROR": 104001, "CANCEL_LISTENER_ERROR": 104002,
        "RUN_LIFECYCLE_ERROR": 104003, "SESSION_CLOSED": 104004, "SESSION_SEND_FAILED": 104005,
        "CHANNEL_CONTINUITY_LOST": 104006, "CHANNEL_NOT_READY": 104007, "STREAM_ERROR": 104008,
        "INPUT_EVENT_NOT_FOUND": 104010, "HISTORY_FETCH_FAILED": 104011,
    }
    assert {name: int(ErrorCode[name]) for name in extensions} == extensions
    assert status_for(ErrorCode.RUN_REJECTED) == 409
    assert status_for(ErrorCode.WORKER_LOST) == 503


def test_status_codes_follow_the_js_client_derivation() -> None:
    assert status_for(40003) == 400 and status_for(40000) == 400 and status_for(50000) == 500
    assert status_for(104008) == 500 and status_for(104010) == 504


def test_invocation_round_trips_the_two_wire_fields() -> None:
    body = {"inputEventId": "e-1", "sessionName": "ai:chat", "extra": "ignored"}
    invocation = Invocation.from_json(body)
    assert invocation.input_event_id == "e-1" and invocation.session_name == "ai:chat"
    assert invocation.to_json() == {"inputEventId": "e-1", "sessionName": "ai:chat"}
    assert Invocation.from_json('{"inputEventId":"e","sessionName":"s"}').to_json() == {
        "inputEventId": "e", "sessionName": "s"}


@pytest.mark.parametrize(("body", "problem"), [
    ({}, "inputEventId"),
    ({"inputEventId": "e"}, "sessionName"),
    ({"inputEventId": 7, "sessionName": "s"}, "inputEventId"),
    ({"inputEventId": "", "sessionName": "s"}, "inputEventId"),
    ({"inputEventId": "e", "sessionName": "s" * 5000}, "sessionName"),
    ("not json", "body"),
    ([1, 2], "expected a JSON object"),
])
def test_invalid_invocations_get_a_clear_40000_error(body: object, problem: str) -> None:
    with pytest.raises(InvalidInvocationError) as info:
        Invocation.from_json(body)  # type: ignore[arg-type]
    assert info.value.code == 40000 and info.value.status_code == 400
    assert problem in info.value.message and info.value.message.startswith("invalid invocation")


@pytest.mark.parametrize("extras", [
    None, "x", {}, {"ai": "x"}, {"ai": {}}, {"ai": {"transport": {"a": 1}}},
    {"ai": {"transport": {1: "a"}}}, {"ai": {"transport": {}, "codec": []}},
    {"ai": {"transport": {"a": "x" * (MAX_HEADER_VALUE + 1)}}},
    {"ai": {"transport": {f"k{i}": "v" for i in range(100)}}},
])
def test_malformed_envelopes_are_rejected(extras: object) -> None:
    assert read_envelope(extras) is None


def test_a_valid_envelope_is_read_with_its_ephemeral_flag() -> None:
    envelope = read_envelope({"ai": {"transport": {"a": "b"}, "codec": {"k": "v"}},
                              "ephemeral": True})
    assert envelope is not None
    assert (dict(envelope.transport), dict(envelope.codec), envelope.ephemeral) == (
        {"a": "b"}, {"k": "v"}, True)


def test_cancel_envelope_round_trips_and_needs_a_target() -> None:
    message = build_cancel(run_id="r1", input_codec_message_id="c1")
    delivered = ChannelMessage(message.name, None, message.extras, "s1", client_id="u1")
    target = read_cancel(delivered)
    assert target is not None
    assert (target.run_id, target.input_codec_message_id, target.client_id) == ("r1", "c1", "u1")
    assert target.event_id == message.id
    with pytest.raises(ValueError):
        build_cancel()
    empty = ChannelMessage("ai-cancel", None, {"ai": {"transport": {"event-id": "e"}}}, "s")
    assert read_cancel(empty) is None
