#!/usr/bin/env bash
# Set up the package and run the terminal demo.
#   bash scripts/demo.sh                 the embedded broker (nothing else needed)
#   bash scripts/demo.sh --ably-local    the offline Ably broker with the real ably-python SDK
#   ABLY_API_KEY=... bash scripts/demo.sh    real Ably (see docs/ably.md for the key and rule)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
TARGET=.
for arg in "$@"; do
  [ "$arg" = "--ably-local" ] && TARGET=".[testing]"  # the broker needs aiohttp and msgpack
done
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$TARGET"
exec .venv/bin/python examples/demo.py "$@"
