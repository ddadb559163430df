"""The broker's message model.

Owns: validating a message a client submitted (realtime ``MESSAGE`` or REST body) into an
:class:`Inbound`, the immutable :class:`Record` the broker stores and delivers, and rendering a
record into the wire dict for JSON or msgpack. Payloads are kept normalised (binary as ``bytes``,
see ``_protocol``), so a message published over msgpack reads back correctly over JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ._protocol import (
    AblyError,
    Format,
    MessageAction,
    json_safe,
    strip_base64,
    wire_payload,
    wire_size,
)

__all__ = ["Inbound", "Record", "Version", "parse_inbound", "parse_inbound_list"]

_MUTATIONS = frozenset({MessageAction.UPDATE, MessageAction.DELETE, MessageAction.APPEND})
_MAX_ID_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class Version:
    """``Message.version``: who produced this version of a message, and when."""

    serial: str
    timestamp: int
    client_id: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"serial": self.serial, "timestamp": self.timestamp}
        if self.client_id is not None:
            out["clientId"] = self.client_id
        if self.description is not None:
            out["description"] = self.description
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass(frozen=True, slots=True)
class Record:
    """One message as the broker stores or delivers it.

    For a create, ``version.serial == serial``. For an update/delete/append delivery, ``serial`` is
    the original message's serial and ``version`` describes the new version.
    """

    id: str
    serial: str
    action: MessageAction
    timestamp: int
    version: Version
    name: str | None = None
    data: str | bytes | None = None
    encoding: str | None = None
    extras: dict[str, Any] | None = None
    client_id: str | None = None
    connection_id: str | None = None

    def to_wire(self, fmt: Format) -> dict[str, Any]:
        """The message dict both SDKs decode, in the given transport format."""
        out: dict[str, Any] = {"id": self.id}
        if self.name is not None:
            out["name"] = self.name
        out.update(wire_payload(self.data, self.encoding, fmt))
        if self.extras is not None:
            out["extras"] = self.extras if fmt == "msgpack" else json_safe(self.extras)
        if self.client_id is not None:
            out["clientId"] = self.client_id
        if self.connection_id is not None:
            out["connectionId"] = self.connection_id
        out["timestamp"] = self.timestamp
        out["serial"] = self.serial
        out["action"] = int(self.action)
        version = self.version.to_wire()
        if fmt == "json" and "metadata" in version:
            version["metadata"] = json_safe(version["metadata"])
        out["version"] = version
        return out

    def with_changes(self, **changes: Any) -> Record:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    @property
    def is_ephemeral(self) -> bool:
        """``extras.ephemeral`` is set: deliver live, never keep in history."""
        return bool(self.extras and self.extras.get("ephemeral") is True)


@dataclass(slots=True)
class Inbound:
    """A message a client submitted, validated but not yet applied."""

    action: MessageAction
    id: str | None = None
    name: str | None = None
    data: str | bytes | None = None
    encoding: str | None = None
    extras: dict[str, Any] | None = None
    client_id: str | None = None
    serial: str | None = None
    op_client_id: str | None = None
    op_description: str | None = None
    op_metadata: dict[str, Any] | None = None
    size: int = field(default=0)

    @property
    def is_mutation(self) -> bool:
        return self.action in _MUTATIONS

    @property
    def is_append(self) -> bool:
        return self.action == MessageAction.APPEND

    @property
    def is_ephemeral(self) -> bool:
        return bool(self.extras and self.extras.get("ephemeral") is True)


def _opt_str(obj: dict[str, Any], key: str, *, max_length: int | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AblyError.bad_request(f"message field {key!r} must be a string")
    if max_length is not None and len(value) > max_length:
        raise AblyError.bad_request(f"message field {key!r} is too long")
    return value


def _opt_map(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AblyError.bad_request(f"message field {key!r} must be a map")
    return value


def parse_inbound(obj: Any) -> Inbound:
    """Validate one submitted message (``{name, data, encoding, extras, serial, action, ...}``).

    Fields the SDKs echo but the service assigns (``timestamp``, ``connectionId``,
    ``annotations``, ``version.serial``) are ignored. Raises ``AblyError`` (40000, 40003, 40013).
    """
    if not isinstance(obj, dict):
        raise AblyError.bad_request("message must be a map")
    raw_action = obj.get("action")
    if raw_action is None:
        action = MessageAction.CREATE
    else:
        if isinstance(raw_action, bool) or not isinstance(raw_action, int):
            raise AblyError.bad_request("message action must be an integer")
        try:
            action = MessageAction(raw_action)
        except ValueError:
            raise AblyError.bad_request(f"unsupported message action {raw_action}") from None
        if action not in _MUTATIONS and action != MessageAction.CREATE:
            raise AblyError.bad_request(f"message action {action.name.lower()} cannot be published")

    encoding = _opt_str(obj, "encoding", max_length=256)
    data, encoding = strip_base64(obj.get("data"), encoding)
    if isinstance(data, bytearray):
        data = bytes(data)
    if data is not None and not isinstance(data, str | bytes):
        raise AblyError.invalid_data("message data must be a string or binary (encode others)")

    inbound = Inbound(
        action=action,
        id=_opt_str(obj, "id", max_length=_MAX_ID_LENGTH),
        name=_opt_str(obj, "name"),
        data=data,
        encoding=encoding,
        extras=_opt_map(obj, "extras"),
        client_id=_opt_str(obj, "clientId", max_length=_MAX_ID_LENGTH),
    )
    if inbound.is_mutation:
        serial = obj.get("serial")
        if not isinstance(serial, str) or not serial:
            raise AblyError(40003, 400, "message serial is required to update, delete or append")
        inbound.serial = serial
        version = _opt_map(obj, "version")
        if version is not None:
            inbound.op_client_id = _opt_str(version, "clientId", max_length=_MAX_ID_LENGTH)
            inbound.op_description = _opt_str(version, "description")
            inbound.op_metadata = _opt_map(version, "metadata")
    inbound.size = (
        wire_size(inbound.name)
        + wire_size(inbound.data)
        + wire_size(inbound.extras)
        + wire_size(inbound.client_id)
    )
    return inbound


def parse_inbound_list(value: Any) -> list[Inbound]:
    """Validate the ``messages`` of a publish: a non-empty list (a lone map is accepted too)."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise AblyError.bad_request("messages must be a non-empty list")
    if len(value) > 1000:
        raise AblyError.bad_request("too many messages in one publish")
    return [parse_inbound(item) for item in value]
