"""Error codes and exception classes.

Owns: the numeric error vocabulary (the same values as the JS SDK's ``ErrorCode``,
``@ably/ai-transport`` 0.8 ``src/errors.ts``) and the exception hierarchy. Stdlib only.

Hierarchy::

    AITransportError(code, status_code)     every error this package raises
    ├── InvalidArgumentError        40003   a caller passed something unusable
    │   └── UnsupportedChunkError   40003   a UI-message chunk the codec cannot encode
    ├── InvalidInvocationError      40000   an invocation body failed validation
    ├── OperationCancelledError     40033   refused: the run was already cancelled
    ├── SessionClosedError          104004  used after ``close()`` (closed by you)
    ├── ChannelContinuityLostError  104006  the channel lost state (broken by the world)
    ├── InputEventNotFoundError     104010  the trigger input was not found in time
    ├── HistoryFetchFailedError     104011  history paging failed after retries
    ├── RunLifecycleError           104003  a lifecycle call out of order, or its publish failed
    ├── RunRejectedError            40900   the session's multitask strategy refused the input
    ├── StreamError                 104008  a piped source raised; the default run-end error code
    ├── EncoderRecoveryFailedError  104000  appends failed, and so did the repair
    └── ChannelError                any     a channel operation failed (foreign errors
        └── MutableMessagesDisabledError 93002  are translated into this at the backend boundary)

Only ``error-code``/``error-message`` on ``ai-run-end`` cross the wire; everything else is local.
Messages follow the JS SDK's ``"unable to <operation>; <reason>"`` form.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AITransportError",
    "ChannelContinuityLostError",
    "ChannelError",
    "EncoderRecoveryFailedError",
    "ErrorCode",
    "HistoryFetchFailedError",
    "InputEventNotFoundError",
    "InvalidArgumentError",
    "InvalidInvocationError",
    "MutableMessagesDisabledError",
    "OperationCancelledError",
    "RunLifecycleError",
    "RunRejectedError",
    "SessionClosedError",
    "StreamError",
    "UnsupportedChunkError",
    "unable_to",
]


class ErrorCode(IntEnum):
    """Numeric error codes, equal to the JS SDK's so clients can compare them."""

    BAD_REQUEST = 40000
    INVALID_ARGUMENT = 40003
    OPERATION_CANCELLED = 40033
    INSUFFICIENT_CAPABILITY = 40160
    #: Not a JS SDK code (it has no multitask strategies): Ably's conflict range, status 409.
    RUN_REJECTED = 40900
    INTERNAL_ERROR = 50000
    #: Not a JS SDK code (its agent has no workers watching each other): status 503.
    WORKER_LOST = 50300
    MUTABLE_MESSAGES_DISABLED = 93002  # Ably's code; not an AI Transport code
    ENCODER_RECOVERY_FAILED = 104000
    SESSION_SUBSCRIPTION_ERROR = 104001
    CANCEL_LISTENER_ERROR = 104002
    RUN_LIFECYCLE_ERROR = 104003
    SESSION_CLOSED = 104004
    SESSION_SEND_FAILED = 104005
    CHANNEL_CONTINUITY_LOST = 104006
    CHANNEL_NOT_READY = 104007
    STREAM_ERROR = 104008
    INPUT_EVENT_NOT_FOUND = 104010
    HISTORY_FETCH_FAILED = 104011


# HTTP-ish statuses the JS SDK attaches; anything else derives from the code (§3.2 of the
# protocol notes: floor(code / 100) for five-digit codes, else 500).
_STATUS: dict[int, int] = {
    ErrorCode.OPERATION_CANCELLED: 400,
    ErrorCode.INPUT_EVENT_NOT_FOUND: 504,
    ErrorCode.SESSION_CLOSED: 400,
    ErrorCode.CHANNEL_NOT_READY: 400,
}


def status_for(code: int) -> int:
    """The HTTP-like status for an error code, as the JS client derives it."""
    if code in _STATUS:
        return _STATUS[code]
    if 10000 <= code <= 99999:
        return code // 100
    return 500


def unable_to(operation: str, reason: object) -> str:
    """Format a message the way the JS SDK does: ``unable to <operation>; <reason>``."""
    return f"unable to {operation}; {reason}"


class AITransportError(Exception):
    """Base class of every error this package raises.

    Attributes:
        code: the numeric error code (see :class:`ErrorCode`); foreign codes such as Ably's
            are kept as plain ints.
        status_code: an HTTP-like status, used by the agent endpoint to answer requests.
    """

    default_code: int = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code: int = int(code if code is not None else self.default_code)
        self.status_code: int = status_for(self.code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r})"


class InvalidArgumentError(AITransportError, ValueError):
    """A caller passed a value this package cannot use."""

    default_code = ErrorCode.INVALID_ARGUMENT


class UnsupportedChunkError(InvalidArgumentError):
    """A UI-message chunk has a type the Vercel codec has no wire mapping for.

    Raised by the encoder (and turned into a ``pipe`` result with reason ``error`` by the
    transport) instead of dropping the chunk silently: an unknown type is almost always a
    version mismatch between the producer and this codec, and silently losing output would
    hide it. The JS SDK fails the pipe the same way (40003).
    """


class InvalidInvocationError(AITransportError, ValueError):
    """An invocation body is not ``{"inputEventId": str, "sessionName": str}``."""

    default_code = ErrorCode.BAD_REQUEST


class OperationCancelledError(AITransportError):
    """An operation was refused because the run was cancelled before it could start."""

    default_code = ErrorCode.OPERATION_CANCELLED


class SessionClosedError(AITransportError):
    """A session was used after ``close()``: closed by you, not broken by the world."""

    default_code = ErrorCode.SESSION_CLOSED


class ChannelContinuityLostError(AITransportError):
    """The channel lost continuity (detached, failed, or re-attached without resume)."""

    default_code = ErrorCode.CHANNEL_CONTINUITY_LOST


class InputEventNotFoundError(AITransportError):
    """The input named by an invocation's ``inputEventId`` was not found in time."""

    default_code = ErrorCode.INPUT_EVENT_NOT_FOUND


class HistoryFetchFailedError(AITransportError):
    """Channel history could not be read after bounded retries."""

    default_code = ErrorCode.HISTORY_FETCH_FAILED


class RunLifecycleError(AITransportError):
    """A run lifecycle call was made in the wrong state, or its publish failed."""

    default_code = ErrorCode.RUN_LIFECYCLE_ERROR


class RunRejectedError(AITransportError):
    """A new input was refused because runs are already active on its session (the
    ``reject`` strategy, a full ``enqueue`` queue, or a concurrency limit).

    The run still ends on the wire (``ai-run-start``, then ``ai-run-end{error}`` with this
    code and message), so every device shows why; the agent endpoint answers 409.
    """

    default_code = ErrorCode.RUN_REJECTED


class WorkerLostError(AITransportError):
    """The agent worker serving a run died (its presence left the workers' channel), so
    another worker ended the run: ``ai-run-end{error}`` with this code and message."""

    default_code = ErrorCode.WORKER_LOST


class StreamError(AITransportError):
    """A piped source failed. Also the default ``error-code`` of a failed run."""

    default_code = ErrorCode.STREAM_ERROR


class EncoderRecoveryFailedError(AITransportError):
    """Appends to a stream failed and the recovery update failed as well."""

    default_code = ErrorCode.ENCODER_RECOVERY_FAILED


class ChannelError(AITransportError):
    """A channel backend operation failed.

    Backends translate their own exceptions into this class (or a subclass) at exactly one
    boundary and chain the original with ``raise ... from exc``. ``retryable`` tells the
    transport whether trying again can help (a dropped connection) or not (a missing
    capability).
    """

    default_code = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, code: int | None = None, retryable: bool = False) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


class MutableMessagesDisabledError(ChannelError):
    """The channel rejects appends and updates (Ably error 93002).

    Enable the "Message annotations, updates, deletes and appends" rule (mutable messages)
    on the namespace of the session channels.
    """

    default_code = ErrorCode.MUTABLE_MESSAGES_DISABLED
