#!/usr/bin/env bash
# Set up and run the browser chat: the offline Ably broker, a LangGraph agent behind
# create_agent_app, and a React page on the official client (@ably/ai-transport with useChat),
# all on 127.0.0.1, nothing else to install. Prints the page's URL (?session= names the
# conversation: open it in a second tab to watch it live and stop its runs from there).
# Offline, a scripted model answers (every answer runs a slow search tool: press Stop);
# a real one with OPENAI_API_KEY or ANTHROPIC_API_KEY and its langchain package.
# Options: --port N (default 8000; 0 for any free port), --pace X (scripted model's speed).
#   bash scripts/chat.sh
#   bash scripts/chat.sh --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
bash scripts/build_chat.sh >/dev/null  # Node (scripts/setup_js.sh), npm packages, the bundle
exec .venv/bin/python examples/chat_server.py "$@"
