#!/usr/bin/env bash
# Prepare the browser tests (tests/browser), idempotent and non-interactive:
#
#  1. Chromium: Debian's `chromium` package, installed with apt-get only when /usr/bin/chromium
#     is missing (needs root, as in CI; no browser is ever downloaded by a driver).
#  2. The page: scripts/build_chat.sh (Node, web/chat's npm packages, the Vite bundle).
#  3. The driver: the Python `playwright` package in .venv (the `dev` extra normally brings
#     it; installed here from PyPI only if it is missing). Its bundled driver launches
#     /usr/bin/chromium; `playwright install` is never run.
#
# Run from the repository root or anywhere: `bash scripts/setup_browser.sh`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHROMIUM=/usr/bin/chromium
PLAYWRIGHT_PIN="playwright==1.65.3"

if [ ! -x "$CHROMIUM" ]; then
    echo "setup_browser.sh: installing Debian's chromium" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq chromium >&2
fi

bash "$REPO_ROOT/scripts/build_chat.sh" >/dev/null

PYTHON="$REPO_ROOT/.venv/bin/python"
if [ ! -x "$PYTHON" ]; then
    echo "setup_browser.sh: $PYTHON is missing; run scripts/test.sh (it creates .venv)" >&2
    exit 1
fi
if ! "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
    echo "setup_browser.sh: installing $PLAYWRIGHT_PIN into .venv" >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "$PLAYWRIGHT_PIN" >&2
fi
echo "$CHROMIUM"
