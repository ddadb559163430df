#!/usr/bin/env bash
# Build the browser chat's page (web/chat) into web/chat/dist, idempotent and offline-friendly.
#
#  1. Node >= 22 through scripts/setup_js.sh (the project's own Node set-up; it also installs
#     the pinned packages of tests/js).
#  2. The pinned npm packages of web/chat (`npm ci`, only when package-lock.json changed since
#     the last install: the stamp lives in node_modules, so deleting it forces a reinstall).
#  3. The bundle (`npm run build`: type check, then Vite), only when the sources, the
#     configuration or the lock file changed since the last build (stamp in dist/).
#
# Run from anywhere: `bash scripts/build_chat.sh`. Touches nothing outside the repository.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB_DIR="$REPO_ROOT/web/chat"

NODE_BIN="$(bash "$REPO_ROOT/scripts/setup_js.sh" | tail -n 1)"
export PATH="$(dirname "$NODE_BIN"):$PATH"  # npm and its scripts run on that node
cd "$WEB_DIR"

LOCK_STAMP="node_modules/.build_chat.lock.sha256"
WANT_LOCK="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$LOCK_STAMP" ] || [ "$(cat "$LOCK_STAMP")" != "$WANT_LOCK" ]; then
    echo "build_chat.sh: installing web/chat's npm packages" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
    printf '%s\n' "$WANT_LOCK" >"$LOCK_STAMP"
fi

BUILD_STAMP="dist/.build.sha256"
WANT_BUILD="$(find src index.html vite.config.ts tsconfig.json package.json package-lock.json \
    -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [ ! -f "$BUILD_STAMP" ] || [ "$(cat "$BUILD_STAMP")" != "$WANT_BUILD" ] \
        || [ ! -f dist/index.html ]; then
    echo "build_chat.sh: building the page into web/chat/dist" >&2
    npm run --silent build >&2
    printf '%s\n' "$WANT_BUILD" >"$BUILD_STAMP"
fi
echo "$WEB_DIR/dist"
