#!/usr/bin/env bash
# Set up everything the test suite needs, then run it: lint, type check, tests.
# Idempotent; safe on a fresh clone with no network but the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
bash scripts/setup_js.sh >/dev/null  # Node >= 22 and the pinned npm packages for JS interop
bash scripts/setup_browser.sh >/dev/null  # Debian chromium when missing, the chat page's bundle, playwright
bash scripts/setup_postgres.sh >/dev/null  # PostgreSQL server binaries (tests start their own throwaway cluster)
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
