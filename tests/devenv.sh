#!/usr/bin/env bash
# Development environment for jobledger: what `make test` and `make demo` need
# on a fresh Debian machine, and the private PostgreSQL cluster they use.
#
#   tests/devenv.sh deps    install missing system packages (root) and the venv
#   tests/devenv.sh start   start the private cluster unless PG* names a server
#   tests/devenv.sh stop    stop the private cluster
#   tests/devenv.sh env     print the PG* settings for the cluster in use
#
# The private cluster keeps its data in .pgdata/ under the checkout (ignored
# by git), listens on its own port and socket directory, and runs as the
# `postgres` OS user when this script runs as root (initdb refuses root).
#
# Its port: JOBLEDGER_TEST_PORT when set (every time: a cluster running on
# another port is restarted on this one); otherwise the port recorded in
# .pgdata/port by the last start; otherwise the first free port from 55432
# up, so that a second checkout on the same machine picks another.  `start`
# says which port it uses and records it; `env` prints it.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
venv=$top/.venv
pgdata=$top/.pgdata
port_file=$pgdata/port

say() { printf 'devenv: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

pg_bindir() { "$PG_CONFIG" --bindir; }
pg_major() { "$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/'; }

plpython_interpreter() { "$top/plpython/interpreter.sh" "$PG_CONFIG" 2>/dev/null; }

apt_updated=
apt_install() {
    [ "$(id -u)" = 0 ] || die "missing system packages ($*): install them or run as root"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$apt_updated" ]; then
        say "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Install a server add-on at the same version as the installed server, so the
# add-on never drags a server upgrade in; fall back to the newest if that
# exact version is no longer offered.
apt_install_matching() {
    local pkg=$1 major server_version
    major=$(pg_major)
    server_version=$(dpkg-query -W -f='${Version}' "postgresql-$major" 2>/dev/null || true)
    if [ -n "$server_version" ] && apt_install "$pkg=$server_version"; then
        return 0
    fi
    apt_install "$pkg"
}

deps() {
    command -v "$PG_CONFIG" >/dev/null || die "no pg_config: install PostgreSQL (14+) or set PG_CONFIG"
    local major
    major=$(pg_major)
    [ "$major" -ge 14 ] || die "PostgreSQL $major is too old: jobledger needs 14 or later"
    [ -f "$("$PG_CONFIG" --pkglibdir)/plpython3.so" ] || apt_install_matching "postgresql-plpython3-$major"
    [ -f "$("$PG_CONFIG" --pgxs)" ] || apt_install_matching "postgresql-server-dev-$major"
    local plpy
    plpy=$(plpython_interpreter) || die "cannot find the Python that plpython3u is linked against"
    "$plpy" -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    # pg_cron, the scheduler jobledger's schedules run on (tests/schedules).
    [ -f "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ] || apt_install_matching "postgresql-$major-cron"
    # A real pooler in front of the cluster (tests/runner/test_poolers.py).
    command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || apt_install pgbouncer

    # The venv: pinned client and test dependencies (python/constraints.txt
    # pins every transitive package).  Rebuilt only when the pins change.
    local stamp=$venv/.jobledger-stamp want
    want=$(cat "$top/python/pyproject.toml" "$top/python/constraints.txt" | sha256sum | cut -d' ' -f1)
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "creating the virtualenv in .venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check \
            -c "$top/python/constraints.txt" -e "$top/python[client,dev]"
        echo "$want" >"$stamp"
    fi

    # pgspot pins another pglast than jobledger's: it gets a venv of its own.
    local lint=$top/.venv-pgspot lint_want
    lint_want=$(sha256sum <"$top/python/lint-constraints.txt" | cut -d' ' -f1)
    if [ ! -x "$lint/bin/pgspot" ] || [ "$(cat "$lint/.jobledger-stamp" 2>/dev/null)" != "$lint_want" ]; then
        say "creating the pgspot virtualenv in .venv-pgspot"
        rm -rf "$lint"
        python3 -m venv "$lint"
        "$lint/bin/pip" install -q --disable-pip-version-check -r "$top/python/lint-constraints.txt"
        echo "$lint_want" >"$lint/.jobledger-stamp"
    fi
}

external_server() {
    # The standard libpq variables name a server to use instead of ours.
    [ -n "${PGHOST:-}${PGPORT:-}${PGDATABASE:-}${PGSERVICE:-}" ]
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Whether nothing listens on 127.0.0.1:$1 (the cluster's only TCP address).
port_free() {
    python3 -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# The port the private cluster uses (see the top of this file).
cluster_port() {
    if [ -n "${JOBLEDGER_TEST_PORT:-}" ]; then
        [[ "$JOBLEDGER_TEST_PORT" =~ ^[0-9]+$ ]] || die "JOBLEDGER_TEST_PORT=$JOBLEDGER_TEST_PORT is not a port number"
        echo "$JOBLEDGER_TEST_PORT"
    elif [ -s "$port_file" ]; then
        cat "$port_file"
    else
        local candidate=55432
        until port_free "$candidate"; do
            candidate=$((candidate + 1))
            [ "$candidate" -lt 55532 ] || die "no free port in 55432-55531: set JOBLEDGER_TEST_PORT"
        done
        echo "$candidate"
    fi
}

# The port the running private cluster listens on (postmaster.pid, line 4).
running_port() {
    sed -n 4p "$pgdata/data/postmaster.pid" 2>/dev/null
}

cluster_env() {
    local port
    port=$(cluster_port)
    printf 'PGHOST=%s\nPGPORT=%s\nPGUSER=%s\nPGDATABASE=postgres\n' \
        "$pgdata/socket" "$port" "$(cluster_superuser)"
}

cluster_superuser() {
    if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

start() {
    if external_server; then
        "$(pg_bindir)/pg_isready" -q || die "PG* names a server that does not answer (pg_isready)"
        say "using the server PG* names"
        return 0
    fi
    local bindir port
    bindir=$(pg_bindir)
    port=$(cluster_port)
    if [ "$(id -u)" = 0 ]; then
        # The cluster runs as postgres: it must reach the data directory.
        runuser -u postgres -- test -x "$top" ||
            die "the postgres user cannot reach $top: clone the project where it can (e.g. under /work or /srv)"
    fi
    if [ ! -s "$pgdata/data/PG_VERSION" ]; then
        say "initdb in .pgdata/data"
        rm -rf "$pgdata"
        mkdir -p "$pgdata/data" "$pgdata/socket"
        [ "$(id -u)" = 0 ] && chown -R postgres: "$pgdata"
        as_postgres "$bindir/initdb" -D "$pgdata/data" -U "$(cluster_superuser)" \
            --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
        cat >>"$pgdata/data/postgresql.conf" <<EOF
# jobledger's private test cluster
listen_addresses = '127.0.0.1'
# the port is given at every start (pg_ctl -o -p): see tests/devenv.sh
unix_socket_directories = '$pgdata/socket'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
EOF
    fi
    cron_settings
    if as_postgres "$bindir/pg_ctl" -D "$pgdata/data" status >/dev/null 2>&1; then
        if [ "$(running_port)" = "$port" ]; then
            say "private cluster already running on port $port"
            echo "$port" >"$port_file"
            cron_database "$port"
            return 0
        fi
        say "private cluster running on port $(running_port): restarting it on port $port"
        as_postgres "$bindir/pg_ctl" -D "$pgdata/data" -m fast -w stop >/dev/null
    fi
    port_free "$port" ||
        die "port $port is taken by another server: set JOBLEDGER_TEST_PORT to a free port (or unset it to pick one)"
    say "starting the private cluster on port $port"
    as_postgres "$bindir/pg_ctl" -D "$pgdata/data" -l "$pgdata/server.log" -o "-p $port" -w -t 60 start >/dev/null ||
        { tail -n 20 "$pgdata/server.log" >&2; die "the private cluster did not start on port $port"; }
    echo "$port" >"$port_file"
    cron_database "$port"
}

# pg_cron's database (see cron_settings), so that its scheduler starts.
cron_database() {
    [ -f "$pgdata/data/jobledger_cron.conf" ] || return 0
    local psql
    psql=("$(pg_bindir)/psql" -X -q -At -h "$pgdata/socket" -p "$1" -U "$(cluster_superuser)" -d postgres)
    [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'jobledger_cron'")" = 1 ] ||
        "${psql[@]}" -c "CREATE DATABASE jobledger_cron"
}

# pg_cron, preloaded, keeps its jobs in database jobledger_cron, which the
# schedule tests share (dbtools.cron_database: pg_cron's scheduler stops for
# good when its database is dropped, as the per-test databases are), and
# connects through the cluster's socket.  Kept in a file of its own that
# postgresql.conf includes, so clusters made before this are brought up to
# date; a running cluster whose settings changed is restarted.
cron_settings() {
    local conf=$pgdata/data/jobledger_cron.conf want
    [ -f "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ] || return 0
    want="# written by tests/devenv.sh: pg_cron for tests/schedules
shared_preload_libraries = 'pg_cron'
cron.database_name = 'jobledger_cron'
cron.host = '$pgdata/socket'"
    [ "$(cat "$conf" 2>/dev/null)" = "$want" ] && return 0
    printf '%s\n' "$want" | as_postgres tee "$conf" >/dev/null
    grep -qx "include_if_exists = 'jobledger_cron.conf'" "$pgdata/data/postgresql.conf" ||
        echo "include_if_exists = 'jobledger_cron.conf'" | as_postgres tee -a "$pgdata/data/postgresql.conf" >/dev/null
    if as_postgres "$(pg_bindir)/pg_ctl" -D "$pgdata/data" status >/dev/null 2>&1; then
        say "pg_cron settings changed: restarting the private cluster"
        as_postgres "$(pg_bindir)/pg_ctl" -D "$pgdata/data" -m fast -w stop >/dev/null
    fi
}

stop() {
    if [ -s "$pgdata/data/PG_VERSION" ]; then
        as_postgres "$(pg_bindir)/pg_ctl" -D "$pgdata/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

env_cmd() {
    if external_server; then
        env | grep -E '^PG(HOST|PORT|USER|DATABASE|SERVICE|PASSWORD)=' || true
    else
        cluster_env
    fi
}

case "${1:-}" in
deps) deps ;;
start) start ;;
stop) stop ;;
env) env_cmd ;;
*) die "usage: tests/devenv.sh deps|start|stop|env" ;;
esac
