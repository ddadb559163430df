#!/usr/bin/env bash
# Set up the package and run the terminal demo: a LangGraph agent with a tool, as a live
# transcript: the answer streams, Stop is pressed while the tool runs, the tool part ends
# cancelled, the thread is repaired, and the next message is answered. Offline, a scripted
# model; a real one with OPENAI_API_KEY or ANTHROPIC_API_KEY and its langchain package.
# Options: --stop-after N (tool sources before Stop), --delay SECONDS (per model token).
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
