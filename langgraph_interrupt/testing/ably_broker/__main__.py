"""Command line: run the offline Ably broker until Ctrl-C.

    python -m langgraph_interrupt.testing.ably_broker [--port N] [--key K] [--json]

Prints the port and the exact client options for ably-python and ably-js, so a developer can
point a Node script or a browser front end at it with no internet access. ``--json`` prints one
machine-readable line instead (``{"port": ..., "python": {...}, "js": {...}}``) for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from importlib import metadata

from ._broker import DEFAULT_KEY, AblyBroker


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m langgraph_interrupt.testing.ably_broker",
        description="Offline, loopback-only Ably-compatible broker for tests and local dev.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument(
        "--key", action="append", help=f"API key 'appId.keyId:secret' (default {DEFAULT_KEY})"
    )
    parser.add_argument("--client-id", default=None, help="clientId to put in the printed options")
    parser.add_argument("--json", action="store_true", help="print one JSON line and nothing else")
    parser.add_argument(
        "--lifetime", type=float, default=None, help="exit after this many seconds (for scripts)"
    )
    parser.add_argument(
        "--accept-any-token",
        action="store_true",
        help="accept tokens the broker did not issue (e.g. from your own authCallback)",
    )
    parser.add_argument(
        "--presence-leave-timeout",
        type=int,
        default=15_000,
        metavar="MS",
        help="presence members of a lost, unresumed connection leave after this (default 15000)",
    )
    return parser.parse_args(argv)


def _python_options(broker: AblyBroker, client_id: str | None) -> dict[str, object] | None:
    """ably-python options, or None when ably is missing or not the verified version."""
    if not _has_ably_python():
        return None
    try:
        return broker.python_client_options(client_id)
    except RuntimeError as exc:
        print(f"ably broker: {exc}", file=sys.stderr)
        return None


def _banner(broker: AblyBroker, client_id: str | None) -> str:
    python = _python_options(broker, client_id)
    js = broker.js_client_options(client_id)
    lines = [
        f"Ably broker listening on {broker.http_url} (loopback only; Ctrl-C to stop)",
        f"PORT={broker.port}",
        f"KEY={broker.key}",
        "",
        "ably-js 2.28 (Node or browser):",
        f"  new Ably.Realtime({_pretty(js)})",
        "",
        "ably-python 3.1.4:",
    ]
    if python is not None:
        lines.append(f"  ably.AblyRealtime(**{_pretty(python)})")
    else:
        lines.append("  (ably 3.1.x is not installed here; see broker.python_client_options())")
    return "\n".join(lines)


def _pretty(options: dict[str, object]) -> str:
    return json.dumps(options, indent=2).replace("\n", "\n  ")


def _has_ably_python() -> bool:
    try:
        metadata.version("ably")
    except metadata.PackageNotFoundError:
        return False
    return True


async def _serve(args: argparse.Namespace) -> int:
    broker = AblyBroker(
        port=args.port,
        host=args.host,
        keys=args.key or (DEFAULT_KEY,),
        accept_any_token=args.accept_any_token,
        presence_leave_timeout_ms=args.presence_leave_timeout,
    )
    await broker.start()
    try:
        if args.json:
            payload = {
                "port": broker.port,
                "key": broker.key,
                "js": broker.js_client_options(args.client_id),
                "python": _python_options(broker, args.client_id),
            }
            print(json.dumps(payload), flush=True)
        else:
            print(_banner(broker, args.client_id), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if args.lifetime is not None:
            loop.call_later(args.lifetime, stop.set)
        await stop.wait()
    finally:
        await broker.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parse_args(argv)
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as exc:
        print(f"ably broker: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
