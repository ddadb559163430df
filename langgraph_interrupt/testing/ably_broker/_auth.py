"""Keys, tokens and client identity.

Owns: the broker's API keys, token issuing (``POST /keys/{keyName}/requestToken`` with the
TokenRequest MAC both SDKs compute), token lookup and expiry, and resolving who a realtime
connection or REST request is (basic key auth, or a token; ``clientId`` rules of spec RSA7/RSA12).

Both auth query spellings are accepted: ``accessToken`` (ably-python) and ``access_token``
(ably-js). A token's capability is parsed (:func:`capability_allows`) but only the ``presence``
operation is enforced (by ``_presence``); key auth has every capability.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._protocol import AblyError

__all__ = [
    "ApiKey",
    "Authenticator",
    "ClientIdentity",
    "IdentityKind",
    "IssuedToken",
    "capability_allows",
]

DEFAULT_TOKEN_TTL_MS = 60 * 60 * 1000
MAX_TOKEN_TTL_MS = 24 * 60 * 60 * 1000
DEFAULT_CAPABILITY = '{"*":["*"]}'
_MAX_TOKENS = 100_000


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key ``"appId.keyId:secret"``; ``name`` is the part before the colon."""

    name: str
    secret: str

    @classmethod
    def parse(cls, key: str) -> ApiKey:
        name, sep, secret = key.partition(":")
        if not sep or not name or not secret or "." not in name:
            raise ValueError(f"API key must look like 'appId.keyId:secret', got {key!r}")
        return cls(name, secret)

    @property
    def full(self) -> str:
        return f"{self.name}:{self.secret}"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token the broker issued (or accepts); mirrors Ably's TokenDetails."""

    token: str
    key_name: str
    issued: int
    expires: int | None
    capability: str
    client_id: str | None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "token": self.token,
            "keyName": self.key_name,
            "issued": self.issued,
            "expires": self.expires if self.expires is not None else self.issued + MAX_TOKEN_TTL_MS,
            "capability": self.capability,
        }
        if self.client_id is not None:
            out["clientId"] = self.client_id
        return out


class IdentityKind(Enum):
    """How a connection may set ``clientId`` on the messages it publishes."""

    IDENTIFIED = "identified"  # exactly one clientId; messages may repeat it or omit it
    WILDCARD = "wildcard"  # key auth without clientId, or a '*' token: any clientId
    ANONYMOUS = "anonymous"  # a token without clientId: messages may not carry one


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who a realtime connection or REST request is."""

    kind: IdentityKind
    client_id: str | None
    key_name: str
    token: IssuedToken | None = None

    @property
    def expires(self) -> int | None:
        return self.token.expires if self.token is not None else None

    def can(self, channel: str, operation: str) -> bool:
        """Whether the credentials allow ``operation`` (e.g. ``"presence"``) on ``channel``.

        Key auth can do everything (the broker's keys carry no capability); a token can do what
        its capability grants.
        """
        if self.token is None:
            return True
        return capability_allows(self.token.capability, channel, operation)

    def check_message_client_id(self, client_id: str | None) -> str | None:
        """The clientId a published message ends up with; raises 40012 if it is not allowed."""
        if client_id is None:
            return self.client_id if self.kind is IdentityKind.IDENTIFIED else None
        if client_id == "*":
            raise AblyError(40012, 400, "the wildcard clientId '*' cannot be used on a message")
        if self.kind is IdentityKind.IDENTIFIED and client_id != self.client_id:
            raise AblyError(
                40012,
                400,
                f"mismatched clientId: message has {client_id!r}, connection is {self.client_id!r}",
            )
        if self.kind is IdentityKind.ANONYMOUS:
            raise AblyError(40012, 400, "an anonymous client cannot publish with a clientId")
        return client_id


def capability_allows(capability: str, channel: str, operation: str) -> bool:
    """Whether a capability JSON string (``{"resource": ["op", ...]}``) grants an operation.

    A resource matches a channel when it is ``"*"``, the exact name, or a prefix ending in
    ``*`` (``"ai:*"``); an operation matches when listed or when the list holds ``"*"``.
    """
    try:
        parsed = json.loads(capability)
    except ValueError:
        return False
    if not isinstance(parsed, dict):
        return False
    for resource, operations in parsed.items():
        if not isinstance(resource, str) or not isinstance(operations, list):
            continue
        matches = resource in ("*", channel) or (
            resource.endswith("*") and channel.startswith(resource[:-1])
        )
        if matches and ("*" in operations or operation in operations):
            return True
    return False


class Authenticator:
    """Validates credentials against the broker's keys and the tokens it issued."""

    def __init__(
        self,
        keys: Iterable[str],
        now_ms: Callable[[], int],
        *,
        accept_any_token: bool = False,
        token_client_ids: Mapping[str, str | None] | None = None,
    ) -> None:
        self._keys = {k.name: k for k in (ApiKey.parse(key) for key in keys)}
        if not self._keys:
            raise ValueError("the broker needs at least one API key")
        self._now_ms = now_ms
        self._tokens: dict[str, IssuedToken] = {}
        self.accept_any_token = accept_any_token
        self.token_client_ids = dict(token_client_ids or {})

    @property
    def default_key(self) -> ApiKey:
        return next(iter(self._keys.values()))

    def issue(
        self,
        *,
        client_id: str | None = None,
        ttl_ms: int = DEFAULT_TOKEN_TTL_MS,
        capability: str = DEFAULT_CAPABILITY,
        key_name: str | None = None,
    ) -> IssuedToken:
        """Mint a token directly (what an app server's ``requestToken`` would return)."""
        try:
            if not isinstance(json.loads(capability), dict):
                raise ValueError
        except ValueError:
            raise AblyError(40000, 400, "capability must be a JSON object") from None
        key = self._keys[key_name] if key_name is not None else self.default_key
        now = self._now_ms()
        app_id = key.name.split(".", 1)[0]
        token = IssuedToken(
            token=f"{app_id}.{secrets.token_urlsafe(24)}",
            key_name=key.name,
            issued=now,
            expires=now + min(max(ttl_ms, 1), MAX_TOKEN_TTL_MS),
            capability=capability,
            client_id=client_id,
        )
        if len(self._tokens) >= _MAX_TOKENS:
            self._tokens.pop(next(iter(self._tokens)))
        self._tokens[token.token] = token
        return token

    def request_token(self, path_key_name: str, body: Any) -> IssuedToken:
        """Handle ``POST /keys/{keyName}/requestToken``: verify the signed TokenRequest."""
        if not isinstance(body, dict):
            raise AblyError.bad_request("token request body must be a map")
        key_name = body.get("keyName")
        if not isinstance(key_name, str) or key_name != path_key_name:
            raise AblyError(40101, 401, "token request keyName does not match the request path")
        key = self._keys.get(key_name)
        if key is None:
            raise AblyError(40101, 401, f"invalid credentials; no key named {key_name!r}")
        fields: dict[str, str] = {}
        for name in ("ttl", "capability", "clientId", "timestamp", "nonce", "mac"):
            value = body.get(name)
            if value is None:
                fields[name] = ""
            elif isinstance(value, bool) or not isinstance(value, str | int | float):
                raise AblyError.bad_request(f"token request field {name!r} has a bad type")
            else:
                fields[name] = str(int(value)) if isinstance(value, float) else str(value)
        if not fields["mac"] or not fields["nonce"] or not fields["timestamp"]:
            raise AblyError.bad_request("token request must have timestamp, nonce and mac")
        text = "\n".join(
            [
                key_name,
                fields["ttl"],
                fields["capability"],
                fields["clientId"],
                fields["timestamp"],
                fields["nonce"],
                "",
            ]
        )
        expected = base64.b64encode(
            hmac.new(key.secret.encode(), text.encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, fields["mac"]):
            raise AblyError(40101, 401, "invalid token request; the mac does not verify")
        ttl = int(fields["ttl"]) if fields["ttl"] else DEFAULT_TOKEN_TTL_MS
        capability = fields["capability"] or DEFAULT_CAPABILITY
        return self.issue(
            client_id=fields["clientId"] or None,
            ttl_ms=ttl,
            capability=capability,
            key_name=key_name,
        )

    # ------------------------------------------------------------------ identity

    def _check_key(self, key: str) -> ApiKey:
        name, _, secret = key.partition(":")
        found = self._keys.get(name)
        if found is None or not hmac.compare_digest(found.secret, secret):
            raise AblyError(40101, 401, "invalid credentials; unknown key or wrong secret")
        return found

    def lookup_token(self, token: str) -> IssuedToken:
        """The token's details; raises 40140 (unknown) or 40142 (expired)."""
        found = self._tokens.get(token)
        if found is None:
            if not self.accept_any_token:
                raise AblyError(40140, 401, "token not recognised by this broker")
            found = IssuedToken(
                token=token,
                key_name=self.default_key.name,
                issued=self._now_ms(),
                expires=None,
                capability=DEFAULT_CAPABILITY,
                client_id=self.token_client_ids.get(token),
            )
        if found.expires is not None and found.expires <= self._now_ms():
            raise AblyError(40142, 401, "token expired")
        return found

    def identify(
        self,
        *,
        key: str | None,
        token: str | None,
        client_id: str | None,
    ) -> ClientIdentity:
        """Resolve credentials plus an optional requested ``clientId`` into an identity."""
        if client_id == "":
            client_id = None
        if key is not None:
            api_key = self._check_key(key)
            if client_id is None or client_id == "*":
                return ClientIdentity(IdentityKind.WILDCARD, None, api_key.name)
            return ClientIdentity(IdentityKind.IDENTIFIED, client_id, api_key.name)
        if token is not None:
            issued = self.lookup_token(token)
            if issued.client_id is None:
                if client_id is not None and client_id != "*":
                    raise AblyError(40102, 401, "incompatible credentials; token has no clientId")
                return ClientIdentity(IdentityKind.ANONYMOUS, None, issued.key_name, issued)
            if issued.client_id == "*":
                if client_id is None or client_id == "*":
                    return ClientIdentity(IdentityKind.WILDCARD, None, issued.key_name, issued)
                return ClientIdentity(IdentityKind.IDENTIFIED, client_id, issued.key_name, issued)
            if client_id is not None and client_id not in ("*", issued.client_id):
                raise AblyError(
                    40102,
                    401,
                    f"incompatible credentials; token clientId is {issued.client_id!r}, "
                    f"connection asked for {client_id!r}",
                )
            return ClientIdentity(
                IdentityKind.IDENTIFIED, issued.client_id, issued.key_name, issued
            )
        raise AblyError(40101, 401, "no credentials; pass a key or an access token")

    def identify_rest(
        self, authorization: str | None, client_id_header: str | None
    ) -> ClientIdentity:
        """Resolve a REST ``Authorization`` header (Basic or Bearer) and ``X-Ably-ClientId``."""
        if not authorization:
            raise AblyError(40101, 401, "no credentials; send an Authorization header")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        client_id: str | None = None
        if client_id_header:
            client_id = _b64_text(client_id_header)
            if client_id is None:
                raise AblyError.bad_request("X-Ably-ClientId must be base64")
        if scheme.lower() == "basic":
            decoded = _b64_text(value)
            if decoded is None:
                raise AblyError(40101, 401, "invalid credentials; bad Basic authorization")
            return self.identify(key=decoded, token=None, client_id=client_id)
        if scheme.lower() == "bearer":
            token = value
            if token not in self._tokens:
                token = _b64_text(value) or value
            return self.identify(key=None, token=token, client_id=client_id)
        raise AblyError(40101, 401, "invalid credentials; unsupported Authorization scheme")


def _b64_text(value: str) -> str | None:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None
