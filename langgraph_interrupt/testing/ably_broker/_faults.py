"""Fault injection for tests.

Owns: the rules a test arms to make the broker misbehave on purpose (NACK publishes, reject
mutations with 93002, delay deliveries, drop connections, cut a connection off the network) and
the matching of a rule against a channel. Rules are plain objects a test keeps a handle to: it
can read how often a rule fired and cancel it. ``channel`` is an exact channel name or an
``fnmatch`` pattern (``"ai:*"``); ``None`` matches every channel. Presence messages are not
publishes: NACK rules leave them alone; delivery delays hold them like any delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from ._protocol import AblyError

__all__ = ["DelayRule", "Faults", "NackRule", "PartitionRule", "RejectMutationsRule"]

MUTABLE_MESSAGES_DISABLED_MESSAGE = (
    "unable to update, delete or append to a message; the channel namespace has no "
    "'Message annotations, updates, deletes and appends' rule (mutableMessages)"
)


def _matches(pattern: str | None, channel: str) -> bool:
    return pattern is None or pattern == channel or fnmatchcase(channel, pattern)


@dataclass(eq=False)
class NackRule:
    """NACK the next ``remaining`` matching publishes (each protocol message or REST request).

    ``appends_only`` limits the rule to publishes containing an append. ``after_apply`` makes
    the publish take effect (stored and delivered) before the NACK, like an acknowledgement
    lost on the way back: the client sees a failure for a message the service has. ``fired``
    counts the publishes rejected so far; the rule disarms itself when ``remaining`` reaches 0.
    """

    remaining: int
    channel: str | None = None
    appends_only: bool = False
    code: int = 50000
    status_code: int = 500
    message: str = "injected fault: publish rejected by the test broker"
    after_apply: bool = False
    fired: int = 0
    _owner: Faults | None = field(default=None, repr=False)

    def error(self) -> AblyError:
        return AblyError(self.code, self.status_code, self.message)

    def cancel(self) -> None:
        """Disarm the rule."""
        if self._owner is not None:
            self._owner._remove(self)


@dataclass(eq=False)
class RejectMutationsRule:
    """Reject update/delete/append on matching channels, as a namespace without the
    mutable-messages rule does (93002 by default). ``fired`` counts rejections."""

    channel: str | None = None
    appends_only: bool = False
    code: int = 93002
    status_code: int = 400
    message: str = MUTABLE_MESSAGES_DISABLED_MESSAGE
    fired: int = 0
    _owner: Faults | None = field(default=None, repr=False)

    def error(self) -> AblyError:
        return AblyError(self.code, self.status_code, self.message)

    def cancel(self) -> None:
        if self._owner is not None:
            self._owner._remove(self)


@dataclass(eq=False)
class DelayRule:
    """Hold every delivery of a matching channel for ``delay_ms`` before writing it.

    Frame order per connection is kept: a delayed delivery also holds back frames queued after
    it on the same connection (like a slow network path would). ``connection_id`` limits the
    rule to the deliveries sent to one connection.
    """

    delay_ms: int
    channel: str | None = None
    connection_id: str | None = None
    _owner: Faults | None = field(default=None, repr=False)

    def cancel(self) -> None:
        if self._owner is not None:
            self._owner._remove(self)


@dataclass(eq=False)
class PartitionRule:
    """One connection cut off the network: its socket was aborted and its attempts to resume
    are refused (the socket is aborted again) until :meth:`heal`."""

    connection_id: str
    _owner: Faults | None = field(default=None, repr=False)

    def heal(self) -> None:
        """Let the connection come back (resume) on its next retry."""
        if self._owner is not None:
            self._owner._remove(self)

    cancel = heal


class Faults:
    """The broker's fault-injection controller (``broker.faults``).

    When to use: a test needs the failure paths of the real SDKs (a NACKed publish raising, a
    missing mutable-messages rule, a slow subscriber, a network drop) without a real network.
    """

    def __init__(self, drop: Callable[[str | None], int]) -> None:
        self._drop = drop
        self._nacks: list[NackRule] = []
        self._rejects: list[RejectMutationsRule] = []
        self._delays: list[DelayRule] = []
        self._partitions: list[PartitionRule] = []

    # ------------------------------------------------------------------ arming

    def nack_next(
        self,
        count: int = 1,
        *,
        channel: str | None = None,
        appends_only: bool = False,
        code: int = 50000,
        status_code: int = 500,
        message: str = "injected fault: publish rejected by the test broker",
        after_apply: bool = False,
    ) -> NackRule:
        """NACK the next ``count`` matching publishes with the given Ably error.

        With ``after_apply`` the publish is applied first (a lost ACK): what idempotent
        message ids exist for, since a client that retries would otherwise publish twice.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        rule = NackRule(count, channel, appends_only, code, status_code, message, after_apply,
                        _owner=self)
        self._nacks.append(rule)
        return rule

    def reject_mutations(
        self,
        *,
        channel: str | None = None,
        appends_only: bool = False,
        code: int = 93002,
        status_code: int = 400,
        message: str = MUTABLE_MESSAGES_DISABLED_MESSAGE,
    ) -> RejectMutationsRule:
        """Make update/delete/append fail (93002) until the rule is cancelled.

        Another ``code``/``status_code``/``message`` turns it into a persistent service fault
        on mutations only (creates still pass), e.g. ``code=50000, status_code=500``.
        """
        rule = RejectMutationsRule(channel, appends_only, code, status_code, message,
                                   _owner=self)
        self._rejects.append(rule)
        return rule

    def delay_delivery(
        self, delay_ms: int, *, channel: str | None = None, connection_id: str | None = None
    ) -> DelayRule:
        """Delay deliveries (MESSAGE and PRESENCE frames to subscribers) by ``delay_ms``.

        With ``connection_id`` only that connection's deliveries are delayed, so a test can hold
        back one client's frames (its ACKs queue behind them) while others receive at once.
        """
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        rule = DelayRule(delay_ms, channel, connection_id, _owner=self)
        self._delays.append(rule)
        return rule

    def drop_connections(self, connection_id: str | None = None) -> int:
        """Close the socket of one connection (or all with ``None``) without a close frame.

        The SDKs see a network failure, reconnect with their resume key and re-attach with their
        ``channelSerial``; the broker resumes the connection and replays what they missed.
        Returns how many sockets were closed.
        """
        return self._drop(connection_id)

    def partition(self, connection_id: str) -> PartitionRule:
        """Cut one connection off the network until ``.heal()``.

        Its socket is aborted as with :meth:`drop_connections`, and every reconnect that tries
        to resume it is aborted too, so the SDK keeps retrying and the connection stays gone:
        after ``presence_leave_timeout_ms`` its presence members leave. After ``heal()`` the
        next retry resumes it (within ``connectionStateTtl``), and the SDK re-enters its members.
        """
        rule = PartitionRule(connection_id, _owner=self)
        self._partitions.append(rule)
        self._drop(connection_id)
        return rule

    def is_partitioned(self, connection_id: str) -> bool:
        return any(p.connection_id == connection_id for p in self._partitions)

    def clear(self) -> None:
        """Disarm every rule (and heal every partition)."""
        self._nacks.clear()
        self._rejects.clear()
        self._delays.clear()
        self._partitions.clear()

    def _remove(self, rule: NackRule | RejectMutationsRule | DelayRule | PartitionRule) -> None:
        for rules in (self._nacks, self._rejects, self._delays, self._partitions):
            if rule in rules:
                rules.remove(rule)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ consulted by the hub

    def check_publish(
        self, channel: str, *, has_mutation: bool, has_append: bool
    ) -> AblyError | None:
        """Raise the error of the first armed rule matching this publish, if any.

        An ``after_apply`` NACK is returned instead: the hub raises it once the publish is
        applied.
        """
        if has_mutation:
            for reject in self._rejects:
                if _matches(reject.channel, channel) and (has_append or not reject.appends_only):
                    reject.fired += 1
                    raise reject.error()
        for nack in self._nacks:
            if _matches(nack.channel, channel) and (has_append or not nack.appends_only):
                nack.remaining -= 1
                nack.fired += 1
                if nack.remaining <= 0:
                    self._nacks.remove(nack)
                if nack.after_apply:
                    return nack.error()
                raise nack.error()
        return None

    def delay_for(self, channel: str, connection_id: str) -> int:
        """The delivery delay in ms for a channel and subscriber (the largest matching rule)."""
        return max(
            (
                d.delay_ms
                for d in self._delays
                if _matches(d.channel, channel)
                and (d.connection_id is None or d.connection_id == connection_id)
            ),
            default=0,
        )
