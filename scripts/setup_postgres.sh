#!/usr/bin/env bash
# Make the PostgreSQL server binaries available for the Postgres tests (tests/postgres), then
# print their directory. Idempotent, never reads stdin. The tests start a throwaway cluster of
# their own (initdb + pg_ctl in a temporary directory); nothing here starts a server.
#
# When no /usr/lib/postgresql/*/bin/initdb exists, installs Debian's `postgresql` package
# (needs root), telling postgresql-common not to create its default cluster, so no unused
# server is left running or started at boot. PG_BIN=/path/to/bin skips all of this.
set -euo pipefail

find_bin() {
    if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then
        echo "$PG_BIN"
        return 0
    fi
    local dir
    # the newest major version first
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
        return 0
    fi
    return 1
}

if bin=$(find_bin); then
    echo "$bin"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup_postgres.sh: PostgreSQL is not installed and installing it needs root:" >&2
    echo "  sudo apt-get install -y postgresql   (or set PG_BIN to a directory with initdb)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# postgresql-common reads this when the server package is installed: no 'main' cluster, so
# there is nothing for the package's init script to start. Only written when absent.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    printf '# written by setup_postgres.sh: tests start their own clusters\ncreate_main_cluster = false\n' \
        > /etc/postgresql-common/createcluster.conf
fi
apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
          -o Dpkg::Options::=--force-confold)
apt-get "${apt_opts[@]}" update -qq >&2
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends postgresql >&2
# A cluster created anyway (a createcluster.conf that was already there) is not used: stop it
# and keep it from starting at boot.
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version name _; do
        pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
        conf="/etc/postgresql/$version/$name/start.conf"
        [ -f "$conf" ] && echo manual > "$conf"
    done
fi

if bin=$(find_bin); then
    echo "$bin"
    exit 0
fi
echo "setup_postgres.sh: installed postgresql but found no /usr/lib/postgresql/*/bin/initdb" >&2
exit 1
