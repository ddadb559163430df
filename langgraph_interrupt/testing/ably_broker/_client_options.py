"""Client options that point the real SDKs at the broker.

Owns: the exact option sets for ably-python 3.1.x and ably-js 2.x, with the traps found while
building the broker encoded once (see ``docs/offline-broker.md``):

* ably-python ignores ``port`` for realtime (ably/ably-python#567): the port goes into
  ``endpoint="127.0.0.1:PORT/"``; the trailing slash keeps REST URLs valid too. A later
  ably-python that honours ``port`` would break this, hence the version check.
* ably-python refuses Basic (key) auth for every REST call over plain HTTP (40103), history
  included: ``use_token_auth=True`` makes it sign token requests locally instead.
* ably-python realtime with token auth drops ``client_id`` from the token request unless it is
  in ``default_token_params`` (40102 on CONNECTED otherwise).
* An IP ``endpoint`` has no fallback hosts in either SDK; ably-js's connectivity checks (HTTP and
  websocket) would still go to the internet on a slow connect, so both point at the broker.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

__all__ = ["VERIFIED_ABLY_JS", "VERIFIED_ABLY_PYTHON", "js_client_options", "python_client_options"]

VERIFIED_ABLY_PYTHON = "3.1.4"
VERIFIED_ABLY_JS = "2.28.0"


def _check_ably_python_version() -> None:
    try:
        version = metadata.version("ably")
    except metadata.PackageNotFoundError:
        return
    if not version.startswith("3.1."):
        raise RuntimeError(
            f"ably-python {version} is installed; the broker's client options were verified with "
            f"{VERIFIED_ABLY_PYTHON} (the 'endpoint=HOST:PORT/' workaround for ably-python#567). "
            "Pin ably==3.1.4, or re-verify the options (a release honouring `port` needs "
            "endpoint=HOST, port=PORT) and update _client_options.py."
        )


def python_client_options(
    host: str,
    port: int,
    *,
    key: str,
    client_id: str | None = None,
    use_binary_protocol: bool = True,
    token_auth: bool = True,
    fast_retries: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``ably.AblyRealtime(**kw)`` (they work for ``AblyRest`` too)."""
    _check_ably_python_version()
    options: dict[str, Any] = {
        "key": key,
        "endpoint": f"{host}:{port}/",
        "tls": False,
        "use_binary_protocol": use_binary_protocol,
        "connectivity_check_url": f"http://{host}:{port}/is-the-internet-up.txt",
    }
    if token_auth:
        options["use_token_auth"] = True
    if client_id is not None:
        options["client_id"] = client_id
        if token_auth:
            options["default_token_params"] = {"client_id": client_id}
    if fast_retries:
        options["disconnected_retry_timeout"] = 500
        options["suspended_retry_timeout"] = 1000
        options["channel_retry_timeout"] = 1000
    options.update(overrides)
    return options


def js_client_options(
    host: str,
    port: int,
    *,
    key: str,
    client_id: str | None = None,
    use_binary_protocol: bool | None = None,
    fast_retries: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """A JSON-serialisable dict for ``new Ably.Realtime(opts)`` / ``new Ably.Rest(opts)``.

    ``use_binary_protocol=None`` keeps the SDK default (msgpack on Node, JSON in browsers).
    """
    options: dict[str, Any] = {
        "key": key,
        "endpoint": host,
        "port": port,
        "tls": False,
        "transports": ["web_socket"],
        "disableConnectivityCheck": True,
        "connectivityCheckUrl": f"http://{host}:{port}/is-the-internet-up.txt",
        "wsConnectivityCheckUrl": f"ws://{host}:{port}/ws-up",
    }
    if use_binary_protocol is not None:
        options["useBinaryProtocol"] = use_binary_protocol
    if client_id is not None:
        options["clientId"] = client_id
    if fast_retries:
        options["disconnectedRetryTimeout"] = 500
        options["suspendedRetryTimeout"] = 1000
        options["channelRetryTimeout"] = 1000
    options.update(overrides)
    return options
